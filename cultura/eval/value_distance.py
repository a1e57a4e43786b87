"""A benchmark's scale items (WorldValuesBench's): how far a method's answers to a value question lie from
the people's, by the Wasserstein-1 (Earth Mover's) distance the paper scores with.

A scale item is one person's answer (``gold``) to a question on a numeric scale (``options``, the scale
points "1".."4"; ``group``, the question). It is asked as that person (:mod:`cultura.eval.respondents`)
and scored by option log-probabilities like every other item. Per question, per continent (or ``all``)
and method, the method's answer distribution is the mean of its option distributions over the question's
participants there, and the people's is the histogram of their answers; the distance is W1 between the
two on the scale's values (``scipy.stats.wasserstein_distance``, as WorldValuesBench's evaluation script
is documented to use) **divided by the scale's span** (max - min), so a question on a 1-4 scale and one
on a 1-10 scale count alike: 0 is the same distribution, 1 all the mass at opposite ends. ``w1`` keeps
the mean of the raw distances (in scale points) too. Lower is better.

The report gives the mean normalised distance over questions with a 95% bootstrap interval over
questions, beside two baselines on the same questions: ``uniform`` (every scale point alike) and
``other-continents`` (each participant predicted by the answers the *other* continents' participants
gave to the same question, their own continent left out; per question the mean of those predictions over
the participants, as the method's is: on a continent's row that is the other continents' histogram, on
the ``all`` row the mixture of each continent's leave-out histogram, weighted by its participants; with
continents of like size that mixture is close to the pooled answers, so the ``all`` row's baseline is a
hard one and the continent rows are where knowing the demographics should show). ``lift`` is the best
(lowest) baseline's distance minus the method's, a paired difference over questions, so above zero is
better; ``versus_baseline`` gives no verdict under three questions. A question only one continent
answered has no ``other-continents`` baseline; a row with such a question leaves that baseline out and
says so.

Scale items are not scored by exact-match accuracy: one person's answer is a single draw from a spread
of views, exact match rewards only the mode and counts an answer one point off as wrong as one at the
far end, and the paper scores distributions, not people. A scale item without a gold answer cannot be
compared with anyone and is left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from cultura.data.benchmarks.schema import Item
from cultura.errors import DataError
from cultura.eval.report import country_cells, put_interval
from cultura.intervals import MIN_ITEMS, mean_interval, paired_difference, versus_baseline

BASELINES = ("uniform", "other-continents")


def is_scale(item: Item) -> bool:
    """Whether the item is scored by distance: kind ``scale`` with two or more points and one person's answer."""
    return item.kind == "scale" and len(item.options or ()) >= 2 and bool(item.gold) and len(item.gold) == 1


def scale_points(item: Item) -> tuple[int, ...]:
    """The item's scale as whole numbers (its options "1".."4"); DataError unless they are whole numbers
    in increasing order."""
    try:
        points = tuple(int(o) for o in item.options or ())
    except ValueError:
        points = ()
    if len(points) < 2 or any(b <= a for a, b in zip(points, points[1:])):
        raise DataError(f"{item.benchmark} item {item.id!r}: a scale item's options must be two or more whole "
                        f"numbers in increasing order, got {list(item.options or ())}")
    return points


def wasserstein(p: Sequence[float], q: Sequence[float], points: Sequence[float]) -> float:
    """W1 between two distributions over the same scale points (weights, normalised here), in scale units.
    ValueError on lengths that differ from the points, negative weights or a distribution with no mass."""
    if len(points) < 2 or len(p) != len(points) or len(q) != len(points):
        raise ValueError(f"two distributions over {len(points)} scale points (two or more) are needed, got "
                         f"{len(p)} and {len(q)} weights")
    for name, weights in (("p", p), ("q", q)):
        if any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ValueError(f"{name} must be non-negative weights with some mass, got {list(weights)}")
    from scipy.stats import wasserstein_distance  # scipy.stats takes a second to import

    return float(wasserstein_distance(points, points, p, q))


def normalised_wasserstein(p: Sequence[float], q: Sequence[float], points: Sequence[float]) -> float:
    """W1 divided by the scale's span (max - min): 0 for the same distribution, 1 for all mass at opposite ends."""
    return wasserstein(p, q, points) / (max(points) - min(points))


def histogram(answers: Iterable[str], options: Sequence[str]) -> list[float]:
    """The share of ``answers`` on each option; ValueError when there are none or one is not an option."""
    answers = list(answers)
    unknown = sorted(set(answers) - set(options))
    if not answers or unknown:
        raise ValueError(f"a histogram needs answers among the options {list(options)}, got {answers}")
    return [answers.count(o) / len(answers) for o in options]


