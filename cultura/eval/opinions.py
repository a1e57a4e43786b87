"""Opinion alignment over countries, next to the baselines every method must beat.

For multiple-choice value questions with known answers per country (a GlobalOpinionQA CSV, or the
bundled seeds as a smoke test), each method's distribution over the options is compared with the
country's own: similarity = 1 - Jensen-Shannon distance (log base 2), and top-option agreement =
share of questions whose most likely option is the country's top option. Only held-out questions
are scored by default (the ``eval`` split), a country only against its own data
(:mod:`cultura.eval.references`), and every report shows the baselines (:mod:`cultura.eval.baselines`)
and each method's lift over the best of them, per country and overall, with the valid mass (the
probability the model put on the options at all).

An adapter is refused on the seeds it was trained on (the registry records them) unless
``allow_overlap``, which marks those rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cultura.data.hofstede import CONTINENTS, continent_of, has_scores
from cultura.data.seeds import seed_split
from cultura.errors import CulturaError
from cultura.eval.baselines import BASELINES, NO_OTHERS, PREDICTORS
from cultura.eval.jobs import Question, evaluate, join_notes, mean_gate
from cultura.eval.methods import Method, MethodContext, NotApplicable, country_target
from cultura.eval.metrics import expected_option, jsd_similarity, top_option
from cultura.eval.opinion_report import LOW_MASS, OpinionReport, write_report
from cultura.eval.references import ScoredItem, scored_items
from cultura.intervals import MIN_ITEMS, Interval, mean_interval, paired_difference, versus_baseline


def check_overlap(items: Sequence[ScoredItem], methods: Sequence[Method], ctx: MethodContext,
                  allow_overlap: bool) -> tuple[dict[str, list[str]], list[str]]:
    """(adapter -> scored seed ids it was trained on, adapters whose training seeds are unrecorded).

    Overlap is refused with a CulturaError naming the adapters and seeds unless ``allow_overlap``.
    """
    if not any(m.name == "adapter" for m in methods):
        return {}, []
    overlap: dict[str, set[str]] = {}
    unrecorded: set[str] = set()
    for country in dict.fromkeys(i.country for i in items):
        adapter = _adapter_of(ctx, country)
        if adapter is None:
            continue
        seen = ctx.adapter_seeds.get(adapter)
        if seen is None:
            unrecorded.add(adapter)
            continue
        both = {i.seed.id for i in items if i.country == country} & set(seen)
        if both:
            overlap.setdefault(adapter, set()).update(both)
    if overlap and not allow_overlap:
        named = "; ".join(f"{a}: {len(ids)} seeds ({', '.join(sorted(ids)[:5])}{', ...' if len(ids) > 5 else ''})"
                          for a, ids in sorted(overlap.items()))
        raise CulturaError(f"adapters would be scored on seeds they were trained on ({named}); evaluate the eval "
                           "split, or pass --allow-overlap to score them anyway (the rows are marked)")
    return {a: sorted(ids) for a, ids in overlap.items()}, sorted(unrecorded)


def _adapter_of(ctx: MethodContext, country: str) -> str | None:
    """The culture adapter the ``adapter`` method uses for a country, or None."""
    try:
        return ctx.culture_adapter(country_target(country))
    except NotApplicable:
        return None


def _question(item: ScoredItem) -> Question:
    seed = item.seed
    return Question(seed.id, seed.text, seed.numbered_prompt(), tuple(seed.options),
                    {"reference": list(item.reference), "reference_source": item.source})


def baseline_rows(items: Sequence[ScoredItem]) -> list[dict[str, Any]]:
    """One answered row per item and baseline (:mod:`cultura.eval.baselines`), in the results layout."""
    rows = []
    for item in items:
        width = len(item.seed.options)
        for name in BASELINES:
            probs = PREDICTORS[name](item.others, width)
            rows.append({"evaluation": "opinions", "item_id": item.seed.id, "item_text": item.seed.text,
                         "target": item.country, "country": item.country, "method": name,
                         "options": list(item.seed.options), "reference": list(item.reference),
                         "reference_source": item.source, "status": "ok", "probs": probs,
                         "expected": expected_option(probs), "top_option": top_option(probs) + 1,
                         "note": NO_OTHERS if name != "uniform" and not item.others else ""})
    return rows


def complete_rows(rows: list[dict[str, Any]], fraction: float, overlap: dict[str, list[str]],
                  ctx: MethodContext) -> None:
    """Add similarity, split and overlap to every row; flag low valid mass in the note."""
    for row in rows:
        row["split"] = seed_split(row["item_id"], fraction)
        if row["status"] == "ok":
            row["similarity"] = jsd_similarity(row["probs"], row["reference"])
        mass = row.get("valid_mass")
        if mass is not None and mass < LOW_MASS:
            row["note"] = join_notes(row.get("note"), f"valid mass {mass:.2f} < {LOW_MASS}")
        if row["method"] == "adapter" and row["status"] == "ok":
            row["overlap"] = row["item_id"] in overlap.get(_adapter_of(ctx, row["country"]), ())
            if row["overlap"]:
                row["note"] = join_notes(row.get("note"), "the adapter was trained on this seed")


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _scores(rows: Sequence[dict[str, Any]], method: str, keys: set[tuple[str, str]] | None = None
            ) -> dict[str, list[dict[str, Any]]]:
    """country -> answered rows of ``method`` (only (country, item) in ``keys`` when given)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r["method"] == method and r["status"] == "ok" and (keys is None or (r["country"], r["item_id"]) in keys):
            out.setdefault(r["country"], []).append(r)
    return out


