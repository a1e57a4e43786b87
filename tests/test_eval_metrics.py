"""Evaluation building blocks: option scoring, JSD similarity, macro-F1, the answer parser, methods,
references, task files and report tables (no model needed)."""

from __future__ import annotations

import json
import math
import random

import pytest

from cultura.errors import CulturaError, DataError, UnknownNameError
from cultura.choices import numbered_question, parse_choice, softmax
from cultura.eval.metrics import (expected_option, jensen_shannon_distance, jsd_similarity, macro_f1, mixture,
                                  top_option)


def test_option_scoring_expectation_from_log_probabilities():
    probs = [0.1, 0.2, 0.4, 0.2, 0.1]
    logprobs = [math.log(p) - 7.5 for p in probs]  # unnormalised: the engine's sums of token log-probs
    assert softmax(logprobs) == pytest.approx(probs)
    assert expected_option(softmax(logprobs)) == pytest.approx(3.0)
    assert expected_option([0.0, 0.0, 0.0, 0.0, 1.0]) == pytest.approx(5.0)
    assert expected_option([0.5, 0.0, 0.0, 0.0, 0.5]) == pytest.approx(3.0)
    skewed = softmax([math.log(0.7), math.log(0.3), -math.inf])
    assert expected_option(skewed) == pytest.approx(1 * 0.7 + 2 * 0.3)
    assert top_option(skewed) == 0
    with pytest.raises(CulturaError):
        softmax([])


def test_jsd_similarity_identical_is_one_and_disjoint_is_zero():
    p = [0.2, 0.3, 0.5]
    assert jsd_similarity(p, p) == pytest.approx(1.0)
    assert jsd_similarity([1, 0, 0, 0], [0, 0, 0.5, 0.5]) == pytest.approx(0.0)
    assert 0 < jsd_similarity([0.6, 0.4], [0.4, 0.6]) < 1
    with pytest.raises(CulturaError):
        jsd_similarity([0.5, 0.5], [1.0, 0.0, 0.0])


def test_jensen_shannon_distance_matches_scipy():
    from scipy.spatial.distance import jensenshannon

    rng = random.Random(3)
    for _ in range(20):
        k = rng.randint(2, 6)
        p = [rng.random() for _ in range(k)]
        q = [rng.random() * (rng.random() > 0.3) for _ in range(k)]
        q[0] += 0.01
        assert jensen_shannon_distance(p, q) == pytest.approx(float(jensenshannon(p, q, base=2)), abs=1e-9)


def test_macro_f1_matches_scikit_learn():
    from sklearn.metrics import f1_score

    rng = random.Random(7)
    cases = [(["a", "b", "a", "a"], ["a", "a", "a", "a"]), ([1, 0, 1, 0], [0, 1, 0, 1]), ([1, 1, 1], [1, 1, 1])]
    for _ in range(30):
        n = rng.randint(1, 25)
        labels = ["x", "y", "z"][: rng.randint(2, 3)]
        cases.append(([rng.choice(labels) for _ in range(n)], [rng.choice(labels) for _ in range(n)]))
    for truth, pred in cases:
        expected = f1_score(truth, pred, average="macro", zero_division=0)
        assert macro_f1(truth, pred) == pytest.approx(expected), (truth, pred)
    assert macro_f1(["a", "a"], ["a", "a"], labels=["a", "b"]) == pytest.approx(
        f1_score(["a", "a"], ["a", "a"], labels=["a", "b"], average="macro", zero_division=0))


def test_mixture_weights_distributions():
    assert mixture([[1.0, 0.0], [0.0, 1.0]], [0.75, 0.25]) == pytest.approx([0.75, 0.25])
    assert mixture([[0.5, 0.5]], [3.0]) == pytest.approx([0.5, 0.5])
    with pytest.raises(CulturaError):
        mixture([[1.0, 0.0]], [0.0])


@pytest.mark.parametrize(("text", "expected"), [
    ("3", 2), ("3.", 2), ("Option 2", 1), ("I would say 4 because it matters", 3), ("Strongly disagree", 3),
    ("I disagree.", 2), ("2 or 3", None), ("7", None), ("", None), ("3.5", None), ("no idea", None),
])
def test_parse_choice_reads_clear_answers_and_refuses_unclear_ones(text, expected):
    assert parse_choice(text, ["Strongly agree", "Agree", "Disagree", "Strongly disagree"]) == expected


def test_numbered_question_numbers_the_options():
    text = numbered_question("Is it?", ["Yes", "No"])
    assert "1. Yes" in text and "2. No" in text and text.startswith("Is it?")


