"""`cultura generate` on a multi-node cluster: dedicated agents spread over the worker nodes, the
node of each dialogue's delegate recorded, runs that cannot be placed refused at once, and a worker
node lost mid-run without a dialogue lost or written twice."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from cultura.errors import ClusterWarning

SMALL_RUN = ["--profile", "cluster", "--engine", "transformers", "--model", "default", "--cultures", "german,chinese",
             "--seeds", "bundled", "--max-seeds", "3", "--rounds", "1", "--max-tokens", "8"]


def test_dedicated_agents_spread_over_the_nodes_and_each_dialogue_names_its_node(cluster, workers, tmp_path):
    out = tmp_path / "gen"
    result = cluster.cli("generate", *SMALL_RUN, "--out", f"file://{out}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "warning:" not in result.stderr  # a file:// URI is the user's word that every node reaches it
    rows = pq.read_table(sorted((out / "dialogues").glob("part-*.parquet"))).to_pylist()
    assert len(rows) == 5 and len({r["dialogue_id"] for r in rows}) == 5
    nodes = {r["node_id"] for r in rows}
    assert nodes <= set(workers) and len(nodes) == 2, nodes  # two delegates, one per worker node
    by_culture = {}
    for r in rows:
        by_culture.setdefault(r["culture"], set()).add(r["node_id"])
    assert all(len(n) == 1 for n in by_culture.values())  # one delegate per culture, on one node
    assert "nodes             " in result.stdout and all(n[:12] in result.stdout for n in nodes)
    print(f"\ngenerate on the cluster: {result.stdout.strip().splitlines()[-3]}")


def test_a_run_the_cluster_cannot_hold_fails_at_once(cluster, workers, tmp_path):
    out = tmp_path / "gen"
    # 1 main contact + 2 cultures x 3 variations = 7 agents of 1 GPU on 6 GPUs
    result = cluster.cli("generate", *SMALL_RUN, "--per-seed", "3", "--out", str(out), timeout=120)
    assert result.returncode == 2
    assert "this generate run cannot be placed on this Ray cluster: it needs 7 CPUs + 7 GPUs" in result.stderr
    assert "short by 1 GPU" in result.stderr and "fractional GPUs: agent_resources.num_gpus: 0.5" in result.stderr
    assert "Traceback" not in result.stderr and not out.exists()


def test_waiting_for_the_autoscaler_is_said(cluster, workers):
    """The autoscaler reports its node groups to the GCS; a run that fits only once it adds nodes says so."""
    import ray
    from ray.core.generated import autoscaler_pb2

    from cultura.config import load_config
    from cultura.pipelines.generate.run import check_generate_placement
    from cultura.pipelines.generate.run import delegate

    group = autoscaler_pb2.NodeGroupConfig(name="gpu-workers", resources={"CPU": 4, "GPU": 3}, min_count=0,
                                           max_count=3)
    key, namespace = ray._raylet.GCS_AUTOSCALER_CLUSTER_CONFIG_KEY, ray._raylet.GCS_AUTOSCALER_STATE_NAMESPACE
    kv = ray.experimental.internal_kv
    kv._internal_kv_put(key, autoscaler_pb2.ClusterConfig(node_group_configs=[group]).SerializeToString(),
                        namespace=namespace)
    try:
        config = load_config(None, {"profile": "cluster", "engine.kind": "transformers"})
        personas = [delegate(c, i, "English") for c in ("german", "chinese") for i in range(4)]  # 8 GPUs
        with pytest.warns(ClusterWarning, match=r"waits for the autoscaler to add 1 node\(s\) of group 'gpu-workers' "
                                                r"for 2 dedicated agents"):
            check_generate_placement(config, personas, workers=2)
    finally:
        kv._internal_kv_del(key, namespace=namespace)


def test_losing_a_worker_node_mid_run_loses_and_duplicates_no_dialogue(cluster, workers, tmp_path):
    from cultura.config import load_config
    from cultura.pipelines.generate.run import generate_dialogues, read_dialogues
    from cultura.ray_utils import actor_nodes

    config = load_config(None, {
        "profile": "cluster", "engine.kind": "transformers", "engine.model": "default", "engine.dtype": "float32",
        "generate.cultures": ["german", "chinese"], "generate.max_seeds": 5, "generate.rounds": 1,
        "generate.batch_size": 1, "generate.workers": 2, "generate.rows_per_file": 1, "sampling.max_tokens": 8})
    out = tmp_path / "gen"
    lost = []

    def lose_a_node(part):
        if lost:
            return
        agents = actor_nodes("cultura-agent-")
        victim = next(node for name, node in agents.items() if name.endswith("contact:lily"))  # in every dialogue
        cluster.remove_worker(victim)
        lost.append(victim)

    with pytest.warns(ClusterWarning, match="is a path on this machine's disk, but the Ray cluster has 3 nodes"):
        first = generate_dialogues(config, out, on_part=lose_a_node)
    assert lost, "the run ended before a node could be removed"
    runs = [first]
    while not runs[-1].complete and len(runs) < 3:  # what failed for good is finished by --resume
        runs.append(generate_dialogues(config, out, resume=True))
    table = read_dialogues(out)
    ids = table.column("dialogue_id").to_pylist()
    assert runs[-1].complete and len(ids) == len(set(ids)) == first.planned  # every dialogue exactly once
    survivor = (set(workers) - set(lost)).pop()
    nodes = [set(n.split(",")) for n in table.column("node_id").to_pylist()]
    assert any(survivor in n for n in nodes) and all(n <= set(workers) for n in nodes)
    print(f"\nnode lost mid-generate: {first.planned} planned, {first.dialogues} written by the run, "
          f"{len(first.failures)} failed and were finished by {len(runs) - 1} --resume run(s); "
          f"{len(ids)} written in all, 0 duplicates")