def _figures(by_country: dict[str, list[dict[str, Any]]]) -> tuple[float | None, float | None]:
    """(macro mean similarity, macro mean top-option agreement %) over countries."""
    sims = [_mean([r["similarity"] for r in rs]) for rs in by_country.values()]
    hits = [_mean([_hit(r) for r in rs]) for rs in by_country.values()]
    return _mean(sims), _mean(hits)


def best_baseline(rows: Sequence[dict[str, Any]], keys: set[tuple[str, str]]) -> tuple[str | None, float | None, float | None]:
    """The baseline with the highest (macro) similarity over exactly the (country, item) ``keys``:
    (name, similarity, top-option agreement %)."""
    scored = [(name, *_figures(_scores(rows, name, keys))) for name in BASELINES]
    scored = [s for s in scored if s[1] is not None]
    return max(scored, key=lambda s: s[1]) if scored else (None, None, None)


def macro_values(by_country: dict[str, list[float]]) -> list[float]:
    """Per-question values rescaled so that their plain mean is the macro mean over countries.

    A value of a country with ``n_c`` of the ``N`` questions is multiplied by ``N / (C * n_c)`` (``C``
    countries): every country then counts the same in the mean, and a bootstrap over the rescaled
    values (resampling (country, question) pairs) gives the macro mean's interval. One country: unchanged.
    """
    total, count = sum(len(v) for v in by_country.values()), len(by_country)
    return [x * total / (count * len(v)) for v in by_country.values() for x in v]


def _hit(row: dict[str, Any]) -> float:
    """100 when the row's most likely option is the reference's top option, else 0."""
    return 100.0 * float(row["top_option"] - 1 == top_option(row["reference"]))


def _with_interval(entry: dict[str, Any], name: str, interval: Interval | None) -> None:
    """Put an interval's mean and bounds into ``entry`` under ``name``, ``name_low``, ``name_high``."""
    empty = interval is None or interval.n == 0
    entry[name] = None if empty else interval.mean
    entry[f"{name}_low"] = None if empty else interval.low
    entry[f"{name}_high"] = None if empty else interval.high


