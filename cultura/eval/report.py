"""Writing an evaluation's report folder: raw results (Parquet + CSV), summary tables, report.md.

Every file is written under a temporary name and moved into place, so a report folder never holds
a half-written file. The raw results have one Arrow schema (:data:`RESULT_SCHEMA`) for all three
evaluations; columns an evaluation does not use are null.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from cultura.eval.jobs import not_applicable, sample_counts

# column name -> Arrow type name; the schema is built from this once (see result_schema()).
RESULT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("evaluation", "string"),    # hofstede | opinions | moderation | bench
    ("item_id", "string"),       # VSM item number, seed id, or task:row
    ("item_text", "string"),
    ("target", "string"),        # culture key or country as evaluated
    ("country", "string"),       # reference country
    ("method", "string"),
    ("status", "string"),        # ok | not_applicable | unreadable | failed
    ("note", "string"),          # why not applicable / unreadable / failed, or a caveat
    ("options", "list<string>"),
    ("probs", "list<double>"),   # the method's distribution over the options
    ("valid_mass", "double"),    # probability put on the options before renormalising (baselines: null)
    ("expected", "double"),      # expected option number (1-based)
    ("top_option", "int32"),     # most likely option number (1-based)
    ("reference", "list<double>"),  # opinions: the country's distribution over the options
    ("reference_source", "string"),  # opinions: whose data, majority or distribution, provenance
    ("similarity", "double"),    # opinions: 1 - Jensen-Shannon distance (base 2) of probs and reference
    ("split", "string"),         # opinions: the seed's split (train | eval)
    ("overlap", "bool"),         # opinions: the adapter was trained on this seed (--allow-overlap)
    ("label", "string"),         # moderation: gold label
    ("prediction", "string"),    # moderation: predicted label; bench: the top option
    ("gold", "string"),          # bench: the gold answer
    ("subset", "string"),        # bench: the item's subset (CulturalBench Easy / Hard; "-" without one)
    ("response", "string"),      # bench: the free-text reply to an open (short-answer) question
    ("swapped", "bool"),         # bench: an orientation item asked with its two options in reverse order
    ("correct", "bool"),         # bench: the top option is the gold answer
    ("gate", "string"),          # JSON continent -> weight (gate-based methods)
    ("components", "string"),    # JSON: each component's label, adapter, weight, distribution, counts
    ("n_samples", "int32"),
    ("n_reasks", "int32"),
    ("n_unparsable", "int32"),
)


def result_schema():
    """The Arrow schema of results.parquet."""
    return arrow_schema(RESULT_COLUMNS)


def arrow_schema(columns: Sequence[tuple[str, str]]):
    """An Arrow schema from (name, type name) pairs; type names: string, double, int32, list<...>."""
    import pyarrow as pa

    scalar = {"string": pa.string(), "double": pa.float64(), "int32": pa.int32(), "bool": pa.bool_()}

    def build(name: str):
        if name.startswith("list<") and name.endswith(">"):
            return pa.list_(build(name[5:-1]))
        return scalar[name]

    return pa.schema([(name, build(kind)) for name, kind in columns])


def atomic_write(path: Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(temp_path)`` then move the temporary file to ``path``; returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(temp))
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return path


def write_text(path: Path, text: str) -> Path:
    """Write a text file atomically (UTF-8)."""
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def write_table(folder: Path, stem: str, rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> list[Path]:
    """Write rows as ``stem.parquet`` (Arrow schema from ``columns``) and ``stem.csv`` (lists as JSON)."""
    import csv

    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = arrow_schema(columns)
    names = [name for name, _ in columns]
    table = pa.Table.from_pylist([{n: r.get(n) for n in names} for r in rows], schema=schema)
    parquet = atomic_write(folder / f"{stem}.parquet", lambda p: pq.write_table(table, p))

    def write_csv(p: Path) -> None:
        with p.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(names)
            for r in rows:
                writer.writerow([_csv_cell(r.get(n)) for n in names])

    return [parquet, atomic_write(folder / f"{stem}.csv", write_csv)]


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, float):
        return repr(round(value, 6))
    return value


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None, digits: int = 3) -> str:
    """A GitHub-flavoured Markdown table (None as "-", floats rounded)."""
    if not rows:
        return "_(none)_\n"
    columns = list(columns or rows[0])

    def cell(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:.{digits}f}"
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def with_intervals(rows: Sequence[dict[str, Any]], names: Sequence[str], signed: Sequence[str] = (),
                   digits: int = 3) -> list[dict[str, Any]]:
    """Rows for a Markdown table where each figure in ``names`` reads ``mean [low, high]`` (from the
    row's ``name``, ``name_low``, ``name_high``; ``signed`` ones with explicit signs, for differences),
    and ``questions`` / ``items`` / ``examples`` counts are marked *few* when the row's ``few`` is set."""
    out = []
    for row in rows:
        shown = dict(row)
        for name in names:
            mean, low, high = row.get(name), row.get(f"{name}_low"), row.get(f"{name}_high")
            if mean is None:
                continue
            sign = "+" if name in signed else ""
            shown[name] = (f"{mean:{sign}.{digits}f}" if low is None or high is None
                           else f"{mean:{sign}.{digits}f} [{low:{sign}.{digits}f}, {high:{sign}.{digits}f}]")
        if row.get("few"):
            for count in ("questions", "items", "examples"):
                if row.get(count) is not None:
                    shown[count] = f"{row[count]} *few*"
        out.append(shown)
    return out


ALL = "all"  # the country column of a row over every country


def country_cells(rows: Sequence[dict[str, Any]]) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """``(ALL, rows)``, then each country (a row's ``target``, sorted) with its own rows: the cells a
    summary reports, so a country is scored only on its own data."""
    yield ALL, list(rows)
    for country in sorted({r["target"] for r in rows}):
        yield country, [r for r in rows if r["target"] == country]


def put_interval(entry: dict[str, Any], name: str, interval: Any) -> None:
    """Set ``entry[name]``, ``entry[name_low]`` and ``entry[name_high]`` from an interval's mean and bounds
    (the layout :func:`with_intervals` reads)."""
    entry.update({name: interval.mean, f"{name}_low": interval.low, f"{name}_high": interval.high})


def method_lines(methods: Sequence[Any]) -> str:
    """A Markdown list of the methods compared, with their descriptions."""
    return "".join(f"- `{m.name}`: {m.description}\n" for m in methods)


def run_description(config: Any) -> str:
    """One paragraph on how answers were read (engine, model, mode, seed)."""
    e = config.eval
    if e.mode == "score":
        how = ("option scoring: the distribution over the options is the softmax of the log-probabilities "
               "of the option numbers, and the valid mass is the probability the model put on those numbers "
               "before renormalising; a mixture method mixes its components' distributions by weight")
    else:
        how = (f"sampling: {e.samples} answers per question (temperature {e.temperature}, top_p {e.top_p}, "
               f"seed {e.seed}, at most {e.max_tokens} tokens), read by a parser; an unreadable answer is "
               f"re-asked up to {e.max_reasks} times and counted, never replaced by a default; the valid mass "
               "is the share of answers that named an option at the first ask")
    return (f"Engine `{config.engine.kind}`, model `{config.engine.model}`. Answers by {how}.\n")


def short(value: Any, digits: int = 3) -> str:
    """A value for a table cell: "-" for None, floats rounded to ``digits``."""
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def markdown_tail(rows: Sequence[dict[str, Any]], config: Any, figures: Sequence[tuple[str, Path]], out: Path) -> str:
    """The end every report shares: what was not evaluated and why, sample counts, figures, files."""
    missing = not_applicable(rows)
    lines = ["\n## Not evaluated\n",
             markdown_table(missing) if missing else "Every method answered every item for every target.\n"]
    if config.eval.mode == "sample":
        counts = sample_counts(rows)
        lines.append(f"\nSampled answers: {counts['n_samples']}, re-asked: {counts['n_reasks']}, "
                     f"still unreadable after re-asking (left out, not replaced): {counts['n_unparsable']}.\n")
    lines.append("\n## Figures\n")
    lines += [f"### {title}\n\n![{title}]({path.relative_to(out)})\n" for title, path in figures]
    if not any(p.name == "gate_weights.png" for _, p in figures):
        lines.append("No gate weight heat map: the `palette` method was not run.\n")
    lines.append("\nRaw answers: `results.parquet` / `results.csv`; summary: `summary.parquet` / `summary.csv`.\n")
    return "\n".join(lines)


def gate_section(gates: dict[str, Sequence[float]], continents: Sequence[str], what: str = "target") -> str:
    """A Markdown section with the mean Cultural MoE gate weight per continent for each row name."""
    if not gates:
        return ""
    rows = [{what: name, **{c: float(w) for c, w in zip(continents, weights)}} for name, weights in gates.items()]
    return "\n## Cultural MoE gate weights (mean)\n\n" + markdown_table(rows, [what, *continents], 2)
