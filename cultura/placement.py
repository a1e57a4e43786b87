"""Can a run be placed? What it asks Ray for, checked against the cluster before any work starts.

Ray queues an actor that no node can hold and waits for it forever, silently: a run whose agents ask
for more GPUs than the cluster has would sit at 0 dialogues. So every stage states its demand (how
many actors of which resources: agents, engine actors, Ray Data workers, Serve replicas, Ray Train
workers) and :func:`check_placement` packs it onto the nodes, each actor on one node:

- it fits the nodes there are: go (with a note when other work holds what it needs right now);
- it fits only once the autoscaler adds nodes of its configured node groups: a warning says so, and
  for what, and the run waits as Ray does;
- it cannot fit: a :class:`~cultura.errors.PlacementError` names the shortfall and the fixes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cultura.errors import ClusterWarning, PlacementError

SCHEDULED = ("CPU", "GPU")  # the resources cultura's actors ask for (besides custom ones)
_EPS = 1e-9


@dataclass(frozen=True)
class Demand:
    """``count`` actors of ``what``, each asking Ray for ``resources`` (``{"CPU": 1, "GPU": 1}``)."""

    what: str
    count: int
    resources: Mapping[str, float]

    def per_actor(self) -> str:
        """``1 CPU + 1 GPU`` (or ``no CPU or GPU``)."""
        return _amounts({k: v for k, v in self.resources.items() if v > 0}) or "no CPU or GPU"


@dataclass(frozen=True)
class NodeGroup:
    """A node group the autoscaler may start: ``resources`` per node, at most ``max_count`` nodes
    (-1: no limit)."""

    name: str
    resources: Mapping[str, float]
    max_count: int


@dataclass
class Placement:
    """The outcome of packing a demand: what did not fit on today's nodes (``unplaced``), and of that,
    what the autoscaler's node groups would hold (``autoscaled``: group name -> nodes to add)."""

    total: dict[str, float]
    capacity: dict[str, float]
    nodes: int
    unplaced: list[tuple[str, dict[str, float]]] = field(default_factory=list)
    autoscaled: dict[str, int] = field(default_factory=dict)
    autoscaler_fits: bool = False

    @property
    def fits(self) -> bool:
        """True when every actor fits on a node there is now."""
        return not self.unplaced


def demand_total(demands: Sequence[Demand]) -> dict[str, float]:
    """The resources of every actor of ``demands`` added up."""
    total: dict[str, float] = {}
    for d in demands:
        for key, value in d.resources.items():
            if value > 0:
                total[key] = total.get(key, 0.0) + value * d.count
    return total


def pack(demands: Sequence[Demand], nodes: Sequence[Mapping[str, float]]) -> list[tuple[str, dict[str, float]]]:
    """Place each actor on a node (largest first, first node with room); return those that found none.

    A first-fit-decreasing packing: it finds a placement whenever Ray's scheduler would for the
    uniform actors cultura starts (agents alike, workers alike).
    """
    free = [dict(n) for n in nodes]
    actors = [(d.what, {k: v for k, v in d.resources.items() if v > 0}) for d in demands for _ in range(d.count)]
    actors.sort(key=lambda a: tuple(-a[1].get(k, 0.0) for k in ("GPU", "CPU")) + (-sum(a[1].values()),))
    unplaced = []
    for what, res in actors:
        node = next((n for n in free if all(n.get(k, 0.0) + _EPS >= v for k, v in res.items())), None)
        if node is None:
            unplaced.append((what, res))
            continue
        for k, v in res.items():
            node[k] = node.get(k, 0.0) - v
    return unplaced


def plan_placement(demands: Sequence[Demand], nodes: Sequence[Mapping[str, float]],
                   groups: Sequence[NodeGroup] = ()) -> Placement:
    """Pack ``demands`` on ``nodes`` (each node's total resources) and, for what does not fit, on new
    nodes of the autoscaler's ``groups`` (counting the nodes of a group that already run)."""
    capacity: dict[str, float] = {}
    for n in nodes:
        for k in _resource_keys(demands, n):
            capacity[k] = capacity.get(k, 0.0) + n.get(k, 0.0)
    placement = Placement(demand_total(demands), capacity, len(nodes))
    placement.unplaced = pack(demands, nodes)
    if placement.unplaced and groups:
        rest = [Demand(what, 1, res) for what, res in placement.unplaced]
        new_nodes: list[tuple[str, dict[str, float]]] = []
        for g in groups:
            running = sum(1 for n in nodes if _same_shape(n, g.resources))
            room = len(rest) if g.max_count < 0 else max(0, g.max_count - running)
            new_nodes += [(g.name, dict(g.resources))] * min(room, len(rest))
        left = pack(rest, [res for _, res in new_nodes]) if new_nodes else rest
        placement.autoscaler_fits = not left
        if placement.autoscaler_fits:
            placement.autoscaled = _nodes_used(rest, new_nodes)
    return placement


def _nodes_used(rest: list[Demand], new_nodes: list[tuple[str, dict[str, float]]]) -> dict[str, int]:
    """Group name -> how many of ``new_nodes`` the packing of ``rest`` touches."""
    free = [dict(res) for _, res in new_nodes]
    used: set[int] = set()
    for d in sorted(rest, key=lambda d: tuple(-d.resources.get(k, 0.0) for k in ("GPU", "CPU"))):
        for i, node in enumerate(free):
            if all(node.get(k, 0.0) + _EPS >= v for k, v in d.resources.items()):
                for k, v in d.resources.items():
                    node[k] -= v
                used.add(i)
                break
    counts: dict[str, int] = {}
    for i in used:
        counts[new_nodes[i][0]] = counts.get(new_nodes[i][0], 0) + 1
    return counts


