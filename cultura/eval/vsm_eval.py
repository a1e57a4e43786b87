"""Hofstede alignment (CulturePark's metric): the model answers the 24 VSM 2013 items as a culture.

Each item's answer is the expected option (1-5) of the method's distribution; the item means give
the six VSM indices (:func:`cultura.eval.hofstede.vsm_indices`), compared with the culture's
published Hofstede scores (its primary country) by Euclidean distance over the dimensions that
country has. Lower is better.

Methods that read Hofstede scores themselves (the gate, nearest-continent) see continent centroids
that leave the scored country out, so no method is handed the answer it is scored against. Every
method's mean distance is over the same targets (those every method with a distance answered), and
with three or more targets the report adds Pearson's r per dimension across targets: VSM indices
are only meaningful relative to each other (the constant C shifts every distance), so r says
whether a method ranks the cultures as Hofstede does, whatever C is.

Two trivial baselines sit beside the methods (:data:`BASELINES`): ``midpoint`` (every index at C,
what an answerer indifferent on every item scores) and ``world-mean`` (each dimension at the mean of
every other country's published score). Each method's ``lift`` is its paired distance gain over the
best of them across the shared targets, with its interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cultura.data.hofstede import CONTINENTS, DIMENSIONS, continent_centroid, country_scores
from cultura.data.vsm import load_vsm_items, vsm_prompt
from cultura.eval import plots
from cultura.eval.hofstede import DIMENSION_ITEMS, hofstede_distance, vsm_indices
from cultura.eval.jobs import Question, evaluate, mean_gate
from cultura.eval.methods import Method, MethodContext, Target
from cultura.eval.metrics import MIN_TARGETS_FOR_R, pearson
from cultura.eval.report import (
    RESULT_COLUMNS,
    gate_section,
    markdown_table,
    markdown_tail,
    method_lines,
    run_description,
    short,
    with_intervals,
    write_table,
    write_text,
)
from cultura.intervals import (
    MIN_ITEMS,
    MIN_VERDICT_UNITS,
    bootstrap_note,
    mean_interval,
    paired_difference,
    versus_baseline,
)

SUMMARY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("target", "string"), ("country", "string"), ("method", "string"), ("items", "int32"),
    ("PDI", "double"), ("IDV", "double"), ("MAS", "double"), ("UAI", "double"), ("LTO", "double"),
    ("IVR", "double"), ("distance", "double"), ("dimensions", "int32"), ("note", "string"),
)


MEAN_COLUMNS = ["method", "targets", "mean_distance", "best_baseline", "lift", "versus_baseline", "r_PDI", "r_IDV", "r_MAS", "r_UAI", "r_LTO", "r_IVR", "mean_r"]

# trivial predictors of a country's indices that read no model: name -> (description, indices)
BASELINES: dict[str, tuple[str, Any]] = {
    "midpoint": ("every index at C = 50: what an answerer indifferent on every item (all item means 3) scores",
                 lambda country: {d: 50.0 for d in DIMENSIONS}),
    "world-mean": ("each dimension at the mean of every other country's published score (leave-one-out)",
                   lambda country: continent_centroid(None, exclude=country)),
}


@dataclass
class HofstedeReport:
    """What ``cultura eval hofstede`` produced: summary rows, per-method means over the shared targets
    (with Pearson r per dimension), the shared targets, files."""

    summary: list[dict[str, Any]]
    by_method: list[dict[str, Any]]
    rows: list[dict[str, Any]]
    shared_targets: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)

    @property
    def mean_distance(self) -> dict[str, float | None]:
        """Method (and baseline) -> mean distance over the shared targets."""
        return {m["method"]: m["mean_distance"] for m in self.by_method}


def vsm_questions() -> list[Question]:
    """The 24 VSM 2013 items as questions (options 1-5)."""
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
            if not reference:
                entry["note"] = f"Hofstede publishes no scores for {target.country}: no distance"
            elif all(d in indices for d in reference):
                entry["distance"] = hofstede_distance({d: indices[d] for d in DIMENSIONS if d in indices}, target.country)
                entry["dimensions"] = len(reference)
            elif not means:
                entry["note"] = next((r["note"] for r in mine if r["note"]), "no item answered")
            else:
                lacking = [d for d in reference if d not in indices]
                entry["note"] = f"items missing for {', '.join(lacking)}"
            summary.append(entry)
        for name, (_, predict) in BASELINES.items():
            indices = predict(target.country)
            summary.append({"target": target.key, "country": target.country, "method": name, "items": None,
                            **{d: indices.get(d) for d in DIMENSIONS},
                            "distance": hofstede_distance(indices, target.country) if reference else None,
                            "dimensions": len(reference) if reference else None,
                            "note": "" if reference else f"Hofstede publishes no scores for {target.country}"})
    return summary


def shared_targets(summary: Sequence[dict[str, Any]], methods: Sequence[Method]) -> list[str]:
    """Targets for which every method that has any distance has one: the set every mean is over."""
    scored = {m.name: {s["target"] for s in summary if s["method"] == m.name and s["distance"] is not None}
              for m in methods}
    sets = [targets for targets in scored.values() if targets]
    if not sets:
        return []
    common = set.intersection(*sets)
    return [s["target"] for s in summary if s["target"] in common and s["method"] == methods[0].name]


def method_means(summary: Sequence[dict[str, Any]], methods: Sequence[Method], targets: Sequence[str]) -> list[dict[str, Any]]:
    """Per method, then per baseline: mean distance over ``targets`` (the shared set) and, with three or
    more of them, Pearson's r per dimension between the indices and the published scores across
    targets. A method's ``lift`` is the best baseline's distance minus its own, paired over the targets
    (above zero: closer than the best baseline), with ``versus_baseline`` saying what its interval says."""
    out = []
    for name in [*(m.name for m in methods), *BASELINES]:
        mine = [s for s in summary if s["method"] == name and s["target"] in targets and s["distance"] is not None]
        distance = mean_interval([s["distance"] for s in mine])
        entry: dict[str, Any] = {"method": name, "targets": len(mine),
                                 "mean_distance": distance.mean if mine else None,
                                 "mean_distance_low": distance.low if mine else None,
                                 "mean_distance_high": distance.high if mine else None}
        for dim in DIMENSIONS:
            pairs = [(s[dim], country_scores(s["country"])[dim]) for s in mine
                     if s[dim] is not None and country_scores(s["country"])[dim] is not None]
            entry[f"r_{dim}"] = pearson([a for a, _ in pairs], [b for _, b in pairs])
        rs = [entry[f"r_{d}"] for d in DIMENSIONS if entry[f"r_{d}"] is not None]
        entry["mean_r"] = sum(rs) / len(rs) if rs else None
        out.append(entry)
    _add_lifts(out, summary, targets)
    return out


def _add_lifts(means: list[dict[str, Any]], summary: Sequence[dict[str, Any]], targets: Sequence[str]) -> None:
    """Set each method's ``best_baseline``, ``lift`` (with its interval) and ``versus_baseline``."""
    scored = [b for b in means if b["method"] in BASELINES and b["mean_distance"] is not None]
    best = min(scored, key=lambda b: b["mean_distance"])["method"] if scored else None

    def distances(name: str) -> dict[str, float]:
        return {s["target"]: s["distance"] for s in summary
                if s["method"] == name and s["target"] in targets and s["distance"] is not None}

    for entry in means:
        entry.update(best_baseline=None, lift=None, lift_low=None, lift_high=None, versus_baseline=None)
        mine = distances(entry["method"])
        if entry["method"] in BASELINES or best is None or not mine:
            continue
        theirs = distances(best)
        shared = sorted(set(mine) & set(theirs))
        lift = paired_difference([theirs[t] for t in shared], [mine[t] for t in shared])
        entry.update(best_baseline=best, lift=lift.mean, lift_low=lift.low, lift_high=lift.high,
                     versus_baseline=versus_baseline(lift))