def others_histogram(item: Item, items: Iterable[Item]) -> list[float] | None:
    """The answers the other continents' participants gave to ``item``'s question (its subset and group),
    as shares of its options; None when no other continent answered it."""
    answers = [o.gold[0] for o in items if is_scale(o) and o.group == item.group and o.subset == item.subset
               and o.culture != item.culture]
    return histogram(answers, item.options) if answers else None


def distance_summary(benchmark: str, rows: Sequence[dict[str, Any]], items: dict[str, Item],
                     methods: Iterable[str]) -> list[dict[str, Any]]:
    """Per (subset, continent or ``all``, method): the mean normalised W1 over questions with its interval,
    the raw W1 mean, the baselines on the same questions and the lift over the best one."""
    mine = [r for r in rows if is_scale(items[r["item_id"]])]
    scale_items = [items[i] for i in dict.fromkeys(r["item_id"] for r in mine)]
    methods = list(methods)
    summary = []
    for subset in sorted({i.subset or "-" for i in scale_items}):
        in_subset = [r for r in mine if (items[r["item_id"]].subset or "-") == subset]
        members = [i for i in scale_items if (i.subset or "-") == subset]
        others = {i.id: others_histogram(i, members) for i in members}
        for country, in_country in country_cells(in_subset):
            for method in methods:
                cell = [r for r in in_country if r["method"] == method]
                summary.append(_cell(benchmark, subset, country, method, cell, items, others))
    return summary


def _cell(benchmark: str, subset: str, country: str, method: str, rows: Sequence[dict[str, Any]],
          items: dict[str, Item], others: dict[str, list[float] | None]) -> dict[str, Any]:
    by_question: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r["status"] == "ok":
            by_question.setdefault(items[r["item_id"]].group or r["item_id"], []).append(r)
    entry: dict[str, Any] = {"benchmark": benchmark, "subset": subset, "country": country, "method": method,
                             "measure": "distance", "items": sum(map(len, by_question.values())),
                             "questions": len(by_question), "few": len(by_question) < MIN_ITEMS, "note": ""}
    if not by_question:
        entry["note"] = next((r["note"] for r in rows if r["note"]), "no item answered")
        return entry
    scores: dict[str, list[float | None]] = {"distance": [], "uniform": [], "other-continents": []}
    raw = []
    for question, answered in sorted(by_question.items()):
        predicted = _predictions(question, [items[r["item_id"]] for r in answered], answered, others)
        points = scale_points(items[answered[0]["item_id"]])
        human = predicted.pop("human")
        raw.append(wasserstein(predicted["distance"], human, points))
        for name, p in predicted.items():
            scores[name].append(None if p is None else normalised_wasserstein(p, human, points))
    put_interval(entry, "distance", mean_interval(scores["distance"]))
    entry["w1"] = sum(raw) / len(raw)
    complete = [b for b in BASELINES if None not in scores[b]]
    if len(complete) < len(BASELINES):
        entry["note"] = "other-continents: a question here no other continent answered; that baseline is left out"
    for name in complete:
        put_interval(entry, name.replace("-", "_"), mean_interval(scores[name]))
    best = min(complete, key=lambda b: entry[b.replace("-", "_")])
    lift = paired_difference(scores[best], scores["distance"])  # lower is better: the baseline minus the method
    put_interval(entry, "lift", lift)
    entry.update(best_baseline=best, versus_baseline=versus_baseline(lift))
    return entry


def _predictions(question: str, asked: Sequence[Item], rows: Sequence[dict[str, Any]],
                 others: dict[str, list[float] | None]) -> dict[str, list[float] | None]:
    """The people's histogram (``human``), the method's mean distribution and each baseline's for one
    question's participants; DataError when they were not asked on one scale."""
    options = asked[0].options
    if any(i.options != options for i in asked):
        raise DataError(f"question {question}: its items are not on one scale "
                        f"({sorted({tuple(i.options) for i in asked})})")
    mean = [sum(r["probs"][k] for r in rows) / len(rows) for k in range(len(options))]
    leave_out = [others[i.id] for i in asked]
    other = (None if None in leave_out
             else [sum(h[k] for h in leave_out) / len(leave_out) for k in range(len(options))])
    return {"human": histogram([i.gold[0] for i in asked], options), "distance": mean,
            "uniform": [1 / len(options)] * len(options), "other-continents": other}
