"""The experiment's report: one table per evaluation in the paper's layout, read from the stage folders.

Rows are the methods, the trained variants (``adapter (+Verify)``), the controls and the trivial
baselines; columns the evaluation's figures, each ``mean [low, high]`` with its 95% bootstrap interval
(:mod:`cultura.intervals`), and ``vs_base``: the paired difference with the base model over the same
units (questions x countries for opinions, cultures for Hofstede, task x culture cells for moderation),
the direct answer to "did the method move the model?", and for a trained variant ``vs_control``: its
own culture's adapter against the other-culture control over the same units, which separates what
fine-tuning taught about the culture from what it taught about answering. ``results.parquet`` holds
every figure in long form (one row per table cell, then one per unit score).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cultura.cards import PAPERS, data_licence, provenance, write_card
from cultura.config import CulturaConfig
from cultura.eval import plots
from cultura.eval.report import markdown_table, with_intervals, write_table, write_text
from cultura.experiments.spec import ExperimentSpec
from cultura.intervals import MIN_ITEMS, MIN_VERDICT_UNITS, bootstrap_note, paired_difference, versus_baseline

METHOD_ROWS = "by_method.json"  # each evaluation stage's per-method means, as its report computed them
BASE = "base"
# results.parquet: one row per table cell (level "table") and per unit score (level "unit")
RESULT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("evaluation", "string"), ("row", "string"), ("kind", "string"), ("level", "string"), ("unit", "string"),
    ("metric", "string"), ("value", "double"), ("low", "double"), ("high", "double"),
)
PAIRED = ("vs_base", "vs_control")  # paired differences: with the base model; own adapter with the control


@dataclass(frozen=True)
class Layout:
    """How one evaluation's table reads: the figures with intervals, the columns shown, and the per-unit
    score ``vs_base`` pairs on (``unit_file``'s ``unit_keys`` and ``score``; ``higher`` when more is better)."""

    figures: tuple[str, ...]
    signed: tuple[str, ...]
    columns: tuple[str, ...]
    unit_file: str
    unit_keys: tuple[str, ...]
    score: str
    higher: bool
    headline: str  # the figure plotted


LAYOUTS = {
    "opinions": Layout(("similarity", "lift", "alignment_pct", "valid_mass"), ("lift",),
                       ("row", "countries", "questions", "similarity", "lift", "versus_baseline", "vs_base",
                        "vs_control", "alignment_pct", "valid_mass"),
                       "results.parquet", ("target", "item_id"), "similarity", True, "similarity"),
    "hofstede": Layout(("mean_distance", "lift"), ("lift",),
                       ("row", "targets", "mean_distance", "lift", "versus_baseline", "vs_base", "vs_control",
                        "mean_r"),
                       "summary.parquet", ("target",), "distance", False, "mean_distance"),
    "moderation": Layout(("macro_f1", "roc_auc", "lift"), ("lift",),
                         ("row", "cells", "macro_f1", "lift", "vs_base", "vs_control", "roc_auc"),
                         "summary.parquet", ("task", "target"), "macro_f1", True, "macro_f1"),
    "bench": Layout(("accuracy", "question_accuracy", "random", "most_common", "lift", "orientation", "similarity"),
                    ("lift",),
                    ("row", "items", "accuracy", "questions", "question_accuracy", "random", "most_common",
                     "best_baseline", "lift", "versus_baseline", "vs_base", "vs_control", "orientation",
                     "r_hofstede", "similarity"),
                    "results.parquet", ("subset", "target", "item_id"), "correct", True, "accuracy"),
}
METRIC_NOTES = {
    "opinions": "similarity: 1 - Jensen-Shannon distance to the country's answer distribution on held-out "
                "questions (higher is closer); lift: paired difference with the best trivial baseline; "
                "valid_mass: probability the model put on the options at all.",
    "hofstede": "mean_distance: Euclidean distance of the VSM 2013 indices to Hofstede's published scores "
                "(lower is closer; vs_base below zero means closer than the base model); lift: the best trivial "
                "baseline's distance minus the row's (above zero: closer than that baseline).",
    "moderation": "macro_f1 on the test split, threshold chosen on the dev split; lift: over the best "
                  "constant-label baseline.",
    "bench": "accuracy: share of the benchmark's scored items whose top option (by log-probability) is the gold "
             "answer; question_accuracy: where items share a question (CulturalBench-Hard's four true/false "
             "rows), the share of questions with every row right, the benchmark's own metric; random and "
             "most_common: the trivial baselines on the same items; lift: accuracy above the better of them. "
             "A benchmark with several subsets has a row per method and subset ([subset]); vs_base pairs items.",
}


def evaluation_kind(table: str) -> str:
    """The evaluation a table of the experiment report shows: ``bench-<name>`` tables are benchmarks."""
    return "bench" if table.startswith("bench-") else table


def write_experiment_report(root: Path, spec: ExperimentSpec, config: CulturaConfig,
                            runs: Sequence[Any]) -> tuple[list[Path], list[dict[str, Any]]]:
    """Write ``report.md``, ``results.parquet``, one plot per evaluation and the card into ``root``;
    return (the files written, the table rows of every evaluation)."""
    tables: dict[str, list[dict[str, Any]]] = {}
    long: list[dict[str, Any]] = []
    for table, evaluation, _ in spec.evaluations.tables():
        stages = [r for r in runs if r.stage.kind == "eval"
                  and r.stage.params.get("table", r.stage.params["evaluation"]) == table]
        rows, units = evaluation_table(evaluation, stages)
        tables[table] = rows
        long += _long_rows(table, rows, units)
    files = write_table(root, "results", long, RESULT_COLUMNS)
    figures = []
    for table, rows in tables.items():
        layout = LAYOUTS[evaluation_kind(table)]
        shown = [r for r in rows if r.get(layout.headline) is not None]
        if shown:
            path = root / f"{table}.png"
            plots.interval_bars(path, f"{spec.name}: {table}", layout.headline, [r["row"] for r in shown],
                                [(r[layout.headline], r.get(f"{layout.headline}_low"),
                                  r.get(f"{layout.headline}_high")) for r in shown])
            figures.append(path)
    files += figures
    files.append(write_text(root / "report.md", _markdown(spec, config, tables, runs, figures, root)))
    files.append(_write_card(root, spec, config, runs))
    return files, [row | {"evaluation": e} for e, rows in tables.items() for row in rows]


def evaluation_table(evaluation: str, stages: Sequence[Any]) -> tuple[list[dict[str, Any]], dict[str, dict]]:
    """(one row per method, variant, control and baseline; each row's unit scores) of one evaluation,
    from its stage folders, with ``vs_base`` against the base model where it ran."""
    layout = LAYOUTS[evaluation]
    rows: list[dict[str, Any]] = []
    units: dict[str, dict] = {}
    baselines: list[dict[str, Any]] = []
    for run in stages:
        params = run.stage.params
        entries = json.loads((run.folder / METHOD_ROWS).read_text(encoding="utf-8"))
        scores = _unit_scores(run.folder / layout.unit_file, layout)
        subsets = {e["subset"] for e in entries if e.get("subset")}
        for entry in entries:
            method = entry["method"]
            if method in params["methods"]:
                label, control_of = params["labels"].get(method, method), params.get("control_of")
                mine, subset = scores.get(method, {}), entry["subset"] if len(subsets) > 1 else None
                if subset:  # a benchmark's subsets: one row each, paired over the subset's items
                    label, control_of = _in_subset(label, subset), control_of and _in_subset(control_of, subset)
                    mine = {k: v for k, v in mine.items() if k[0] == subset}
                kind = "control" if params.get("rotate") else "method"
                rows.append(entry | {"row": label, "kind": kind, "stage": run.stage.name, "control_of": control_of,
                                     "row_subset": subset})
                units[label] = mine
            elif not any(b["row"] == method for b in baselines):  # the same baselines in every stage
                baselines.append(entry | {"row": method, "kind": "baseline", "stage": run.stage.name})
                units[method] = scores.get(method, {})
    for row in rows + baselines:
        base = _in_subset(BASE, row.get("row_subset"))
        _paired(row, "vs_base", units.get(row["row"], {}), units.get(base) if row["row"] != base else None,
                layout.higher)
    for control in (r for r in rows if r["kind"] == "control"):
        own = next(r for r in rows if r["row"] == control["control_of"])
        _paired(own, "vs_control", units.get(own["row"], {}), units.get(control["row"]), layout.higher)
    return rows + baselines, units


def _in_subset(label: str, subset: str | None) -> str:
    """A row's name within a benchmark's subset: ``base [Hard]`` (the label itself without a subset)."""
    return f"{label} [{subset}]" if subset else label


def _unit_scores(path: Path, layout: Layout) -> dict[str, dict[tuple, float]]:
    """method -> unit key -> score, from a stage's results or summary table (answered rows only)."""
    import pyarrow.parquet as pq

    if not path.is_file():
        return {}
    out: dict[str, dict[tuple, float]] = {}
    for row in pq.read_table(path).to_pylist():
        value = row.get(layout.score)
        if value is None or (isinstance(value, float) and math.isnan(value)) or row.get("status", "ok") != "ok":
            continue
        out.setdefault(row["method"], {})[tuple(row[k] for k in layout.unit_keys)] = float(value)
    return out


def _paired(row: dict[str, Any], name: str, mine: dict[tuple, float], other: dict[tuple, float] | None,
            higher: bool) -> None:
    """Set ``name`` on ``row``: the mean paired difference with ``other``'s scores over the units both
    have, its interval, the units it rests on (``name_units``) and what it says (``name_reads``: better
    / worse when the interval excludes zero, ``higher`` telling which sign is better; else cannot tell)."""
    shared = sorted(set(mine) & set(other)) if other else []
    if not shared:
        row.update({name: None, f"{name}_low": None, f"{name}_high": None, f"{name}_units": 0, f"{name}_reads": ""})
        return
    diff = paired_difference([mine[k] for k in shared], [other[k] for k in shared])
    reads = versus_baseline(diff)
    if not higher:
        reads = {"better": "worse", "worse": "better"}.get(reads, reads)
    row.update({name: diff.mean, f"{name}_low": diff.low, f"{name}_high": diff.high, f"{name}_units": len(shared),
                f"{name}_reads": reads})


def _long_rows(evaluation: str, rows: Sequence[dict[str, Any]], units: dict[str, dict]) -> list[dict[str, Any]]:
    """The table's cells and every unit score, one row each (``level``: table | unit)."""
    layout = LAYOUTS[evaluation_kind(evaluation)]
    out = []
    for row in rows:
        for figure in (*layout.figures, *PAIRED):
            if row.get(figure) is not None:
                out.append({"evaluation": evaluation, "row": row["row"], "kind": row["kind"], "level": "table",
                            "unit": None, "metric": figure, "value": float(row[figure]),
                            "low": _float(row.get(f"{figure}_low")), "high": _float(row.get(f"{figure}_high"))})
        for key, value in sorted(units.get(row["row"], {}).items()):
            out.append({"evaluation": evaluation, "row": row["row"], "kind": row["kind"], "level": "unit",
                        "unit": "/".join(map(str, key)), "metric": layout.score, "value": value,
                        "low": None, "high": None})
    return out


def _float(value: Any) -> float | None:
    return None if value is None else float(value)



def _markdown(spec: ExperimentSpec, config: CulturaConfig, tables: dict[str, list[dict[str, Any]]],
              runs: Sequence[Any], figures: Sequence[Path], root: Path) -> str:
    paper = PAPERS[spec.paper]
    lines = [f"# Experiment {spec.name}\n", f"{spec.description}\n" if spec.description else "",
             f"Protocol: {paper.name} ({paper.reference}). Model: `{config.engine.model}` on the "
             f"{config.engine.kind} engine. Cultures: {', '.join(spec.cultures)}. Seeds: `{spec.seeds}` "
             "(dialogues and fine-tuning use the train split; opinions score the held-out eval split).\n",
             f"Every figure is `mean [low, high]`. {bootstrap_note()} `vs_base` is the paired difference with "
             "the base model over the same units, `vs_control` an adapter's own culture against the other-culture "
             "control (the same training, another culture's adapter): a format effect lifts both, a "
             "cultural one only the first. *better* / *worse* only when an interval excludes zero over at "
             f"least {MIN_VERDICT_UNITS} units, otherwise *cannot tell*; a difference over fewer than {MIN_ITEMS} "
             "units says *few* (a bootstrap over a handful of units is rough).\n"]
    if config.engine.model == "default":
        lines.append("The default model (SmolLM2-135M) barely tells cultures apart: expect most differences "
                     "to be *cannot tell*. Read the intervals before the means.\n")
    for table, rows in tables.items():
        layout = LAYOUTS[evaluation_kind(table)]
        shown = with_intervals(rows, (*layout.figures, *PAIRED), (*layout.signed, *PAIRED))
        for row, original in zip(shown, rows):
            for name in PAIRED:
                if original.get(f"{name}_reads"):
                    units = original[f"{name}_units"]
                    few = f"; {units} units: few" if units < MIN_ITEMS else ""
                    row[name] = f"{row[name]} ({original[f'{name}_reads']}{few})"
        lines += [f"\n## {table}\n", METRIC_NOTES[evaluation_kind(table)] + "\n",
                  markdown_table(shown, [c for c in layout.columns if any(c in r for r in rows)])]
    if figures:
        lines.append("\n## Plots\n")
        lines += [f"![{f.stem}]({f.name})\n" for f in figures]
    lines.append("\n## Stages\n")
    lines.append(markdown_table([{"stage": r.stage.name, "folder": str(r.folder.relative_to(root)),
                                  "this run": r.status, "seconds": f"{r.seconds:.0f}"} for r in runs]))
    lines.append("\nEach evaluation stage's folder holds its own full report (per country / culture, with "
                 "every answer in `results.parquet`). All figures of this page: `results.parquet`.\n")
    return "\n".join(line for line in lines if line)


def _write_card(root: Path, spec: ExperimentSpec, config: CulturaConfig, runs: Sequence[Any]) -> Path:
    fields = {"experiment": spec.name, **provenance(config, spec.paper), "cultures": list(spec.cultures),
              "seeds": spec.seeds, "data_licence": data_licence(spec.seeds),
              "stages": {r.stage.name: r.stage.key for r in runs}, "config": config.model_dump(mode="json")}
    return write_card(root, f"Experiment {spec.name}", fields,
                      "What produced this folder; the results are in `report.md` and `results.parquet`. "
                      "`experiment.yaml` reruns it: `cultura experiment run experiment.yaml --out <this folder>` "
                      "skips every finished stage. Each stage's folder carries its own card.")