def run_hofstede(config: Any, targets: Sequence[Target], methods: Sequence[Method], ctx: MethodContext,
                 out: Path) -> HofstedeReport:
    """Run the VSM 2013 evaluation and write the report folder ``out``."""
    questions = vsm_questions()
    ctx.leave_out_target = True  # scored against the target's own Hofstede scores
    rows = evaluate("hofstede", [(q, t) for t in targets for q in questions], methods, ctx, config)
    summary = summarise(rows, targets, methods)
    shared = shared_targets(summary, methods)
    result = HofstedeReport(summary, method_means(summary, methods, shared), rows, shared)
    result.files = write_report(out, result, targets, methods, config)
    return result


def write_report(out: Path, result: HofstedeReport, targets: Sequence[Target], methods: Sequence[Method],
                 config: Any) -> list[Path]:
    """Write results, summary, plots (radar per culture, distance bars, gate heat map, table), report.md."""
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
    groups = [t.key for t in targets] + [f"mean ({len(result.shared_targets)})"]
    series = {m.name: [_distance(result.summary, t.key, m.name) for t in targets] + [result.mean_distance[m.name]]
              for m in methods}
    figures.append(("Distance to Hofstede per method (lower is better)",
                    plots.grouped_bars(out / "distance_by_method.png", "Euclidean distance to Hofstede scores",
                                       "distance", groups, series)))
    gates = mean_gate(result.rows, CONTINENTS)
    if gates:
        figures.append(("Cultural MoE gate weights (mean over items)",
                        plots.gate_heatmap(out, gates, [t.key for t in targets if t.key in gates])))
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
    shared = result.shared_targets
    left_out = [t.key for t in targets if t.key not in shared]
    lines = ["# Hofstede alignment (VSM 2013)\n",
             "The model answers the 24 VSM 2013 items in the role of each culture; the item means give the six "
             "VSM indices (C = 50), compared with the published Hofstede scores of the culture's primary country "
             "by Euclidean distance over the dimensions that country has. Lower distance is better. Methods that "
             "read Hofstede scores (the gate, nearest-continent) use continent centroids that leave the scored "
             "country out.\n",
             run_description(config), "## Methods\n", method_lines(methods),
             "## Mean per method\n",
             f"Every mean is over the same {len(shared)} targets ({', '.join(shared) or 'none'})"
             + (f"; left out because some method has no distance for them: {', '.join(left_out)}" if left_out else "")
             + f". `r_*`: Pearson's r per dimension between the method's indices and the published scores across "
             f"those targets (needs {MIN_TARGETS_FOR_R} or more; `-` also when a method gives every target the same "
             "index, as `base` does). The constant C shifts every distance, so r, not the distance alone, says "
             "whether a method orders the cultures as Hofstede does.\n",
             "`mean_distance` is shown as `mean [low, high]` with its 95% bootstrap interval over those targets. "
             "A target's distance is one exact function of its 24 item answers (each "
             "item has its own place in the VSM formulas, so items are not exchangeable draws to resample); the "
             "uncertainty of a mean distance is how much it depends on which cultures were evaluated"
             + (f", and with fewer than {MIN_ITEMS} targets it is rough" if len(shared) < MIN_ITEMS else "") + ".\n",
             bootstrap_note() + "\n",
             "Baselines (no model): " + "; ".join(f"`{n}`: {d}" for n, (d, _) in BASELINES.items())
             + ". `lift`: the best baseline's distance minus the method's, paired over the targets (above zero: "
             "closer to Hofstede than the baseline), with `versus_baseline` saying whether its interval excludes "
             f"zero (`cannot tell` below {MIN_VERDICT_UNITS} targets, too few for a bootstrap to carry a verdict).\n",
             markdown_table(with_intervals(result.by_method, ("mean_distance", "lift"), ("lift",)), MEAN_COLUMNS),
             "\n## Indices and distance per culture and method\n",
             markdown_table(result.summary, ["target", "country", "method", "items", *DIMENSIONS, "distance", "note"], 1),
             "\n## Published Hofstede scores\n",
             markdown_table([{"target": t.key, "country": t.country, **country_scores(t.country)} for t in targets],
                            None, 0), gate_section(gates, CONTINENTS, "culture")]
    lines.append(markdown_tail(result.rows, config, figures, out))
    return "\n".join(lines)
