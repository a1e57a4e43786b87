"""Custom Ray metrics for every stage, named ``cultura_*``, exported through Ray's Prometheus endpoint.

A stage declares its metrics once (name, kind, description, tag keys) and records values with
:meth:`Metrics.inc` / :meth:`Metrics.observe` / :meth:`Metrics.set`. Metric objects are created lazily
in whichever process records (a Ray Data worker, an actor) and cached per process. The Ray dashboard
and any Prometheus scraping the cluster's metrics endpoint see them as ``ray_cultura_<name>``
(:attr:`MetricSpec.series`); every declared metric is listed in :data:`DECLARED`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

PREFIX = "cultura_"
# seconds; spans a short engine call up to a long multi-round dialogue
DEFAULT_BOUNDARIES = (0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600)


@dataclass(frozen=True)
class MetricSpec:
    """One metric: ``kind`` is "counter", "gauge" or "histogram"; ``tags`` are its tag keys."""

    name: str
    kind: str
    description: str
    tags: tuple[str, ...] = ()
    boundaries: tuple[float, ...] = DEFAULT_BOUNDARIES

    @property
    def full_name(self) -> str:
        """The exported name, with the ``cultura_`` prefix."""
        return self.name if self.name.startswith(PREFIX) else PREFIX + self.name

    @property
    def series(self) -> tuple[str, ...]:
        """The Prometheus series Ray exports for it: ``ray_<name>_total`` for a counter, ``ray_<name>``
        for a gauge, ``ray_<name>_bucket``/``_sum``/``_count`` for a histogram."""
        base = "ray_" + self.full_name
        return {"counter": (base + "_total",), "gauge": (base,),
                "histogram": (base + "_bucket", base + "_sum", base + "_count")}[self.kind]


_CACHE: dict[str, Any] = {}
DECLARED: dict[str, MetricSpec] = {}  # every metric a loaded module declared, by exported name


def _metric(spec: MetricSpec) -> Any:
    """The Ray metric object for ``spec`` in this process (created once)."""
    metric = _CACHE.get(spec.full_name)
    if metric is None:
        from ray.util import metrics

        if spec.kind == "counter":
            metric = metrics.Counter(spec.full_name, description=spec.description, tag_keys=spec.tags)
        elif spec.kind == "histogram":
            metric = metrics.Histogram(spec.full_name, description=spec.description,
                                       boundaries=list(spec.boundaries), tag_keys=spec.tags)
        elif spec.kind == "gauge":
            metric = metrics.Gauge(spec.full_name, description=spec.description, tag_keys=spec.tags)
        else:
            raise ValueError(f"metric kind must be 'counter', 'gauge' or 'histogram', got {spec.kind!r}")
        _CACHE[spec.full_name] = metric
    return metric


@dataclass
class Metrics:
    """A stage's metrics by short name; recording is a no-op for names it does not declare.

    Recording never raises: a metric that cannot be exported must not fail the work it measures.
    """

    specs: Sequence[MetricSpec]
    _by_name: dict[str, MetricSpec] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._by_name = {s.name: s for s in self.specs}
        DECLARED.update((s.full_name, s) for s in self.specs)

    def inc(self, name: str, value: float = 1.0, **tags: Any) -> None:
        """Add ``value`` to the counter ``name`` with the given tags."""
        self._record(name, "counter", value, tags)

    def observe(self, name: str, value: float, **tags: Any) -> None:
        """Record ``value`` in the histogram ``name`` with the given tags."""
        self._record(name, "histogram", value, tags)

    def set(self, name: str, value: float, **tags: Any) -> None:
        """Set the gauge ``name`` (a value that goes up and down, such as a loss) with the given tags."""
        self._record(name, "gauge", value, tags)

    def _record(self, name: str, kind: str, value: float, tags: Mapping[str, Any]) -> None:
        spec = self._by_name.get(name)
        if spec is None or spec.kind != kind or value is None:
            return
        clean = {k: str(tags.get(k, "")) for k in spec.tags}
        try:
            metric = _metric(spec)
            if kind == "counter":
                if value > 0:
                    metric.inc(float(value), tags=clean)
            elif kind == "gauge":
                metric.set(float(value), tags=clean)
            else:
                metric.observe(float(value), tags=clean)
        except Exception:  # the metrics agent is unreachable or Ray is not up: keep working
            pass


def counter(name: str, description: str, tags: Sequence[str] = ()) -> MetricSpec:
    """Declare a counter (a total that only grows)."""
    return MetricSpec(name, "counter", description, tuple(tags))


def gauge(name: str, description: str, tags: Sequence[str] = ()) -> MetricSpec:
    """Declare a gauge (the latest value of something that goes up and down)."""
    return MetricSpec(name, "gauge", description, tuple(tags))


def histogram(name: str, description: str, tags: Sequence[str] = (),
              boundaries: Sequence[float] = DEFAULT_BOUNDARIES) -> MetricSpec:
    """Declare a histogram (a distribution, such as seconds per call)."""
    return MetricSpec(name, "histogram", description, tuple(tags), tuple(boundaries))


def scrape_local(timeout_s: float = 5.0) -> list[tuple[str, dict[str, str], float]]:
    """The ``cultura`` samples of this node's Prometheus export: (name, labels, value) each.

    Names carry Ray's ``ray_`` prefix (``ray_cultura_turns``). Ray exports recorded values every few
    seconds, so a value recorded just now may not be there yet.
    """
    import re
    import urllib.request

    import ray

    port = ray._private.worker.global_worker.node.metrics_export_port
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout_s) as response:
        text = response.read().decode("utf-8")
    samples = []
    pattern = re.compile(r'^(ray_cultura_\w+)(?:\{(.*)\})?\s+(\S+)$')
    for line in text.splitlines():
        match = pattern.match(line)
        if match:
            labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
            samples.append((match.group(1), labels, float(match.group(3))))
    return samples


def total(samples: list[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float:
    """Sum of the samples named ``name`` whose labels include ``labels``.

    ``name`` may leave out ``ray_``, ``cultura_`` and a counter's ``_total`` suffix.
    """
    wanted = name if name.startswith("ray_") else "ray_" + (name if name.startswith(PREFIX) else PREFIX + name)
    names = {wanted, wanted + "_total"}
    return sum(v for n, tags, v in samples if n in names and all(tags.get(k) == x for k, x in labels.items()))
