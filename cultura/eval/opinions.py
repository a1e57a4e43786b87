"""Opinion alignment over countries (Cultural Palette's 18-country evaluation).

For multiple-choice value questions with a known answer distribution per country (a user's
GlobalOpinionQA CSV, or the bundled seed attitudes as the small default), the method's distribution
over the options is compared with the country's: similarity = 1 - Jensen-Shannon distance, and
alignment % = share of questions whose most likely option is the country's majority option.

Countries map to seed data through their own culture key and then their CulturePark culture
(:func:`cultura.data.cultures.culture_of_country`); where a country has neither, it is reported as
having no data, and nothing is invented for it. Bundled seeds give only each culture's majority
answer, so their reference is that option alone (a one-hot distribution).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cultura.eval.answers import numbered_question
from cultura.eval.jobs import Question, evaluate, mean_gate
from cultura.eval.methods import Method, MethodContext, Target, country_target
from cultura.eval.metrics import jsd_similarity, top_option
from cultura.eval.report import (RESULT_COLUMNS, gate_section, markdown_table, markdown_tail, method_lines,
                                 run_description, short, write_table, write_text)

SUMMARY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("country", "string"), ("continent", "string"), ("method", "string"), ("questions", "int32"),
    ("similarity", "double"), ("alignment_pct", "double"), ("reference", "string"), ("note", "string"),
)


@dataclass
class OpinionReport:
    """What ``cultura eval opinions`` produced."""

    summary: list[dict[str, Any]]
    by_method: list[dict[str, Any]]
    no_data: list[str]
    rows: list[dict[str, Any]]
    gates: dict[str, list[float]] = field(default_factory=dict)  # country -> mean weight per continent
    files: list[Path] = field(default_factory=list)


def seed_question(seed: Any) -> str:
    """The seed as a numbered multiple-choice question (statements asked as agree/disagree)."""
    text = f'Do you agree or disagree with this statement? "{seed.text}"' if seed.kind == "statement" else seed.text
    return numbered_question(text, seed.options)


def reference_for(seed: Any, country: str) -> tuple[list[float], str] | None:
    """The country's answer distribution on a seed and where it comes from, or None when unknown.

    Looks up the country's own culture key, then its CulturePark culture: a full distribution first,
    else the majority answer as a one-hot distribution.
    """
    from cultura.data.cultures import country_key, culture_of_country

    own = country_key(country)
    culture = culture_of_country(country)
    keys = [own] + ([culture.key] if culture.key != own else [])
    for key in keys:
        shares = seed.distributions.get(key)
        if shares and sum(shares) > 0:
            return [s / sum(shares) for s in shares], _source("distribution", key, own, culture)
    for key in keys:
        answer = seed.attitudes.get(key)
        if answer is not None:
            return [1.0 if o == answer else 0.0 for o in seed.options], _source("majority", key, own, culture)
    return None


def _source(kind: str, key: str, own: str, culture: Any) -> str:
    if key == own:
        return f"{kind} ({key})"
    return f"{kind} of culture {key} ({culture.primary_country})"


def build_pairs(seeds: Sequence[Any], countries: Sequence[str]) -> tuple[list[tuple[Question, Target]], list[str]]:
    """(question, target) pairs for every seed a country has data for; and the countries with none."""
    pairs: list[tuple[Question, Target]] = []
    no_data: list[str] = []
    for country in countries:
        target = country_target(country)
        found = 0
        for seed in seeds:
            reference = reference_for(seed, country)
            if reference is None:
                continue
            found += 1
            probs, source = reference
            pairs.append((Question(seed.id, seed.text, seed_question(seed), tuple(seed.options),
                                   {"reference": probs, "reference_source": source}), target))
        if not found:
            no_data.append(country)
    return pairs, no_data


def summarise(rows: Sequence[dict[str, Any]], countries: Sequence[str], methods: Sequence[Method]) -> list[dict[str, Any]]:
    """Similarity and alignment % per (country, method) over the questions answered."""
    from cultura.data.hofstede import continent_of

    summary = []
    for country in countries:
        for method in methods:
            mine = [r for r in rows if r["country"] == country and r["method"] == method.name]
            if not mine:
                continue
            ok = [r for r in mine if r["status"] == "ok"]
            entry = {"country": country, "continent": continent_of(country), "method": method.name,
                     "questions": len(ok), "similarity": None, "alignment_pct": None,
                     "reference": "; ".join(sorted({r["reference_source"] for r in mine})), "note": ""}
            if ok:
                entry["similarity"] = sum(jsd_similarity(r["probs"], r["reference"]) for r in ok) / len(ok)
                hits = sum(1 for r in ok if r["top_option"] - 1 == top_option(r["reference"]))
                entry["alignment_pct"] = 100.0 * hits / len(ok)
            else:
                entry["note"] = next((r["note"] for r in mine if r["note"]), "no question answered")
            summary.append(entry)
    return summary


def by_method(summary: Sequence[dict[str, Any]], methods: Sequence[Method]) -> list[dict[str, Any]]:
    """Mean similarity and alignment % per method over the countries it answered for (macro average)."""
    out = []
    for method in methods:
        mine = [s for s in summary if s["method"] == method.name and s["similarity"] is not None]
        out.append({"method": method.name, "countries": len(mine),
                    "similarity": sum(s["similarity"] for s in mine) / len(mine) if mine else None,
                    "alignment_pct": sum(s["alignment_pct"] for s in mine) / len(mine) if mine else None})
    return out


def run_opinions(config: Any, countries: Sequence[str], seeds: Sequence[Any], methods: Sequence[Method],
                 ctx: MethodContext, out: Path) -> OpinionReport:
    """Run the opinion evaluation over ``countries`` and write the report folder ``out``."""
    pairs, no_data = build_pairs(seeds, countries)
    rows = evaluate("opinions", pairs, methods, ctx, config) if pairs else []
    evaluated = [c for c in countries if c not in no_data]
    summary = summarise(rows, evaluated, methods)
    result = OpinionReport(summary, by_method(summary, methods), no_data, rows,
                           country_gates(rows, countries, seeds, methods, ctx))
    result.files = write_report(out, result, countries, methods, config, len(seeds))
    return result


def country_gates(rows: Sequence[dict[str, Any]], countries: Sequence[str], seeds: Sequence[Any],
                  methods: Sequence[Method], ctx: MethodContext) -> dict[str, list[float]]:
    """Mean gate weights per country when the palette method ran, in ``countries`` order.

    Countries without data get the gate's weights over the same questions (the gate needs no
    answers), so the heat map covers every country asked for.
    """
    from cultura.data.hofstede import CONTINENTS

    if not any(m.name == "palette" for m in methods):
        return {}
    gates = mean_gate(rows, CONTINENTS)
    for country in countries:
        if country not in gates and seeds:
            weights = [ctx.gate_weights(seed_question(s), country) for s in seeds]
            gates[country] = [sum(w[c] for w in weights) / len(weights) for c in CONTINENTS]
    return {c: gates[c] for c in countries if c in gates}


def write_report(out: Path, result: OpinionReport, countries: Sequence[str], methods: Sequence[Method],
                 config: Any, seed_count: int) -> list[Path]:
    """Write results, summary, plots (similarity and alignment bars, gate heat map, table), report.md."""
    from cultura.data.hofstede import CONTINENTS
    from cultura.eval import plots

    out.mkdir(parents=True, exist_ok=True)
    files = write_table(out, "results", result.rows, RESULT_COLUMNS)
    files += write_table(out, "summary", result.summary, SUMMARY_COLUMNS)
    figures: list[tuple[str, Path]] = []
    evaluated = [c for c in countries if c not in result.no_data]
    groups = evaluated + ["mean"]
    means = {m["method"]: m for m in result.by_method}
    for metric, label, ylim in (("similarity", "1 - Jensen-Shannon distance", (0, 1)),
                                ("alignment_pct", "majority option matched (%)", (0, 100))):
        series = {m.name: [_value(result.summary, c, m.name, metric) for c in evaluated] + [means[m.name][metric]]
                  for m in methods}
        figures.append((f"{label} per country and method",
                        plots.grouped_bars(out / f"{metric}_by_method.png", label, metric, groups, series, ylim)))
    if result.gates:
        names = list(result.gates)
        figures.append(("Cultural MoE gate weights per country (mean over questions)",
                        plots.heatmap(out / "gate_weights.png", "Gate weight per continent", names, CONTINENTS,
                                      [result.gates[n] for n in names])))
    columns = ["country", "method", "questions", "similarity", "alignment_pct"]
    cells = [[short(s.get(c)) for c in columns] for s in result.summary]
    figures.append(("Table", plots.table(out / "table.png", "Opinion similarity and alignment %", columns, cells)))
    files += [p for _, p in figures]
    files.append(write_text(out / "report.md", _markdown(result, methods, config, figures, out, seed_count)))
    return files


def _value(summary: Sequence[dict[str, Any]], country: str, method: str, metric: str) -> float | None:
    return next((s[metric] for s in summary if s["country"] == country and s["method"] == method), None)


def _markdown(result: OpinionReport, methods: Sequence[Method], config: Any, figures: Sequence[tuple[str, Path]],
              out: Path, seed_count: int) -> str:
    from cultura.data.hofstede import CONTINENTS

    lines = ["# Opinion alignment\n",
             f"{seed_count} multiple-choice questions. For each country, the method's distribution over the options is "
             "compared with the country's: similarity = 1 - Jensen-Shannon distance (log base 2; 1 = identical), and "
             "alignment % = share of questions whose most likely option is the country's majority option. Where the "
             "reference is a majority answer only (the bundled seeds), it is a one-hot distribution.\n",
             run_description(config), "## Methods\n", method_lines(methods),
             "## Mean per method (over countries)\n", markdown_table(result.by_method),
             "\n## Per country and method\n",
             markdown_table(result.summary, ["country", "continent", "method", "questions", "similarity",
                                             "alignment_pct", "reference", "note"])]
    lines.append("\n## Countries without data\n")
    if result.no_data:
        lines.append("No question in the data has an answer for these countries (neither their own nor their "
                     "culture's), so they are not scored: " + ", ".join(result.no_data) + ". Give a GlobalOpinionQA "
                     "CSV with `--questions FILE` to cover them.\n")
    else:
        lines.append("Every country has data.\n")
    lines.append(gate_section(result.gates, CONTINENTS, "country"))
    lines.append(markdown_tail(result.rows, config, figures, out))
    return "\n".join(lines)
