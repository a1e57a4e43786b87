"""WorldValuesBench's distance by hand: W1 over a scale divided by its span, the people's histogram, the
uniform and other-continents baselines on the fixture's answers, and who a participant is asked as."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from cultura.data.benchmarks.registry import get_benchmark
from cultura.errors import DataError
from cultura.eval.bench import item_target, select_items
from cultura.eval.methods import METHODS, MethodContext, NotApplicable
from cultura.eval.respondents import describe
from cultura.eval.value_distance import (
    distance_summary,
    histogram,
    normalised_wasserstein,
    others_histogram,
    scale_points,
    wasserstein,
)

FIXTURE = Path(__file__).parent / "data" / "benchmarks" / "worldvaluesbench"
FOUR, TWO, TEN = (1, 2, 3, 4), (1, 2), tuple(range(1, 11))


def _items():
    return get_benchmark("worldvaluesbench").read(FIXTURE).items


@pytest.mark.parametrize(("p", "q", "points", "w1", "normalised"), [
    ([1, 0, 0, 0], [0, 0, 0, 1], FOUR, 3.0, 1.0),  # all the mass at opposite ends
    ([0.25] * 4, [1, 0, 0, 0], FOUR, 1.5, 0.5),  # |CDF differences| 0.75 + 0.5 + 0.25
    ([0.5, 0.5], [1, 0], TWO, 0.5, 0.5),
    ([1 / 3, 2 / 3], [2 / 3, 1 / 3], TWO, 1 / 3, 1 / 3),
    ([0.1] * 10, [1] + [0] * 9, TEN, 4.5, 0.5),  # sum over k of 1 - k/10
    ([0] * 4 + [1] + [0] * 5, [0] * 6 + [1] + [0] * 3, TEN, 2.0, 2 / 9),  # 5 against 7
    ([1, 0, 0, 0, 0, 0, 0, 0, 0, 0], [0] * 9 + [1], TEN, 9.0, 1.0),  # opposite ends on 1-10 count as on 1-4
    ([2, 1, 1, 0], [0.5, 0.25, 0.25, 0], FOUR, 0.0, 0.0),  # weights are normalised
])
def test_wasserstein_by_hand_on_scales_of_different_lengths(p, q, points, w1, normalised):
    assert wasserstein(p, q, points) == pytest.approx(w1)
    assert normalised_wasserstein(p, q, points) == pytest.approx(normalised)
    assert normalised_wasserstein(q, p, points) == pytest.approx(normalised)


@pytest.mark.parametrize(("p", "q", "points", "message"), [
    ([1, 0], [1, 0, 0], (1, 2), "over 2 scale points"),
    ([1], [1], (1,), "two or more"),
    ([-0.5, 1.5], [1, 0], (1, 2), "non-negative"),
    ([0, 0], [1, 0], (1, 2), "some mass"),
])
def test_wasserstein_refuses_bad_distributions(p, q, points, message):
    with pytest.raises(ValueError, match=message):
        wasserstein(p, q, points)


def test_histogram_and_scale_points_refuse_bad_input():
    assert histogram(["1", "2", "2", "4"], ("1", "2", "3", "4")) == [0.25, 0.5, 0.0, 0.25]
    with pytest.raises(ValueError, match="among the options"):
        histogram(["5"], ("1", "2"))
    with pytest.raises(ValueError, match="among the options"):
        histogram([], ("1", "2"))
    item = _items()[0]
    assert scale_points(item) == FOUR
    for options in (("low", "high"), ("3", "2", "1")):
        bad = replace(item, options=options, gold=(options[0],))
        with pytest.raises(DataError, match="whole numbers in increasing order"):
            scale_points(bad)
        with pytest.raises(DataError, match="whole numbers in increasing order"):
            item_target(bad)  # refused when the items are chosen, before any model time


def test_other_continents_is_the_other_continents_answers():
    items = _items()
    trust = {i.meta["participant"]: i for i in items if i.group == "Q57"}
    # Q57 answers: Asia 2, 2, 1; Europe 1, 1, 2; Africa 2
    assert others_histogram(trust["100000001"], items) == [0.5, 0.5]  # Europe's and Africa's four
    assert others_histogram(trust["100000002"], items) == [0.25, 0.75]  # Asia's and Africa's four
    assert others_histogram(trust["100000003"], items) == [0.5, 0.5]  # Asia's and Europe's six
    family = next(i for i in items if i.group == "Q1" and i.culture == "Asia")
    only_asia = [i for i in items if i.culture == "Asia" or i.group != "Q1"]
    assert others_histogram(family, only_asia) is None, "no other continent answered Q1"


def _rows(items, method, probs):
    """One answered row per item as the evaluation writes it, with the distribution ``probs(item)``."""
    return [{"item_id": i.id, "status": "ok", "method": method, "target": i.culture, "note": "", "probs": probs(i)}
            for i in items]


def test_summary_by_hand_on_the_fixture_answers():
    items = _items()
    by_id = {i.id: i for i in items}
    uniform = _rows(items, "uniform-guess", lambda i: [1 / len(i.options)] * len(i.options))
    summary = {(s["country"], s["method"]): s for s in distance_summary("worldvaluesbench", uniform, by_id,
                                                                         ["uniform-guess"])}
    asia = summary[("Asia", "uniform-guess")]
    # Asia's answers: Q1 1, 1, 2; Q57 2, 2, 1; Q48 7, 8, 5. Europe's: Q1 2, 1, 3; Q57 1, 1, 2; Q48 6, 9, 10.
    uniform_q1 = (abs(0.25 - 2 / 3) + 0.5 + 0.25) / 3  # uniform's CDF (1/4, 1/2, 3/4) against Asia's (2/3, 1, 1)
    uniform_q57 = 1 / 6
    uniform_q48 = sum(abs(k / 10 - c) for k, c in zip(range(1, 10), [0, 0, 0, 0, 1 / 3, 1 / 3, 2 / 3, 1, 1])) / 9
    others_q1 = (1 / 3 + 1 / 3) / 3  # Europe's CDF (1/3, 2/3, 1) against Asia's
    others_q57 = 1 / 6  # (1/2, 1/2) against (1/3, 2/3)
    others_q48 = (1 + 2 + 2) / 3 / 9  # {5, 7, 8} moved onto {6, 9, 10}
    assert asia["measure"] == "distance" and asia["items"] == 9 and asia["questions"] == 3 and asia["few"]
    assert asia["distance"] == pytest.approx((uniform_q1 + uniform_q57 + uniform_q48) / 3)
    assert asia["uniform"] == pytest.approx(asia["distance"]), "the method guessed uniformly"
    assert asia["other_continents"] == pytest.approx((others_q1 + others_q57 + others_q48) / 3)
    assert asia["w1"] == pytest.approx((uniform_q1 * 3 + uniform_q57 + uniform_q48 * 9) / 3)
    assert asia["best_baseline"] == "other-continents"
    assert asia["lift"] == pytest.approx(asia["other_continents"] - asia["distance"])
    assert asia["lift_low"] <= asia["lift"] <= asia["lift_high"]
    overall = summary[("all", "uniform-guess")]
    assert overall["items"] == 19 and overall["questions"] == 3
    # Q57 over all seven: the people (3/7, 4/7); other-continents mixes 4 x (1/2, 1/2) and 3 x (1/4, 3/4)
    pooled_q57 = abs((4 * 0.5 + 3 * 0.25) / 7 - 3 / 7)
    # Q1: Asia's three predicted by Europe's (1/3, 1/3, 1/3, 0), Europe's by Asia's (2/3, 1/3, 0, 0): the mix
    # is the pooled histogram (1/2, 1/3, 1/6, 0), distance 0; so on Q48. Balanced continents make it a hard baseline
    mix_q1 = [(a + b) / 2 for a, b in zip([1 / 3, 1 / 3, 1 / 3, 0], [2 / 3, 1 / 3, 0, 0])]
    assert mix_q1 == pytest.approx(histogram(["1", "1", "2", "2", "1", "3"], ("1", "2", "3", "4")))
    assert overall["other_continents"] == pytest.approx((0 + pooled_q57 + 0) / 3)
    africa = summary[("Africa", "uniform-guess")]
    assert africa["questions"] == 1 and africa["distance"] == pytest.approx(0.5)  # uniform against a sure 2
    assert africa["versus_baseline"] == "cannot tell", "one question gives no verdict"
    perfect = _rows(items, "oracle", lambda i: histogram([o.gold[0] for o in items if o.group == i.group
                                                           and o.culture == i.culture], i.options))
    best = {s["country"]: s for s in distance_summary("worldvaluesbench", perfect, by_id, ["oracle"])}
    assert all(s["distance"] == pytest.approx(0) and s["w1"] == pytest.approx(0) for s in best.values())
    assert best["Asia"]["lift"] == pytest.approx(asia["other_continents"])


def test_a_question_no_other_continent_answered_leaves_that_baseline_out():
    items = [i for i in _items() if i.culture == "Asia" or i.group != "Q1"]
    by_id = {i.id: i for i in items}
    rows = _rows(items, "base", lambda i: [1 / len(i.options)] * len(i.options))
    asia = next(s for s in distance_summary("worldvaluesbench", rows, by_id, ["base"]) if s["country"] == "Asia")
    assert asia.get("other_continents") is None and asia["best_baseline"] == "uniform"
    assert "no other continent answered" in asia["note"]


def test_a_participant_is_asked_as_the_person_described():
    chosen, left = select_items(_items())
    assert len(chosen) == 19 and not left
    item, target = next((i, t) for i, t in chosen if i.meta["participant"] == "100000004" and i.group == "Q1")
    assert describe(item) == ("a person living in Asia, in a rural area, whose level of education is "
                              "primary or no education")
    assert target.key == "Asia" and not target.country and describe(item) in target.persona
    plan = METHODS["prompted"].build(MethodContext(), target, "Q?")
    assert plan.components[0].messages[0] == {"role": "system", "content": target.persona}
    assert METHODS["base"].build(MethodContext(), target, "Q?").components[0].messages == (
        {"role": "user", "content": "Q?"},)
    for name in ("adapter", "home-continent", "nearest-continent", "gate-mixture", "palette"):
        with pytest.raises(NotApplicable, match="respondent described by demographics"):
            METHODS[name].build(MethodContext(), target, "Q?")
    with pytest.raises(DataError, match="needs its culture"):
        describe(replace(item, culture=None))
