"""The placement check on given cluster facts (nodes, autoscaler node groups, free resources).

The same check against a real multi-node cluster (and the autoscaler's node groups read from its
GCS) runs in tests/cluster.
"""

from __future__ import annotations

import pytest

from cultura.errors import PlacementError
from cultura.placement import Demand, NodeGroup, assess, plan_placement

HEAD = {"CPU": 0.0, "memory": 1e9}


def node(cpus: float, gpus: float) -> dict[str, float]:
    return {"CPU": cpus, "GPU": gpus, "memory": 1e9}


def agents(n: int, cpus: float = 1.0, gpus: float = 1.0) -> Demand:
    return Demand("dedicated agents", n, {"CPU": cpus, "GPU": gpus})


def test_the_run_that_waited_forever_now_fails_at_once_naming_shortfall_and_fixes():
    # the cluster profile's three agents on two worker nodes of one CPU and one GPU each
    fixes = ["fewer agents: lower --per-seed", "fractional GPUs: agent_resources.num_gpus: 0.66"]
    with pytest.raises(PlacementError) as err:
        assess("this generate run", [agents(3), Demand("Ray Data dialogue workers", 2, {"CPU": 0.0})], fixes,
               [HEAD, node(1, 1), node(1, 1)], [], {"CPU": 2.0, "GPU": 2.0})
    text = str(err.value)
    assert "needs 3 CPUs + 3 GPUs at once (3 dedicated agents x 1 CPU + 1 GPU)" in text
    assert "3 node(s) have 2 CPUs + 2 GPUs" in text and "short by 1 CPU + 1 GPU" in text
    assert all(f"  - {fix}" in text for fix in fixes) and "a bigger cluster: add 1 CPU + 1 GPU" in text
    assert "dialogue workers" not in text  # workers that ask for nothing are not part of the shortfall


def test_each_actor_must_fit_one_node():
    with pytest.raises(PlacementError, match="totals suffice, but 1 engine actor fit no single node"):
        assess("this run", [Demand("engine actor", 1, {"CPU": 1.0, "GPU": 2.0})], [],
               [node(2, 1), node(2, 1)], [], {})
    placement = plan_placement([agents(3)], [HEAD, node(3, 2), node(3, 2)])
    assert placement.fits and placement.total == {"CPU": 3.0, "GPU": 3.0}


def test_fitting_runs_pass_and_say_when_other_work_holds_resources():
    placement, warning = assess("this run", [agents(2)], [], [node(2, 2)], [], {"CPU": 2.0, "GPU": 2.0})
    assert placement.fits and warning is None
    _, warning = assess("this run", [agents(2)], [], [node(2, 2)], [], {"CPU": 1.0, "GPU": 2.0})
    assert warning.startswith("this run waits for 1 CPU that other work on the cluster holds now")


def test_a_run_the_autoscaler_can_hold_waits_and_says_for_what():
    groups = [NodeGroup("cpu-head", {"CPU": 0.0}, 1), NodeGroup("gpu-workers", {"CPU": 4.0, "GPU": 1.0}, 4)]
    placement, warning = assess("this generate run", [agents(3)], [], [HEAD, node(4, 1)], groups, {})
    assert placement.autoscaler_fits and placement.autoscaled == {"gpu-workers": 2}
    assert warning.startswith("this generate run waits for the autoscaler to add 2 node(s) of group 'gpu-workers' "
                              "for 2 dedicated agents")
    full = [NodeGroup("gpu-workers", {"CPU": 4.0, "GPU": 1.0}, 1)]  # its one node is the one running
    with pytest.raises(PlacementError, match=r"short by 1 CPU \+ 4 GPUs"):
        assess("this generate run", [agents(5)], [], [HEAD, node(4, 1)], full, {})
    unlimited = [NodeGroup("gpu-workers", {"CPU": 4.0, "GPU": 1.0}, -1)]
    assert plan_placement([agents(9)], [HEAD], unlimited).autoscaled == {"gpu-workers": 9}


def test_agent_fixes_speak_in_configuration_terms():
    from cultura.actors.agents import agent_demands, agent_placement_fixes
    from cultura.config import load_config

    cluster = load_config(None, {"profile": "cluster"})
    demands = agent_demands(cluster, 3)
    assert [(d.what, d.count, dict(d.resources)) for d in demands] == [("dedicated agents", 3, {"CPU": 1, "GPU": 1})]
    nodes = [HEAD, node(2, 1), node(2, 1)]
    fixes = agent_placement_fixes(cluster, 3, nodes, "pass fewer --cultures")
    assert fixes[0] == "fewer agents: this run starts 3; pass fewer --cultures"
    # 0.66 GPUs would add up to 2 GPUs but not pack on nodes of one GPU each: the share offered is checked
    assert fixes[1].startswith("fractional GPUs: agent_resources.num_gpus: 0.5 fits the 3 agents on this cluster "
                               "(2 agents share a GPU")
    assert fixes[2] == ("shared placement: placement: shared (one engine actor of 4 CPUs + 1 GPU serves every agent; "
                        "engine_resources must then fit one node: the largest has 2 CPUs + 1 GPU)")
    assert plan_placement([agents(3, 1, 0.5)], nodes).fits and not plan_placement([agents(3, 1, 0.66)], nodes).fits
    assert not any("fractional" in f for f in agent_placement_fixes(cluster, 5, nodes, ""))  # CPUs are short too
    local = load_config(None, {})
    assert [d.what for d in agent_demands(local, 3)] == ["agents", "shared engine actor"]
    assert agent_placement_fixes(local, 3, nodes, "")[0].startswith("a smaller shared engine: engine_resources")
