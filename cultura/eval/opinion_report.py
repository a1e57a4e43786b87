"""The opinion evaluation's report folder: results and summary tables, plots, and report.md.

report.md says what the numbers rest on (split, one-hot and approximate references, proxies,
adapter overlap), shows every method next to the best baseline, and lists the countries without data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cultura.data.hofstede import CONTINENTS
from cultura.eval import plots
from cultura.eval.baselines import BASELINES, DESCRIPTIONS
from cultura.eval.methods import Method
from cultura.eval.references import ScoredItem
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
from cultura.intervals import MIN_ITEMS, bootstrap_note, mean_interval

LOW_MASS = 0.5  # rows whose valid mass is below this are flagged
# Every mean has its 95% bootstrap interval (cultura.intervals) in <name>_low / <name>_high; ``lift`` is
# the paired difference with the best baseline over the same questions, and ``versus_baseline`` says
# whether its interval excludes zero (better / worse) or not (cannot tell).
INTERVAL_FIGURES = ("similarity", "alignment_pct", "lift", "valid_mass")
SUMMARY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("country", "string"), ("continent", "string"), ("method", "string"), ("questions", "int32"),
    ("similarity", "double"), ("similarity_low", "double"), ("similarity_high", "double"),
    ("alignment_pct", "double"), ("alignment_pct_low", "double"), ("alignment_pct_high", "double"),
    ("best_baseline", "string"), ("baseline_similarity", "double"), ("baseline_alignment_pct", "double"),
    ("lift", "double"), ("lift_low", "double"), ("lift_high", "double"), ("versus_baseline", "string"),
    ("valid_mass", "double"), ("valid_mass_low", "double"), ("valid_mass_high", "double"),
    ("low_mass_rows", "int32"), ("few", "bool"), ("reference", "string"), ("note", "string"),
)
MEAN_COLUMNS = ["method", "countries", "questions", "similarity", "best_baseline", "baseline_similarity", "lift",
                "versus_baseline", "alignment_pct", "baseline_alignment_pct", "valid_mass", "low_mass_rows"]


@dataclass
class OpinionReport:
    """What ``cultura eval opinions`` produced."""

    summary: list[dict[str, Any]]
    by_method: list[dict[str, Any]]
    no_data: list[str]
    rows: list[dict[str, Any]]
    items: list[ScoredItem] = field(default_factory=list)
    gates: dict[str, list[float]] = field(default_factory=dict)  # country -> mean weight per continent
    overlap: dict[str, list[str]] = field(default_factory=dict)  # adapter -> evaluated seeds it was trained on
    unrecorded: list[str] = field(default_factory=list)  # adapters whose training seeds are not recorded
    files: list[Path] = field(default_factory=list)


def write_report(out: Path, result: OpinionReport, countries: Sequence[str], methods: Sequence[Method],
                 config: Any, seed_count: int, data_note: str = "") -> list[Path]:
    """Write results, summary, plots (similarity and agreement bars, gate heat map, table), report.md."""
    out.mkdir(parents=True, exist_ok=True)
    files = write_table(out, "results", result.rows, RESULT_COLUMNS)
    files += write_table(out, "summary", result.summary, SUMMARY_COLUMNS)
    figures: list[tuple[str, Path]] = []
    evaluated = [c for c in countries if c not in result.no_data]
    groups = evaluated + ["mean"]
    means = {m["method"]: m for m in result.by_method}
    names = [m.name for m in methods] + list(BASELINES)
    for metric, label, ylim in (("similarity", "1 - Jensen-Shannon distance", (0, 1)),
                                ("alignment_pct", "top option matched (%)", (0, 100))):
        series = {n: [_value(result.summary, c, n, metric) for c in evaluated] + [means[n][metric]] for n in names}
        figures.append((f"{label} per country, method and baseline",
                        plots.grouped_bars(out / f"{metric}_by_method.png", label, metric, groups, series, ylim)))
    if result.gates:
        figures.append(("Cultural MoE gate weights per country (mean over questions)",
                        plots.gate_heatmap(out, result.gates, list(result.gates))))
    columns = ["country", "method", "questions", "similarity", "baseline_similarity", "lift", "valid_mass"]
    cells = [[short(s.get(c)) for c in columns] for s in result.summary]
    figures.append(("Table", plots.table(out / "table.png", "Opinion similarity next to the best baseline",
                                         columns, cells)))
    files += [p for _, p in figures]
    files.append(write_text(out / "report.md", _markdown(result, methods, config, figures, out, seed_count, data_note)))
    return files


def _value(summary: Sequence[dict[str, Any]], country: str, method: str, metric: str) -> float | None:
    return next((s[metric] for s in summary if s["country"] == country and s["method"] == method), None)


def _data_lines(result: OpinionReport, config: Any, seed_count: int) -> list[str]:
    """What the numbers rest on: split, one-hot and approximate references, proxies, overlap."""
    items = result.items
    splits = sorted({r["split"] for r in result.rows})
    lines = [f"{seed_count} questions ({' and '.join(splits) or 'no'} split; seeds split by a hash of their id, "
             f"eval fraction {config.data.eval_fraction}); {len(items)} (question, country) pairs scored."]
    one_hot = sum(1 for i in items if i.one_hot)
    if one_hot:
        lines.append(f"{one_hot} of {len(items)} references are one-hot (only the majority answer is known): "
                     "similarity to a one-hot reference rewards confidence in the right option, and a uniform "
                     "prediction scores low against it.")
    approximate = sum(1 for i in items if i.approximate)
    if approximate:
        lines.append(f"**{approximate} of {len(items)} references are marked `approximate`** (written from general "
                     "knowledge, not a published survey figure): this run is a smoke test, not a measurement. "
                     "Use GlobalOpinionQA (`cultura data get globalopinionqa`, then `--questions globalopinionqa`).")
    proxies = sum(1 for i in items if i.proxy)
    if proxies:
        lines.append(f"{proxies} references are culture-level proxies (`--proxy culture`): the country had no data "
                     "of its own and is scored against its culture's primary country; `reference_source` says so.")
    per_country: dict[str, int] = {}
    for item in items:
        per_country[item.country] = per_country.get(item.country, 0) + 1
    if per_country:
        lines.append("Questions per country: " + ", ".join(f"{c} {n}" for c, n in per_country.items()) + ".")
    few = [c for c, n in per_country.items() if n < MIN_ITEMS]
    if few:
        lines.append(f"**Fewer than {MIN_ITEMS} questions** (a mean and its interval rest on few questions; rows "
                     f"marked *few*): {', '.join(few)}.")
    for adapter, ids in result.overlap.items():
        lines.append(f"Adapter `{adapter}` was trained on {len(ids)} of the scored seeds (`--allow-overlap`): those "
                     "rows are marked `overlap` and do not measure generalisation.")
    if result.unrecorded:
        lines.append(f"Adapters without recorded training seeds (overlap cannot be ruled out): "
                     f"{', '.join(result.unrecorded)}.")
    return [line + "\n" for line in lines]


def mass_by_source(result: OpinionReport) -> list[dict[str, Any]]:
    """Mean valid mass of the model's answers (every method, no baseline) per country and seed source,
    with its bootstrap interval: one row per country and one for all countries."""
    sources = {i.seed.id: i.seed.source for i in result.items}
    masses: dict[tuple[str, str], list[float]] = {}
    for r in result.rows:
        if r["method"] not in BASELINES and r["status"] == "ok" and r.get("valid_mass") is not None:
            for country in (r["country"], "all countries"):
                masses.setdefault((country, sources.get(r["item_id"], "?")), []).append(r["valid_mass"])
    names = sorted({s for _, s in masses})
    table = []
    countries = [c for c in dict.fromkeys(c for c, _ in masses) if c != "all countries"] + ["all countries"]
    for country in countries:
        table.append({"country": country, **{s: str(mean_interval(masses[(country, s)])) if (country, s) in masses
                                              else None for s in names}})
    return table


def _markdown(result: OpinionReport, methods: Sequence[Method], config: Any, figures: Sequence[tuple[str, Path]],
              out: Path, seed_count: int, data_note: str) -> str:
    lines = ["# Opinion alignment\n",
             "For each country, a method's distribution over the options is compared with the country's own survey "
             "answers: similarity = 1 - Jensen-Shannon distance (log base 2; 1 = identical), and top-option agreement "
             "(`alignment_pct`) = share of questions whose most likely option is the country's top option. Every "
             "method stands next to the best baseline over exactly the same countries and questions; `lift` is the "
             "method's similarity minus that baseline's, a paired difference over those questions. A method is as "
             "good as its lift. Every mean is shown as `mean [low, high]` with its 95% bootstrap interval over "
             "questions (means over countries resample (country, question) pairs, each country counting the same); "
             "`versus_baseline` is `better` or `worse` when the lift's interval excludes zero, else `cannot tell`.\n",
             bootstrap_note() + "\n",
             *_data_lines(result, config, seed_count),
             (f"Seed data: {data_note}.\n" if data_note else ""),
             run_description(config), "## Methods\n", method_lines(methods),
             "".join(f"- baseline `{name}`: {DESCRIPTIONS[name]}\n" for name in BASELINES),
             "\n## Mean per method (macro over countries)\n",
             markdown_table(with_intervals(result.by_method, INTERVAL_FIGURES, ("lift",)), MEAN_COLUMNS),
             f"\n`valid_mass`: mean probability the model put on the option numbers before renormalising; "
             f"`low_mass_rows`: rows under {LOW_MASS} (flagged in `results.parquet`'s note).\n",
             "\n## Valid mass per country and source\n",
             "Mean probability the model's answers (every method) put on the option numbers, by the survey the "
             "question comes from.\n",
             markdown_table(mass_by_source(result)),
             "\n## Per country and method\n",
             markdown_table(with_intervals(result.summary, INTERVAL_FIGURES, ("lift",)),
                            ["country", "method", "questions", "similarity", "best_baseline", "baseline_similarity",
                             "lift", "versus_baseline", "alignment_pct", "valid_mass", "reference", "note"])]
    lines.append("\n## Countries without data\n")
    if result.no_data:
        lines.append("No data (not scored, left out of every mean): " + ", ".join(result.no_data) + ". No question "
                     "in the data has answers from these countries. `--proxy culture` scores a country against its "
                     "culture's primary country instead (marked per row).\n")
    else:
        lines.append("Every country has data.\n")
    lines.append(gate_section(result.gates, CONTINENTS, "country"))
    lines.append(markdown_tail([r for r in result.rows if r["method"] not in BASELINES], config, figures, out))
    return "\n".join(lines)