def test_methods_registry_and_plans():
    from cultura.eval.methods import METHODS, MethodContext, NotApplicable, country_target, culture_target, get_methods

    assert [m.name for m in get_methods("base, prompted")] == ["base", "prompted"]
    assert len(get_methods("all")) == len(METHODS)
    with pytest.raises(UnknownNameError, match="known methods: .*palette"):
        get_methods("base,telepathy")
    target = culture_target("german")
    assert (target.country, target.culture) == ("Germany", "german")
    base = METHODS["base"].build(MethodContext(), target, "Q?")
    assert [m["role"] for m in base.components[0].messages] == ["user"]
    prompted = METHODS["prompted"].build(MethodContext(), target, "Q?").components[0]
    assert prompted.messages[0]["role"] == "system" and "German" in prompted.messages[0]["content"]
    with pytest.raises(NotApplicable, match="no adapter for german"):
        METHODS["adapter"].build(MethodContext(), target, "Q?")
    ctx = MethodContext(adapters={"de-lora": "/x"}, culture_adapters={"german": "de-lora"})
    assert METHODS["adapter"].build(ctx, target, "Q?").components[0].adapter == "de-lora"
    mexico = country_target("mexican")
    assert mexico.country == "Mexico" and mexico.adapter_keys == ("mexico", "spanish")
    blend = METHODS["uniform-blend"].build(MethodContext(), mexico, "Q?")
    assert [c.label for c in blend.components] == ["Africa", "America", "Asia", "Europe", "Oceania"]
    assert sum(c.weight for c in blend.components) == pytest.approx(1.0)
    assert [c.label for c in METHODS["nearest-continent"].build(MethodContext(), country_target("Australia"), "Q?").components] == ["Oceania"]


def test_gate_mixture_plan_follows_the_gate():
    from cultura.config import load_config
    from cultura.eval.context import build_context
    from cultura.eval.methods import METHODS, culture_target

    ctx = build_context(load_config())
    plan = METHODS["gate-mixture"].build(ctx, culture_target("korean"), "How should children treat their parents?")
    assert sum(plan.gate.values()) == pytest.approx(1.0)
    assert sum(1 for w in plan.gate.values() if w > 0) == 3  # top-k = 3 by default
    assert {c.label: c.weight for c in plan.components} == {c: w for c, w in plan.gate.items() if w > 0}


def test_palette_method_scores_after_the_meta_agent_answer():
    from cultura.eval.methods import METHODS, MethodContext, NotApplicable, culture_target
    from cultura.palette.stages import PaletteResponse

    target = culture_target("korean")
    with pytest.raises(NotApplicable, match="did not answer"):
        METHODS["palette"].build(MethodContext(), target, "Q?\n1. Yes\n2. No")
    answer = PaletteResponse(text="Family comes first, so yes.", weights={"Asia": 0.7, "Europe": 0.3}, drafts={},
                             timings={}, country="South Korea", missing=("Asia", "Europe"))
    ctx = MethodContext(palette_answers={("Q?\n1. Yes\n2. No", "South Korea"): answer})
    plan = METHODS["palette"].build(ctx, target, "Q?\n1. Yes\n2. No")
    [component] = plan.components
    assert [m["role"] for m in component.messages] == ["user", "assistant", "user"]
    assert component.messages[1]["content"] == "Family comes first, so yes." and component.adapter is None
    assert plan.gate == {"Asia": 0.7, "Europe": 0.3} and "Asia, Europe" in plan.note


def test_hofstede_centroids_leave_the_scored_country_out():
    from cultura.data.hofstede import continent_centroid, country_scores, countries
    from cultura.eval.methods import nearest_continent
    from cultura.palette.gate import CulturalGate, hofstede_distance, vector_distance

    europe = [country_scores(c) for c in countries("Europe") if c != "Germany"]
    centroid = continent_centroid("Europe", exclude="Germany")
    assert centroid["PDI"] == pytest.approx(sum(s["PDI"] for s in europe if s["PDI"] is not None)
                                            / sum(1 for s in europe if s["PDI"] is not None))
    assert centroid != continent_centroid("Europe")
    assert hofstede_distance("Germany", "Europe", leave_out=True) == pytest.approx(
        vector_distance(country_scores("Germany"), centroid))
    gate = CulturalGate(embedder=lambda texts: None)  # the gate's centroids always leave the target out
    assert gate.proximity("Germany")["Europe"] == pytest.approx(-hofstede_distance("Germany", "Europe", True))
    assert nearest_continent("Australia", leave_out=True) in ("America", "Europe", "Oceania")