def _resource_keys(demands: Sequence[Demand], node: Mapping[str, float]) -> list[str]:
    keys = set(SCHEDULED) | {k for d in demands for k, v in d.resources.items() if v > 0}
    return sorted(k for k in keys if k in node or k in SCHEDULED)


def _same_shape(node: Mapping[str, float], resources: Mapping[str, float]) -> bool:
    return all(abs(node.get(k, 0.0) - v) < _EPS for k, v in resources.items() if k in SCHEDULED or v > 0)


def _amounts(resources: Mapping[str, float]) -> str:
    def one(key: str, value: float) -> str:
        return f"{value:g} {key}" + ("s" if key in SCHEDULED and value != 1 else "")

    order = [k for k in SCHEDULED if k in resources] + sorted(k for k in resources if k not in SCHEDULED)
    return " + ".join(one(k, resources[k]) for k in order)


def cluster_nodes() -> list[dict[str, float]]:
    """The total resources of each alive node of the connected Ray cluster."""
    import ray

    return [dict(n["Resources"]) for n in ray.nodes() if n.get("Alive")]


def free_resources() -> dict[str, float]:
    """What the connected cluster has free right now, all nodes together."""
    import ray

    return dict(ray.available_resources())


def autoscaler_node_groups() -> list[NodeGroup]:
    """The node groups the cluster's autoscaler may start (empty without an autoscaler).

    Read from the cluster configuration the autoscaler reports to the GCS, as Ray Train and Ray Data
    do to size their requests.
    """
    try:
        import ray._private.state

        config = ray._private.state.state.get_cluster_config()
    except Exception:  # no autoscaler state on this cluster (or an older Ray): no groups
        return []
    if config is None:
        return []
    return [NodeGroup(g.name, dict(g.resources), g.max_count) for g in config.node_group_configs
            if g.resources and g.max_count != 0]


def check_placement(run: str, demands: Sequence[Demand], fixes: Sequence[str], warn: Any = None) -> Placement:
    """Check that ``demands`` can be placed on the connected cluster; raise or warn as the module says.

    ``run`` names the run in messages ("this generate run"); ``fixes`` are the changes that shrink
    its demand, in the user's terms (a bigger cluster is always added). ``warn`` is called with each
    warning (default: :func:`warnings.warn` with :class:`~cultura.errors.ClusterWarning`).
    """
    import warnings

    placement, warning = assess(run, demands, fixes, cluster_nodes(), autoscaler_node_groups(), free_resources())
    if warning:
        (warn or (lambda text: warnings.warn(text, ClusterWarning, stacklevel=3)))(warning)
    return placement


def assess(run: str, demands: Sequence[Demand], fixes: Sequence[str], nodes: Sequence[Mapping[str, float]],
           groups: Sequence[NodeGroup], free: Mapping[str, float]) -> tuple[Placement, str | None]:
    """:func:`check_placement` on given cluster facts: the placement and the warning to give (or None).

    ``nodes`` are the alive nodes' total resources, ``groups`` the autoscaler's node groups, ``free``
    what the cluster has free now. Raises :class:`~cultura.errors.PlacementError` when nothing fits.
    """
    placement = plan_placement(demands, nodes, groups)
    asked = "; ".join(f"{d.count} {d.what} x {d.per_actor()}" for d in demands
                      if d.count and any(v > 0 for v in d.resources.values()))
    if placement.fits:
        busy = {k: v - free.get(k, 0.0) for k, v in placement.total.items() if free.get(k, 0.0) + _EPS < v}
        if busy:
            return placement, (f"{run} waits for {_amounts(busy)} that other work on the cluster holds now "
                               f"(it needs {_amounts(placement.total)}: {asked})")
        return placement, None
    if placement.autoscaler_fits:
        nodes_to_add = ", ".join(f"{n} node(s) of group {g!r}" for g, n in sorted(placement.autoscaled.items()))
        return placement, (f"{run} waits for the autoscaler to add {nodes_to_add} for "
                           f"{_count_whats(placement.unplaced)}: they fit no node running now (it needs "
                           f"{_amounts(placement.total)}: {asked}; the {placement.nodes} running node(s) have "
                           f"{_amounts(placement.capacity)})")
    raise PlacementError(_shortfall_message(run, placement, asked, fixes))


def _count_whats(unplaced: Sequence[tuple[str, dict[str, float]]]) -> str:
    counts: dict[str, int] = {}
    for what, _ in unplaced:
        counts[what] = counts.get(what, 0) + 1
    return ", ".join(f"{n} {what}" for what, n in counts.items())


def _shortfall_message(run: str, placement: Placement, asked: str, fixes: Sequence[str]) -> str:
    missing = {k: v - placement.capacity.get(k, 0.0) for k, v in placement.total.items()
               if v > placement.capacity.get(k, 0.0) + _EPS}
    lines = [f"{run} cannot be placed on this Ray cluster: it needs {_amounts(placement.total)} at once "
             f"({asked}); the cluster's {placement.nodes} node(s) have {_amounts(placement.capacity) or 'none'}"]
    if missing:
        lines.append(f"  short by {_amounts(missing)}")
    else:
        lines.append(f"  the totals suffice, but {_count_whats(placement.unplaced)} fit no single node "
                     "(an actor runs on one node)")
    lines.append("  fixes:")
    lines += [f"  - {fix}" for fix in fixes]
    need = _amounts(missing) if missing else "nodes large enough for one actor each"
    lines.append(f"  - a bigger cluster: add {need} (more or larger worker nodes; on a cluster launcher, raise the "
                 "worker group's max_workers)")
    return "\n".join(lines)

