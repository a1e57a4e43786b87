"""A benchmark's orientation items (CDEval): which pole of a Hofstede dimension a method leans to.

An orientation item has two options, the first pointing to one pole of a dimension (``meta["dimension"]``,
CDEval's ``Option 1``) and no gold answer. It names no culture, so it is asked as each culture of the
evaluation (``cultures``), scored by option log-probabilities like every other item, and in both
option orders: small models favour the first position, and averaging the two orders cancels that.
A method's orientation on a dimension is its mean probability of the first pole over the
dimension's items (CDEval's orientation likelihood, read from the distribution rather than from a
sampled pick), with a 95% bootstrap interval over items; 0.5 is no lean. ``first_position`` is the
mean probability of whichever option was shown first: far from 0.5, it says the position decided
more than the content. Beside each culture's orientation stands its
primary country's published Hofstede score on that dimension, and over the cultures Pearson's r
between the two: whether the method orders the cultures on the dimension as Hofstede does. A method
that answers every culture alike (``base``) has no r.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from cultura.data.benchmarks.schema import Item
from cultura.data.hofstede import country_scores
from cultura.eval.metrics import pearson
from cultura.eval.report import ALL, put_interval
from cultura.intervals import MIN_ITEMS, mean_interval

NO_LEAN = 0.5


def is_orientation(item: Item) -> bool:
    """Whether the item is scored as an orientation: kind ``orientation`` with two options."""
    return item.kind == "orientation" and len(item.options or ()) == 2


def dimension_of(item: Item) -> str:
    """The Hofstede dimension an orientation item measures (its subset when the meta does not say)."""
    return str(item.meta.get("dimension") or item.subset or "-")


def p_first(rows: Sequence[dict[str, Any]]) -> float:
    """P(the item's first option as published) from its rows, the two option orders averaged (a
    ``swapped`` row shows the options reversed, so its first option is its second)."""
    return sum(r["probs"][1] if r.get("swapped") else r["probs"][0] for r in rows) / len(rows)


def orientation_summary(benchmark: str, rows: Sequence[dict[str, Any]], items: dict[str, Item],
                        methods: Iterable[str]) -> list[dict[str, Any]]:
    """Per (dimension, culture or ``all``, method): the mean probability of the first option with its
    interval, the culture's Hofstede score on the dimension, and over the cultures Pearson's r."""
    mine = [r for r in rows if is_orientation(items[r["item_id"]])]
    dimensions = sorted({dimension_of(items[r["item_id"]]) for r in mine})
    summary = []
    for dimension in dimensions:
        for method in methods:
            answered = [r for r in mine if r["method"] == method and dimension_of(items[r["item_id"]]) == dimension]
            cultures = sorted({r["target"] for r in answered})
            cells = [_cell(benchmark, dimension, culture, method, [r for r in answered if r["target"] == culture])
                     for culture in cultures]
            overall = _cell(benchmark, dimension, ALL, method, answered)
            paired = [(c["orientation"], c["hofstede"]) for c in cells
                      if c.get("orientation") is not None and c.get("hofstede") is not None]
            overall.update(targets=len(paired), r_hofstede=pearson([o for o, _ in paired], [h for _, h in paired]))
            summary += [overall, *cells]
    return summary


def _cell(benchmark: str, dimension: str, country: str, method: str, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in rows if r["status"] == "ok"]
    items = len({r["item_id"] for r in ok})
    entry: dict[str, Any] = {"benchmark": benchmark, "subset": dimension, "country": country, "method": method,
                             "measure": "orientation", "items": items, "few": items < MIN_ITEMS, "note": "",
                             "orientation": None}
    if country != ALL and rows:
        entry["hofstede"] = country_scores(rows[0]["country"]).get(dimension)
    if not ok:
        entry["note"] = next((r["note"] for r in rows if r["note"]), "no item answered")
        return entry
    by_item: dict[str, list[dict[str, Any]]] = {}
    for r in ok:
        by_item.setdefault(r["item_id"], []).append(r)
    put_interval(entry, "orientation", mean_interval([p_first(v) for v in by_item.values()]))
    entry["first_position"] = sum(r["probs"][0] for r in ok) / len(ok)
    return entry