def test_pearson_and_shared_targets():
    from cultura.eval.methods import get_methods
    from cultura.eval.metrics import pearson
    from cultura.eval.vsm_eval import shared_targets

    assert pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert pearson([1, 2], [1, 2]) is None and pearson([5, 5, 5], [1, 2, 3]) is None
    summary = [{"target": t, "method": m, "distance": d} for t, m, d in (
        ("german", "base", 10.0), ("german", "adapter", 9.0), ("korean", "base", 12.0), ("korean", "adapter", None),
        ("turkish", "base", 8.0), ("turkish", "adapter", 7.0))]
    assert shared_targets(summary, get_methods("base,adapter")) == ["german", "turkish"]
    summary = [dict(s, distance=None) if s["method"] == "adapter" else s for s in summary]
    assert shared_targets(summary, get_methods("base,adapter")) == ["german", "korean", "turkish"]


def test_available_indices_and_hofstede_summary_from_answers():
    from cultura.eval.hofstede import hofstede_distance
    from cultura.eval.methods import culture_target, get_methods
    from cultura.eval.vsm_eval import available_indices, summarise

    neutral = {i: 3.0 for i in range(1, 25)}
    assert available_indices(neutral) == {d: 50.0 for d in ("PDI", "IDV", "MAS", "UAI", "LTO", "IVR")}
    partial = {i: v for i, v in neutral.items() if i not in (13, 14)}
    assert "LTO" not in available_indices(partial) and available_indices(partial)["PDI"] == 50.0
    target = culture_target("german")
    rows = [{"target": "german", "method": "base", "item_id": str(i), "status": "ok", "expected": 3.0, "note": ""}
            for i in range(1, 25)]
    entry, midpoint, world = summarise(rows, [target], get_methods("base"))
    assert entry["items"] == 24 and entry["PDI"] == 50.0
    assert entry["distance"] == pytest.approx(hofstede_distance({d: 50.0 for d in available_indices(neutral)}, "Germany"))
    # an answerer indifferent on every item is the midpoint baseline exactly
    assert (midpoint["method"], world["method"]) == ("midpoint", "world-mean")
    assert midpoint["distance"] == pytest.approx(entry["distance"]) and midpoint["items"] is None


def test_opinion_references_are_the_country_own_data():
    from cultura.data.seeds import Seed
    from cultura.eval.references import scored_item, scored_items

    seed = Seed("s1", "wvs", "t", "question", "Q?", ("A", "B", "C"),
                {"Germany": "B", "Spain": "C", "Japan": "A", "Brazil": "A"},
                {"Spain": (0.2, 0.3, 0.5), "Japan": (0.6, 0.3, 0.1)},
                {"Germany": "approximate", "Spain": "survey X", "Japan": "survey Y", "Brazil": "survey Z"})
    germany = scored_item(seed, "Germany")
    assert germany.reference == (0.0, 1.0, 0.0) and germany.one_hot and germany.approximate and not germany.proxy
    assert germany.source == "Germany: majority answer (one-hot); approximate"
    # the baselines see every other country, never the scored one
    assert sorted(germany.others) == sorted([(0.2, 0.3, 0.5), (0.6, 0.3, 0.1), (1.0, 0.0, 0.0)])
    assert scored_item(seed, "Mexico") is None  # Mexico is not scored with Spain's data by default
    mexico = scored_item(seed, "Mexico", proxy="culture")
    assert mexico.reference == pytest.approx((0.2, 0.3, 0.5)) and mexico.proxy
    assert mexico.source.startswith("proxy: culture spanish, data of Spain")
    assert (0.2, 0.3, 0.5) not in mexico.others and len(mexico.others) == 3  # nor the proxy's data
    items, no_data = scored_items([seed], ["Germany", "Mexico", "Japan"])
    assert [i.country for i in items] == ["Germany", "Japan"] and no_data == ["Mexico"]


def test_baselines():
    from cultura.eval.baselines import BASELINES, PREDICTORS, global_majority, global_mean

    others = [(0.6, 0.4, 0.0), (0.1, 0.5, 0.4), (0.2, 0.7, 0.1)]
    assert BASELINES == ("uniform", "global-majority", "global-mean")
    assert PREDICTORS["uniform"](others, 3) == pytest.approx([1 / 3] * 3)
    assert global_mean(others, 3) == pytest.approx([0.3, 1.6 / 3, 0.5 / 3])
    assert global_majority(others, 3) == [0.0, 1.0, 0.0]
    # a tie in votes goes to the higher mean share
    assert global_majority([(0.9, 0.1), (0.4, 0.6)], 2) == [1.0, 0.0]
    assert global_majority([], 2) == global_mean([], 2) == [0.5, 0.5]


def test_country_set_palette18():
    from cultura.data.hofstede import CONTINENTS, continent_of
    from cultura.eval.countries import resolve_countries

    countries = resolve_countries("palette18")
    assert len(countries) == 18 == len(set(countries))
    for continent in CONTINENTS:
        assert sum(continent_of(c) == continent for c in countries) >= 2
    with pytest.raises(UnknownNameError, match="Japan"):
        resolve_countries("Jappan")


