"""A benchmark's agreement items (CultureBank's direct evaluation): does a method agree with a cultural
descriptor as much as the people it describes do?

An agreement item asks whether one agrees with a descriptor (``agree`` / ``disagree``) and carries the
share of its source community that agreed (``reference``). It is asked as the item's culture, in both
option orders (the two orders averaged, so a lean to the first position cancels), and the method's
P(agree) is compared with the share: ``similarity`` is 1 - Jensen-Shannon distance between the two
two-way distributions (as the opinion evaluation compares distributions), with a 95% bootstrap
interval over items. Beside it stand two baselines on the same items: ``uniform`` (P(agree) 0.5) and
``global-mean`` (the mean share of the *other* items, leave-one-out); ``lift`` is the similarity above
the better one, a paired difference with its verdict.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from cultura.data.benchmarks.schema import Item
from cultura.eval.metrics import jsd_similarity
from cultura.eval.orientation import p_first
from cultura.eval.report import country_cells, put_interval
from cultura.intervals import MIN_ITEMS, mean_interval, paired_difference, versus_baseline

BASELINES = ("uniform", "global-mean")


def is_agreement(item: Item) -> bool:
    """Whether the item is scored as agreement: kind ``agreement``, two options and a reference share."""
    return item.kind == "agreement" and len(item.options or ()) == 2 and bool(item.reference)


def agreement_summary(benchmark: str, rows: Sequence[dict[str, Any]], items: dict[str, Item],
                      methods: Iterable[str]) -> list[dict[str, Any]]:
    """Per (source subset, culture or ``all``, method): similarity to the agreeing share, next to the
    baselines, with the lift over the better one."""
    mine = [r for r in rows if is_agreement(items[r["item_id"]])]
    shares = {i: items[i].reference[0] for i in {r["item_id"] for r in mine}}
    summary = []
    for subset in sorted({items[r["item_id"]].subset or "-" for r in mine}):
        in_subset = [r for r in mine if (items[r["item_id"]].subset or "-") == subset]
        for method in methods:
            answered = [r for r in in_subset if r["method"] == method]
            for country, cell in country_cells(answered):
                summary.append(_cell(benchmark, subset, country, method, cell, shares))
    return summary


def _cell(benchmark: str, subset: str, country: str, method: str, rows: Sequence[dict[str, Any]],
          shares: dict[str, float]) -> dict[str, Any]:
    ok: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r["status"] == "ok":
            ok.setdefault(r["item_id"], []).append(r)
    entry: dict[str, Any] = {"benchmark": benchmark, "subset": subset, "country": country, "method": method,
                             "measure": "agreement", "items": len(ok), "few": len(ok) < MIN_ITEMS, "note": ""}
    if not ok:
        entry["note"] = next((r["note"] for r in rows if r["note"]), "no item answered")
        return entry
    ids = sorted(ok)
    agree = {i: p_first(ok[i]) for i in ids}
    predicted = {"similarity": agree, "uniform": dict.fromkeys(ids, 0.5),
                 "global-mean": {i: _others_mean(shares, i) for i in ids}}
    scores = {name: [jsd_similarity(_two_way(p[i]), _two_way(shares[i])) for i in ids] for name, p in predicted.items()}
    for name, values in scores.items():
        put_interval(entry, name.replace("-", "_"), mean_interval(values))
    best = max(BASELINES, key=lambda b: entry[b.replace("-", "_")])
    lift = paired_difference(scores["similarity"], scores[best])
    put_interval(entry, "lift", lift)
    entry.update(p_agree=sum(agree.values()) / len(ids), share=sum(shares[i] for i in ids) / len(ids),
                 best_baseline=best, versus_baseline=versus_baseline(lift))
    return entry


def _two_way(p: float) -> list[float]:
    return [p, 1.0 - p]


def _others_mean(shares: dict[str, float], item_id: str) -> float:
    """The mean agreeing share of every other item (0.5 when there is none)."""
    others = [s for i, s in shares.items() if i != item_id]
    return sum(others) / len(others) if others else 0.5
