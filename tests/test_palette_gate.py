"""The Cultural MoE gate, without Ray: weights, proximity, top-k sparsity, named countries, bad input."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest

from cultura.data.hofstede import CONTINENTS, DIMENSIONS, continent_centroid, country_scores
from cultura.errors import ConfigError, CulturaError, UnknownNameError
from cultura.palette.gate import CulturalGate, hofstede_distance, mentioned_continents

PROMPT = "What should I bring when visiting a friend's family for dinner?"


def hashing_embedder(texts: list[str]) -> np.ndarray:
    """A deterministic bag-of-words embedder: texts sharing words have a higher cosine."""
    rows = np.zeros((len(texts), 128))
    for i, text in enumerate(texts):
        for word in text.lower().replace(",", " ").replace(".", " ").split():
            rows[i, int(hashlib.sha1(word.encode()).hexdigest(), 16) % 128] += 1.0
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.where(norms == 0, 1.0, norms)


def gate(**kwargs) -> CulturalGate:
    return CulturalGate(embedder=hashing_embedder, **kwargs)


@pytest.mark.parametrize("country", [None, "Japan", "Brazil", "Kenya", "usa"])
def test_weights_sum_to_one_and_cover_all_continents(country):
    decision = gate(tau=0.2).weights(PROMPT, country)
    assert tuple(decision.weights) == CONTINENTS
    assert math.isclose(sum(decision.weights.values()), 1.0, rel_tol=1e-9)
    assert all(w >= 0 for w in decision.weights.values())
    assert len(decision.selected) == 3
    heaviest_first = [decision.weights[c] for c in decision.selected]
    assert heaviest_first == sorted(heaviest_first, reverse=True)


def test_distance_skips_missing_dimensions_and_rescales():
    scores, centroid = country_scores("Kenya"), continent_centroid("Africa")
    shared = [d for d in DIMENSIONS if scores[d] is not None]
    assert 0 < len(shared) < len(DIMENSIONS)  # Kenya lacks some published dimensions
    expected = math.sqrt(sum(((scores[d] - centroid[d]) / 100) ** 2 for d in shared) * 6 / len(shared))
    assert hofstede_distance("Kenya", "Africa") == pytest.approx(expected)


def test_closer_continent_gets_more_weight_from_proximity():
    # relevance switched off: the weights are a softmax over -alpha * d / tau, d to centroids without Australia
    g = gate(alpha=1.0, beta=0.0, tau=0.1, top_k=5)
    decision = g.weights(PROMPT, "Australia")
    distances = {c: hofstede_distance("Australia", c, leave_out=True) for c in CONTINENTS}
    assert decision.proximity == pytest.approx({c: -d for c, d in distances.items()})
    assert decision.selected[0] == min(distances, key=distances.get) == "Oceania"
    for a in CONTINENTS:
        for b in CONTINENTS:
            if distances[a] < distances[b]:
                assert decision.weights[a] > decision.weights[b]
            ratio = decision.weights[a] / decision.weights[b]
            assert ratio == pytest.approx(math.exp((distances[b] - distances[a]) / 0.1))


def test_a_country_closer_to_a_centroid_gets_more_weight_there():
    g = gate(beta=0.0, tau=0.2, top_k=5)
    near, far = "New Zealand", "Japan"
    assert hofstede_distance(near, "Oceania", True) < hofstede_distance(far, "Oceania", True)
    assert g.weights(PROMPT, near).weights["Oceania"] > g.weights(PROMPT, far).weights["Oceania"]


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
def test_top_k_zeroes_the_rest(k):
    decision = gate(tau=0.5, top_k=k).weights(PROMPT, "Germany")
    nonzero = {c for c, w in decision.weights.items() if w > 0}
    assert nonzero == set(decision.selected) and len(nonzero) == k
    assert math.isclose(sum(decision.weights.values()), 1.0, rel_tol=1e-9)
    full = gate(tau=0.5, top_k=5).weights(PROMPT, "Germany")
    assert decision.selected == full.selected[:k]  # the kept ones are the heaviest of the full softmax


def test_named_country_is_detected_and_boosts_its_continent():
    prompt = "How should I greet my colleagues on my first day at work in Japan?"
    decision = gate(mention_bonus=0.5).weights(prompt)
    plain = gate(mention_bonus=0.0).weights(prompt)
    assert decision.country == "Japan"
    assert decision.proximity  # the detected country drives proximity
    for continent in CONTINENTS:
        bonus = 0.5 if continent == "Asia" else 0.0
        assert decision.relevance[continent] == pytest.approx(plain.relevance[continent] + bonus)


def test_given_country_wins_over_a_named_one():
    decision = gate().weights("Is it rude to be late to dinner in Brazil?", "Germany")
    assert decision.country == "Germany"
    assert decision.relevance["America"] > gate(mention_bonus=0.0).weights(
        "Is it rude to be late to dinner in Brazil?", "Germany").relevance["America"]


def test_regions_count_as_mentions_without_a_country():
    assert mentioned_continents("Which gifts are common across East Asia?") == {"Asia"}
    assert mentioned_continents("Tell me about Maori and Scandinavian weddings") == {"Oceania", "Europe"}
    decision = gate().weights("Which gifts are common in Latin America?")
    assert decision.country is None and decision.proximity == {}
    assert mentioned_continents("Which gifts are common in Latin America?") == {"America"}


def test_no_country_means_relevance_only():
    g = gate(tau=0.3, top_k=5)
    decision = g.weights(PROMPT)
    assert decision.country is None and decision.proximity == {}
    scores = np.array([decision.relevance[c] for c in CONTINENTS]) / 0.3
    expected = np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum()
    assert [decision.weights[c] for c in CONTINENTS] == pytest.approx(list(expected))


def test_weights_many_matches_single_calls():
    g = gate(tau=0.2)
    prompts = [PROMPT, "Is tipping expected in restaurants in the US?"]
    many = g.weights_many(prompts, ["India", None])
    for decision, single in zip(many, [g.weights(PROMPT, "India"), g.weights(prompts[1])]):
        assert decision.selected == single.selected and decision.country == single.country
        assert decision.weights == pytest.approx(single.weights)
        assert decision.relevance == pytest.approx(single.relevance)
    assert many[1].country == "United States"


def test_bad_input_is_a_clear_error():
    with pytest.raises(UnknownNameError, match="did you mean: Japan"):
        gate().weights(PROMPT, "Japn")
    for empty in ("", "   ", None):
        with pytest.raises(CulturaError, match="prompt is empty"):
            gate().weights(empty)
    for bad in (dict(top_k=0), dict(top_k=6), dict(tau=0.0), dict(tau=-1.0), dict(alpha=-1.0)):
        with pytest.raises(ConfigError):
            gate(**bad)


def test_real_embedder_favours_the_named_continent():
    g = CulturalGate(tau=0.2)
    decision = g.weights("How do people greet each other in Nigeria?")
    assert decision.country == "Nigeria"
    assert decision.selected[0] == "Africa"
    # the description embedding alone (no mention bonus) already ranks Africa first for this prompt
    plain = CulturalGate(tau=0.2, mention_bonus=0.0).weights("What are customs around elders in African villages?")
    assert max(plain.relevance, key=plain.relevance.get) == "Africa"


def test_judge_ratings_come_from_option_scores_in_both_scale_directions():
    """A judge that always picks the option reading "High" rates 4 on every dimension: the reversed
    scale is mapped back; a failed request leaves its dimension unrated."""
    import math

    from cultura.engines.base import Failure, OptionScores
    from cultura.palette.judge import rate, ratings_to_scores

    def score(items):
        out = []
        for chat, numbers in items:
            text = chat[-1]["content"]
            if "uncertainty avoidance" in text and "Bring sweets" in text:
                out.append(Failure("InvalidRequest: too long"))
                continue
            listed = [line.split(". ", 1)[1] for line in text.splitlines() if line[:2] in {f"{n}." for n in numbers}]
            out.append(OptionScores(tuple(0.0 if o == "High" else -50.0 for o in listed), 0.9))
        return out

    [(ratings, mass), (partial, _)] = rate([("Q?", "Bring wine."), ("Q?", "Bring sweets.")], score)
    assert all(math.isclose(r, 4.0, abs_tol=1e-9) for r in ratings.values()) and mass == 0.9
    assert partial["UAI"] is None and partial["PDI"] == pytest.approx(4.0)
    assert ratings_to_scores({"PDI": 1, "IDV": 5, "MAS": None}) == {"PDI": 0.0, "IDV": 100.0, "MAS": None}


def test_selection_keeps_the_sample_closest_to_the_centroid():
    from cultura.pipelines.palette_data.select import select_rows

    def sample(text, distance):
        return {"response": text, "judge_text": "", "ratings": {"PDI": 3}, "distance": distance}

    candidates = {"Asia": [sample("a1", 0.4), sample("a2", 0.2)], "Europe": [sample("e1", 0.3), sample("e2", None)],
                  "Africa": [sample("f1", 1.5)], "Oceania": [sample("o1", None)]}
    rows = {r["continent"]: r for r in select_rows("q", candidates, max_distance=1.0, extra={})}
    assert {c: r["status"] for c, r in rows.items()} == {
        "Africa": "far", "Asia": "kept", "Europe": "kept", "Oceania": "unrated"}
    assert rows["Asia"]["response"] == "a2" and rows["Asia"]["rejected_response"] == ["e1"]
    assert rows["Europe"]["response"] == "e1" and rows["Europe"]["rejected_continents"] == ["Asia"]
    alone = select_rows("q", {"Asia": [sample("a1", 0.1)], "Europe": [sample("e1", 2.0)]}, 1.0, {})
    assert {r["continent"]: r["status"] for r in alone} == {"Asia": "alone", "Europe": "far"}


def test_meta_prompts_order_drafts_by_weight_and_end_with_the_question():
    from cultura.palette.meta import aggregation_messages, clean_answer, draft_messages

    messages = aggregation_messages(PROMPT, {"Europe": "Bring wine.", "Asia": "Bring sweets."},
                                    {"Asia": 0.6, "Europe": 0.4, "Africa": 0.0}, "Japan")
    user = messages[-1]["content"]
    assert messages[0]["role"] == "system" and messages[-1]["role"] == "user"
    assert user.index("Asia expert (weight 0.60)") < user.index("Europe expert (weight 0.40)")
    assert "people from Japan" in user and user.rstrip().endswith(PROMPT)
    draft = draft_messages(PROMPT, "oceania", "Japan")
    assert "Oceania" in draft[0]["content"] and draft[1]["content"] == f"I am from Japan. {PROMPT}"
    assert clean_answer('**Final answer:** "Bring sweets."') == "Bring sweets."
    assert clean_answer("Answering politely matters.") == "Answering politely matters."
    assert clean_answer("Answer: Expert: Japan values modest gifts.") == "Japan values modest gifts."
    assert clean_answer("- Asia expert (weight 0.40): Bring sweets.") == "Bring sweets."
    assert clean_answer("Experts agree: bring sweets.") == "Experts agree: bring sweets."


# Meta Agent answers of the default model, as they came, with what the user must get instead.
ECHOED = [
    (f'{PROMPT}\nThe answer is: "A sushi roll"', "A sushi roll"),
    ('The answer to this question would be: "Bring a small gift."', "Bring a small gift."),
    ("- Germany expert (weight 0.12): In Germany, bring flowers.", "In Germany, bring flowers."),
    ('Nigeria: "Bring kola nuts."', "Bring kola nuts."),
    ("Meta Agent: Bring flowers.", "Bring flowers."),
    (f"I am from Japan. {PROMPT} Bring sweets.", "Bring sweets."),
    ("In Japan: bring a gift.", "In Japan: bring a gift."),
    ("The answer to this question depends on the host.", "The answer to this question depends on the host."),
    ('Answer "yes" politely.', 'Answer "yes" politely.'),
]


@pytest.mark.parametrize(("raw", "clean"), ECHOED)
def test_the_meta_answer_loses_echoed_labels_and_the_echoed_question(raw, clean):
    from cultura.palette.meta import clean_answer

    assert clean_answer(raw, PROMPT, "Japan") == clean


def test_an_answer_that_only_echoes_falls_back_to_the_heaviest_draft():
    from cultura.palette.meta import final_answer

    drafts, weights = {"Europe": "Bring wine.", "Asia": "Asia expert: Bring sweets."}, {"Asia": 0.6, "Europe": 0.4}
    assert final_answer(f'The correct answer would be "{PROMPT}"', PROMPT, drafts, weights, "Japan") == "Bring sweets."
    assert final_answer(f'Expert: "Expert: {PROMPT}\n\nExpert: "Expert:', PROMPT, drafts, weights) == "Bring sweets."
    assert final_answer("Answer: Bring tea.", PROMPT, drafts, weights) == "Bring tea."
