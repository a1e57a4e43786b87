"""Hofstede alignment (CulturePark's metric): the model answers the 24 VSM 2013 items as a culture.

Each item's answer is the expected option (1-5) of the method's distribution; the item means give
the six VSM indices (:func:`cultura.eval.hofstede.vsm_indices`), compared with the culture's
published Hofstede scores (its primary country) by Euclidean distance over the dimensions that
country has. Lower is better.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cultura.eval.hofstede import DIMENSION_ITEMS, hofstede_distance, vsm_indices
from cultura.eval.jobs import Question, evaluate, mean_gate
from cultura.eval.methods import Method, MethodContext, Target, culture_target
from cultura.eval.report import (RESULT_COLUMNS, gate_section, markdown_table, markdown_tail, method_lines,
                                 run_description, short, write_table, write_text)

SUMMARY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("target", "string"), ("country", "string"), ("method", "string"), ("items", "int32"),
    ("PDI", "double"), ("IDV", "double"), ("MAS", "double"), ("UAI", "double"), ("LTO", "double"),
    ("IVR", "double"), ("distance", "double"), ("dimensions", "int32"), ("note", "string"),
)


@dataclass
class HofstedeReport:
    """What ``cultura eval hofstede`` produced: summary rows, mean distance per method, files."""

    summary: list[dict[str, Any]]
    mean_distance: dict[str, float | None]
    rows: list[dict[str, Any]]
    files: list[Path] = field(default_factory=list)


def resolve_targets(cultures: str | Sequence[str]) -> list[Target]:
    """``all`` (the eight CulturePark cultures) or culture keys / countries, comma-separated."""
    from cultura.data.cultures import CULTUREPARK_CULTURES

    names = [c.strip() for c in cultures.split(",")] if isinstance(cultures, str) else list(cultures)
    names = [n for n in names if n]
    if names == ["all"]:
        names = list(CULTUREPARK_CULTURES)
    targets: list[Target] = []
    for name in names:
        target = culture_target(name)
        if target not in targets:
            targets.append(target)
    if not targets:
        from cultura.errors import CulturaError

        raise CulturaError("no culture given; use --cultures all or e.g. --cultures german,korean")
    return targets


def vsm_questions() -> list[Question]:
    """The 24 VSM 2013 items as questions (options 1-5)."""
    from cultura.data.vsm import load_vsm_items, vsm_prompt

    return [Question(str(item.number), item.text, vsm_prompt(item), item.options) for item in load_vsm_items()]


def available_indices(means: dict[int, float], c: float = 50.0) -> dict[str, float]:
    """VSM indices for the dimensions whose items all have a mean; other dimensions are left out.

    Uses :func:`vsm_indices`: items missing from ``means`` get a placeholder only so the call can
    run, and every dimension that would have used one is dropped from the result.
    """
    complete = [d for d, items in DIMENSION_ITEMS.items() if all(i in means for i in items)]
    if not complete:
        return {}
    padded = {i: means.get(i, 3.0) for i in range(1, 25)}
    indices = vsm_indices(padded, c)
    return {d: indices[d] for d in complete}


def summarise(rows: Sequence[dict[str, Any]], targets: Sequence[Target], methods: Sequence[Method]) -> list[dict[str, Any]]:
    """One summary row per (target, method): indices, distance to the country, items answered."""
    from cultura.data.hofstede import DIMENSIONS, country_scores

    summary = []
    for target in targets:
        reference = {d: v for d, v in country_scores(target.country).items() if v is not None}
        for method in methods:
            mine = [r for r in rows if r["target"] == target.key and r["method"] == method.name]
            means = {int(r["item_id"]): r["expected"] for r in mine if r["status"] == "ok"}
            indices = available_indices(means)
            entry: dict[str, Any] = {"target": target.key, "country": target.country, "method": method.name,
                                     "items": len(means), **{d: indices.get(d) for d in DIMENSIONS},
                                     "distance": None, "dimensions": None, "note": ""}
            if all(d in indices for d in reference):
                entry["distance"] = hofstede_distance({d: indices[d] for d in DIMENSIONS if d in indices}, target.country)
                entry["dimensions"] = len(reference)
            elif not means:
                entry["note"] = next((r["note"] for r in mine if r["note"]), "no item answered")
            else:
                lacking = [d for d in reference if d not in indices]
                entry["note"] = f"items missing for {', '.join(lacking)}"
            summary.append(entry)
    return summary


def mean_distances(summary: Sequence[dict[str, Any]], methods: Sequence[Method]) -> dict[str, float | None]:
    """Mean distance per method over the targets it has a distance for."""
    means = {}
    for method in methods:
        values = [s["distance"] for s in summary if s["method"] == method.name and s["distance"] is not None]
        means[method.name] = sum(values) / len(values) if values else None
    return means


def run_hofstede(config: Any, targets: Sequence[Target], methods: Sequence[Method], ctx: MethodContext,
                 out: Path) -> HofstedeReport:
    """Run the VSM 2013 evaluation and write the report folder ``out``."""
    questions = vsm_questions()
    rows = evaluate("hofstede", [(q, t) for t in targets for q in questions], methods, ctx, config)
    summary = summarise(rows, targets, methods)
    result = HofstedeReport(summary, mean_distances(summary, methods), rows)
    result.files = write_report(out, result, targets, methods, config)
    return result


def write_report(out: Path, result: HofstedeReport, targets: Sequence[Target], methods: Sequence[Method],
                 config: Any) -> list[Path]:
    """Write results, summary, plots (radar per culture, distance bars, gate heat map, table), report.md."""
    from cultura.data.hofstede import CONTINENTS, DIMENSIONS, country_scores
    from cultura.eval import plots

    out.mkdir(parents=True, exist_ok=True)
    files = write_table(out, "results", result.rows, RESULT_COLUMNS)
    files += write_table(out, "summary", result.summary, SUMMARY_COLUMNS)
    figures: list[tuple[str, Path]] = []
    for target in targets:
        series = {f"Hofstede ({target.country})": country_scores(target.country)}
        for s in result.summary:
            if s["target"] == target.key and s["items"]:
                series[s["method"]] = {d: s[d] for d in DIMENSIONS}
        path = plots.radar(out / f"radar_{target.key}.png", f"{target.key}: VSM 2013 indices vs Hofstede",
                           DIMENSIONS, series, reference=f"Hofstede ({target.country})")
        figures.append((f"Radar: {target.key}", path))
    groups = [t.key for t in targets] + ["mean"]
    series = {m.name: [_distance(result.summary, t.key, m.name) for t in targets] + [result.mean_distance[m.name]]
              for m in methods}
    figures.append(("Distance to Hofstede per method (lower is better)",
                    plots.grouped_bars(out / "distance_by_method.png", "Euclidean distance to Hofstede scores",
                                       "distance", groups, series)))
    gates = mean_gate(result.rows, CONTINENTS)
    if gates:
        names = [t.key for t in targets if t.key in gates]
        figures.append(("Cultural MoE gate weights (mean over items)",
                        plots.heatmap(out / "gate_weights.png", "Gate weight per continent", names, CONTINENTS,
                                      [gates[n] for n in names])))
    columns = ["target", "method", "items", *DIMENSIONS, "distance"]
    cells = [[short(s.get(c), 1) for c in columns] for s in result.summary]
    figures.append(("Table", plots.table(out / "table.png", "VSM 2013 indices and distance", columns, cells)))
    files += [p for _, p in figures]
    files.append(write_text(out / "report.md", _markdown(result, targets, methods, config, figures, out, gates)))
    return files


def _distance(summary: Sequence[dict[str, Any]], target: str, method: str) -> float | None:
    return next((s["distance"] for s in summary if s["target"] == target and s["method"] == method), None)


def _markdown(result: HofstedeReport, targets: Sequence[Target], methods: Sequence[Method], config: Any,
              figures: Sequence[tuple[str, Path]], out: Path, gates: dict[str, list[float]]) -> str:
    from cultura.data.hofstede import CONTINENTS, DIMENSIONS, country_scores

    lines = ["# Hofstede alignment (VSM 2013)\n",
             "The model answers the 24 VSM 2013 items in the role of each culture; the item means give the six "
             "VSM indices (C = 50), compared with the published Hofstede scores of the culture's primary country "
             "by Euclidean distance over the dimensions that country has. Lower distance is better.\n",
             run_description(config), "## Methods\n", method_lines(methods),
             "## Mean distance per method\n",
             markdown_table([{"method": m, "mean distance": d} for m, d in result.mean_distance.items()]),
             "\n## Indices and distance per culture and method\n",
             markdown_table(result.summary, ["target", "country", "method", "items", *DIMENSIONS, "distance", "note"], 1),
             "\n## Published Hofstede scores\n",
             markdown_table([{"target": t.key, "country": t.country, **country_scores(t.country)} for t in targets],
                            None, 0), gate_section(gates, CONTINENTS, "culture")]
    lines.append(markdown_tail(result.rows, config, figures, out))
    return "\n".join(lines)