def _entry(rows: Sequence[dict[str, Any]], method: str, mine: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Figures of a method over its answered rows ``mine`` (macro means over countries with their
    bootstrap intervals) next to the best baseline over the same items, with the paired lift."""
    answered = [r for rs in mine.values() for r in rs]
    masses = [r["valid_mass"] for r in answered if r.get("valid_mass") is not None]
    entry: dict[str, Any] = {"method": method, "questions": len(answered), "best_baseline": None,
                             "baseline_similarity": None, "baseline_alignment_pct": None, "versus_baseline": None,
                             "low_mass_rows": sum(1 for m in masses if m < LOW_MASS) if masses else None,
                             "few": len(answered) < MIN_ITEMS}
    _with_interval(entry, "similarity", mean_interval(macro_values(
        {c: [r["similarity"] for r in rs] for c, rs in mine.items()})))
    _with_interval(entry, "alignment_pct", mean_interval(macro_values({c: [_hit(r) for r in rs] for c, rs in mine.items()})))
    _with_interval(entry, "valid_mass", mean_interval(masses) if masses else None)
    _with_interval(entry, "lift", None)
    if method not in BASELINES and answered:
        name, sim, align = best_baseline(rows, {(r["country"], r["item_id"]) for r in answered})
        entry.update(best_baseline=name, baseline_similarity=sim, baseline_alignment_pct=align)
        if name is not None:
            theirs = {(r["country"], r["item_id"]): r["similarity"] for r in rows
                      if r["method"] == name and r["status"] == "ok"}
            lift = paired_difference(
                macro_values({c: [r["similarity"] for r in rs] for c, rs in mine.items()}),
                macro_values({c: [theirs[(c, r["item_id"])] for r in rs] for c, rs in mine.items()}))
            _with_interval(entry, "lift", lift)
            entry["versus_baseline"] = versus_baseline(lift)
    return entry


def summarise(rows: Sequence[dict[str, Any]], countries: Sequence[str], names: Sequence[str]) -> list[dict[str, Any]]:
    """One row per (country, method or baseline): similarity, top-option agreement, valid mass, and the
    best baseline over the same questions with the method's lift over it."""
    summary = []
    for country in countries:
        for name in names:
            everything = [r for r in rows if r["country"] == country and r["method"] == name]
            if not everything:
                continue
            mine = _scores(everything, name)
            entry = {"country": country, "continent": continent_of(country), **_entry(rows, name, mine),
                     "reference": "; ".join(sorted({r["reference_source"].split(";")[0] for r in everything})),
                     "note": ""}
            if not mine:
                entry["note"] = next((r["note"] for r in everything if r["note"]), "no question answered")
            summary.append(entry)
    return summary


def by_method(rows: Sequence[dict[str, Any]], names: Sequence[str]) -> list[dict[str, Any]]:
    """Per method (and baseline): the macro mean over the countries it answered, next to the best
    baseline over exactly the same countries and questions."""
    out = []
    for name in names:
        mine = _scores(rows, name)
        out.append({**_entry(rows, name, mine), "countries": len(mine)})
    return out


def run_opinions(config: Any, countries: Sequence[str], seeds: Sequence[Any], methods: Sequence[Method],
                 ctx: MethodContext, out: Path, proxy: str | None = None, allow_overlap: bool = False,
                 data_note: str = "") -> OpinionReport:
    """Score ``countries`` on ``seeds`` (already one split) with ``methods`` and the baselines; write
    the report folder ``out``. ``data_note`` (what the seed load could not use) goes into the report."""
    items, no_data = scored_items(seeds, countries, proxy)
    overlap, unrecorded = check_overlap(items, methods, ctx, allow_overlap)
    pairs = [(_question(i), country_target(i.country)) for i in items]
    rows = evaluate("opinions", pairs, methods, ctx, config) if pairs else []
    rows += baseline_rows(items)
    complete_rows(rows, config.data.eval_fraction, overlap, ctx)
    names = [m.name for m in methods] + list(BASELINES)
    evaluated = [c for c in countries if c not in no_data]
    result = OpinionReport(summarise(rows, evaluated, names), by_method(rows, names), no_data, rows, items,
                           country_gates(rows, countries, seeds, methods, ctx), overlap, unrecorded)
    result.files = write_report(out, result, countries, methods, config, len({i.seed.id for i in items}), data_note)
    return result


def country_gates(rows: Sequence[dict[str, Any]], countries: Sequence[str], seeds: Sequence[Any],
                  methods: Sequence[Method], ctx: MethodContext) -> dict[str, list[float]]:
    """Mean gate weights per country when a gate-based method ran, in ``countries`` order.

    Countries without data get the gate's weights over the same questions (the gate needs no
    answers), so the heat map covers every country asked for that has Hofstede scores.
    """
    if not any(m.name in ("gate-mixture", "palette") for m in methods):
        return {}
    gates = mean_gate(rows, CONTINENTS)
    for country in countries:  # the gate reads Hofstede scores: countries without them have no gate row
        if country not in gates and seeds and has_scores(country):
            weights = [ctx.gate_weights(s.numbered_prompt(), country) for s in seeds]
            gates[country] = [sum(w[c] for w in weights) / len(weights) for c in CONTINENTS]
    return {c: gates[c] for c in countries if c in gates}
