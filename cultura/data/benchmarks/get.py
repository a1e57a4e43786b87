"""``cultura data get``: read a benchmark (downloaded, or from a local file or folder), write its
``items.parquet`` and a dataset card (source, licence, paper, row counts per country)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from cultura.cards import write_card
from cultura.data.benchmarks.hub import pass_from
from cultura.data.benchmarks.schema import SCHEMA_VERSION, Benchmark, Loaded, write_items
from cultura.paths import cultura_home

# what each licence condition means for the user, said before the data is read
TERMS = {
    "non-commercial": "non-commercial use only",
    "share-alike": "share-alike: anything built from these rows must carry the same licence",
    "no-redistribution": "the survey answers may not be redistributed",
    "unstated": "no licence is stated: check the source before redistributing anything built from it",
}


def default_out(benchmark: Benchmark) -> Path:
    """Where ``cultura data get NAME`` writes by default: ``$CULTURA_HOME/benchmarks/NAME``."""
    return cultura_home() / "benchmarks" / benchmark.name


def licence_notice(benchmark: Benchmark) -> str:
    """One line naming the licence and, plainly, its conditions (non-commercial, share-alike, ...)."""
    conditions = [TERMS.get(t, t) for t in benchmark.terms]
    return f"{benchmark.title} licence: {benchmark.licence}" + (f" ({'; '.join(conditions)})" if conditions else "")


def load(benchmark: Benchmark, source: Path | None) -> tuple[Loaded, str]:
    """The benchmark read from ``source`` (a file or folder as published) or, without it, downloaded;
    returns what was read and where it came from (for the card)."""
    if source is not None:
        return benchmark.read(source), str(source)
    if benchmark.download is None:
        raise pass_from(benchmark.name, f"{benchmark.title} is not on the Hugging Face hub",
                        f"its files from {benchmark.source} ({benchmark.published})", downloadable=False)
    path = benchmark.download()
    return benchmark.read(path), benchmark.source


def write_benchmark(benchmark: Benchmark, loaded: Loaded, out: Path, read_from: str) -> tuple[Path, Path]:
    """Write ``out/items.parquet`` and ``out/README.md`` (the dataset card); returns both paths."""
    items_path = write_items(loaded.items, out)
    per_country = Counter(item.culture or "(none)" for item in loaded.items)
    fields = {
        "benchmark": benchmark.name, "title": benchmark.title, "measures": benchmark.measures,
        "source": benchmark.source, "read_from": read_from, "files": [f.name for f in loaded.files],
        "licence": benchmark.licence, "licence_terms": list(benchmark.terms),
        "paper": {"name": benchmark.paper.name, "arxiv": benchmark.paper.arxiv},
        "schema_version": SCHEMA_VERSION, "rows": len(loaded.items),
        "rows_per_kind": dict(Counter(i.kind for i in loaded.items)),
        "rows_per_subset": dict(Counter(i.subset or "(none)" for i in loaded.items)),
        "rows_per_split": dict(Counter(i.split for i in loaded.items)),
        "rows_per_country": dict(sorted(per_country.items())),
        "notes": loaded.notes,
    }
    table = "\n".join(f"| {name} | {n} |" for name, n in sorted(per_country.items()))
    body = (f"{benchmark.measures}. Full size: {benchmark.size}.\n\n{licence_notice(benchmark)}. "
            f"Paper: {benchmark.paper.name}, {benchmark.paper.reference}. Source: {benchmark.source}.\n\n"
            f"`items.parquet` holds {len(loaded.items)} items in cultura's benchmark schema "
            f"(see `cultura.data.benchmarks.schema`).\n\n| country or culture | rows |\n|---|---|\n{table}\n")
    if loaded.notes:
        body += "\nLeft out or worth knowing:\n\n" + "\n".join(f"- {n}" for n in loaded.notes) + "\n"
    card = write_card(out, f"{benchmark.title} items", fields, body)
    return items_path, card
