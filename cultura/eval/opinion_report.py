"""The opinion evaluation's report folder: results and summary tables, plots, and report.md.

report.md says what the numbers rest on (split, one-hot and approximate references, proxies,
adapter overlap), shows every method next to the best baseline, and lists the countries without data.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cultura.eval.baselines import BASELINES, DESCRIPTIONS
from cultura.eval.methods import Method
from cultura.eval.opinions import LOW_MASS, MEAN_COLUMNS, SUMMARY_COLUMNS, OpinionReport
from cultura.eval.report import (RESULT_COLUMNS, gate_section, markdown_table, markdown_tail, method_lines,
                                 run_description, short, write_table, write_text)


def write_report(out: Path, result: OpinionReport, countries: Sequence[str], methods: Sequence[Method],
                 config: Any, seed_count: int, data_note: str = "") -> list[Path]:
    """Write results, summary, plots (similarity and agreement bars, gate heat map, table), report.md."""
    from cultura.data.hofstede import CONTINENTS
    from cultura.eval import plots

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
        gate_names = list(result.gates)
        figures.append(("Cultural MoE gate weights per country (mean over questions)",
                        plots.heatmap(out / "gate_weights.png", "Gate weight per continent", gate_names, CONTINENTS,
                                      [result.gates[n] for n in gate_names])))
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
    for adapter, ids in result.overlap.items():
        lines.append(f"Adapter `{adapter}` was trained on {len(ids)} of the scored seeds (`--allow-overlap`): those "
                     "rows are marked `overlap` and do not measure generalisation.")
    if result.unrecorded:
        lines.append(f"Adapters without recorded training seeds (overlap cannot be ruled out): "
                     f"{', '.join(result.unrecorded)}.")
    return [line + "\n" for line in lines]


def _markdown(result: OpinionReport, methods: Sequence[Method], config: Any, figures: Sequence[tuple[str, Path]],
              out: Path, seed_count: int, data_note: str) -> str:
    from cultura.data.hofstede import CONTINENTS

    lines = ["# Opinion alignment\n",
             "For each country, a method's distribution over the options is compared with the country's own survey "
             "answers: similarity = 1 - Jensen-Shannon distance (log base 2; 1 = identical), and top-option agreement "
             "(`alignment_pct`) = share of questions whose most likely option is the country's top option. Every "
             "method stands next to the best baseline over exactly the same countries and questions; `lift` is the "
             "method's similarity minus that baseline's. A method is as good as its lift.\n",
             *_data_lines(result, config, seed_count),
             (f"Seed data: {data_note}.\n" if data_note else ""),
             run_description(config), "## Methods\n", method_lines(methods),
             "".join(f"- baseline `{name}`: {DESCRIPTIONS[name]}\n" for name in BASELINES),
             "\n## Mean per method (macro over countries)\n", markdown_table(result.by_method, MEAN_COLUMNS),
             f"\n`valid_mass`: mean probability the model put on the option numbers before renormalising; "
             f"`low_mass_rows`: rows under {LOW_MASS} (flagged in `results.parquet`'s note).\n",
             "\n## Per country and method\n",
             markdown_table(result.summary, ["country", "method", "questions", "similarity", "best_baseline",
                                             "baseline_similarity", "lift", "alignment_pct", "valid_mass",
                                             "reference", "note"])]
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
