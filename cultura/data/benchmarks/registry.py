"""The benchmarks cultura loads, by name. Adding one is a module with a ``BENCHMARK`` and an entry here."""

from __future__ import annotations

from cultura.data.benchmarks import blend, cdeval, culturalbench, culturebank, globalopinionqa, normad, worldvaluesbench
from cultura.data.benchmarks.schema import Benchmark
from cultura.errors import UnknownNameError

BENCHMARKS: dict[str, Benchmark] = {m.BENCHMARK.name: m.BENCHMARK for m in (
    globalopinionqa, culturalbench, blend, normad, cdeval, worldvaluesbench, culturebank)}


def get_benchmark(name: str) -> Benchmark:
    """The benchmark called ``name`` (case-insensitive); an unknown name lists the known ones."""
    key = name.strip().lower()
    if key not in BENCHMARKS:
        raise UnknownNameError("benchmark", name, BENCHMARKS)
    return BENCHMARKS[key]