def test_moderation_tasks_validate_rows(tmp_path):
    from cultura.eval.moderation_tasks import load_task, load_tasks, template_for

    tasks = load_tasks("bundled")
    assert set(tasks) >= {"offensive", "hate", "spam"}
    assert all({e.label for e in examples} == {True, False} for examples in tasks.values())
    assert template_for("hate_arabic").positive == "hate"
    bad = tmp_path / "offensive.jsonl"
    bad.write_text(json.dumps({"text": "fine", "label": 0}) + "\n" + json.dumps({"text": "no label here"}) + "\n")
    with pytest.raises(DataError, match=r"offensive.jsonl: row 2, field 'label': missing"):
        load_task(bad)
    bad.write_text(json.dumps({"text": "x", "label": "maybe"}) + "\n")
    with pytest.raises(DataError, match=r"row 1, field 'label': 'maybe'"):
        load_task(bad)
    with pytest.raises(UnknownNameError, match="moderation template"):
        template_for("sarcasm")


def test_result_table_keeps_its_schema(tmp_path):
    import pyarrow.parquet as pq

    from cultura.eval.report import RESULT_COLUMNS, result_schema, write_table

    rows = [{"evaluation": "opinions", "item_id": "s1", "options": ["A", "B"], "probs": [0.25, 0.75],
             "top_option": 2, "status": "ok"}]
    parquet, csv_path = write_table(tmp_path, "results", rows, RESULT_COLUMNS)
    table = pq.read_table(parquet)
    assert table.schema.equals(result_schema())
    assert table.column("probs").to_pylist() == [[0.25, 0.75]]
    assert '"[0.25, 0.75]"' in csv_path.read_text()


def test_plots_are_valid_and_deterministic(tmp_path):
    from PIL import Image

    from cultura.eval import plots

    dims = ["PDI", "IDV", "MAS", "UAI", "LTO", "IVR"]
    series = {"Hofstede": dict(zip(dims, [35, 67, 66, 65, 83, 40])), "base": dict(zip(dims, [40, 50, 52, 70, None, 45]))}
    drawn = [
        lambda p: plots.radar(p, "german", dims, series, reference="Hofstede"),
        lambda p: plots.grouped_bars(p, "distance", "d", ["german", "mean"], {"base": [45.0, 45.0], "adapter": [None, None]}),
        lambda p: plots.heatmap(p, "gate", ["Japan", "Peru"], ["Asia", "America"], [[0.7, 0.3], [0.1, 0.9]]),
        lambda p: plots.table(p, "t", ["a", "b"], [["1", "2"]]),
    ]
    for i, draw in enumerate(drawn):
        first, second = draw(tmp_path / f"{i}a.png"), draw(tmp_path / f"{i}b.png")
        assert first.read_bytes() == second.read_bytes()
        with Image.open(first) as image:
            assert image.format == "PNG"


def test_the_adapter_method_asks_exactly_as_the_fine_tuning_rows_ask():
    """One function builds the chat of a training row and of the ``adapter`` method's question:
    CulturePark's chatbot prompt and the seed's numbered question; the row answers with the option
    number and a first-person opinion."""
    from cultura.data.seed_files import load_seeds
    from cultura.eval.methods import METHODS, MethodContext, country_target
    from cultura.pipelines.finetune.data import seed_answer_conversations
    from cultura.pipelines.refine.sft import sft_record

    seed = next(s for s in load_seeds(cultures=["german"]) if s.attitude("german") and s.kind == "statement")
    answer = seed.attitude("german")
    row = {"culture": "german", "seed_id": seed.id, "seed_source": seed.source, "seed_kind": seed.kind,
           "seed_text": seed.text, "options": list(seed.options), "attitude": answer,
           "text": "I think so too.", "dialogue_id": "d1", "opinion_id": "o1"}
    record = sft_record(row)
    ctx = MethodContext(culture_adapters={"german": "german-lora"})
    [component] = METHODS["adapter"].build(ctx, country_target("Germany"), seed.numbered_prompt()).components
    assert list(component.messages) == record["messages"][:-1] and component.adapter == "german-lora"
    assert record["messages"][0]["content"] == "You are a German chatbot that knows German very well."
    number = seed.options.index(answer) + 1
    assert record["messages"][-1]["content"] == f"{number}. I think so too."
    stand_in = next(c for c in seed_answer_conversations("german") if seed.text in c[1]["content"])
    assert stand_in[:-1] == record["messages"][:-1] and stand_in[-1]["content"].startswith(f"{number}. I ")
    assert sft_record(row | {"attitude": "not an option"}) is None  # no number to answer with
