"""The Cultural MoE gate knows geography: the target's own continent counts, its centroid leaves it out."""

from __future__ import annotations

import math

import pytest

from cultura.data.hofstede import CONTINENTS, continent_of
from cultura.palette.gate import CulturalGate, hofstede_distance

NEUTRAL = ["What should I bring when visiting a friend's family for dinner?",
           "How should I greet my new colleagues at work?"]
EITHER = {"Turkey": {"Asia", "Europe"}, "Russia": {"Asia", "Europe"}}  # between two continents


@pytest.fixture(scope="module")
def gate():
    """The gate as configured by default, with the real sentence embedder."""
    from cultura.config import load_config

    return CulturalGate.from_config(load_config(None, {}).palette)


def test_each_of_the_18_countries_gets_its_own_continent_first_for_a_neutral_prompt(gate):
    from cultura.eval.countries import resolve_countries

    countries = resolve_countries("palette18")
    assert len(countries) == 18
    for prompt in NEUTRAL:
        for d in gate.weights_many([prompt] * len(countries), countries):
            assert d.home == continent_of(d.country)
            assert d.selected[0] in EITHER.get(d.country, {d.home}), (prompt, d.country, d.weights)


def test_a_prompt_naming_another_culture_moves_weight_towards_it(gate):
    for country, named, place in (("Japan", "Europe", "Germany"), ("United States", "Africa", "Nigeria"),
                                  ("Germany", "Asia", "China")):
        neutral = gate.weights(NEUTRAL[0], country).weights
        prompt = f"What should I bring when visiting a friend's family for dinner in {place}?"
        moved = gate.weights(prompt, country)
        assert moved.country == country and moved.weights[named] > neutral[named], (country, neutral, moved.weights)


def test_the_score_is_proximity_to_centroids_without_the_target_plus_the_home_term():
    """With relevance off, the log-ratio of two continents' weights is exactly the formula's."""
    g = CulturalGate(alpha=1.0, beta=0.0, tau=0.25, top_k=5, home_weight=0.7, embedder=lambda texts: [[1.0]] * len(texts))
    d = g.weights("Any question?", "Japan")
    assert d.home == "Asia"
    for c in CONTINENTS:
        assert d.proximity[c] == pytest.approx(-hofstede_distance("Japan", c, leave_out=True))
    for other in ("Europe", "America"):
        expected = (d.proximity["Asia"] + 0.7 - d.proximity[other]) / 0.25
        assert math.log(d.weights["Asia"] / d.weights[other]) == pytest.approx(expected)
    assert hofstede_distance("Japan", "Asia", leave_out=True) != hofstede_distance("Japan", "Asia")
