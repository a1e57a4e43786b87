"""`cultura eval bench` for real on the benchmark fixtures (the default model, a local Ray, Ray Data), the
CulturalBench-Hard group rule on hand-made rows, what is left out, and clear errors for bad inputs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cultura.data.benchmarks.registry import get_benchmark
from cultura.data.benchmarks.schema import write_items
from cultura.eval.bench import (
    group_correct,
    left_out_line,
    most_common_answer,
    select_items,
)
from cultura.eval.methods import culture_target

FIXTURES = Path(__file__).parent / "data" / "benchmarks"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _row(item_id: str, correct: bool | None, status: str = "ok") -> dict:
    return {"item_id": item_id, "status": status, "correct": correct}


def test_group_rule_counts_a_question_right_only_when_all_its_rows_are():
    groups = {"a1": "q1", "a2": "q1", "a3": "q1", "a4": "q1", "b1": "q2", "b2": "q2", "c1": "q3", "c2": "q3",
              "d1": None}
    rows = [_row("a1", True), _row("a2", True), _row("a3", True), _row("a4", True),  # q1: all right
            _row("b1", True), _row("b2", False),  # q2: one row wrong
            _row("c1", True), _row("c2", None, "failed"),  # q3: a row unanswered: not counted
            _row("d1", True)]  # no group: not a question
    assert group_correct(rows, groups) == {"q1": True, "q2": False}


def test_select_items_counts_left_out_kinds_and_keeps_a_cut_group_whole():
    items = get_benchmark("culturalbench").read(FIXTURES / "culturalbench").items
    chosen, left = select_items(items, limit=5)  # 3 Easy items, then the first Hard group (4 rows) kept whole
    assert [i.id for i, _ in chosen][:3] == ["easy-0", "easy-1", "easy-2"]
    assert len(chosen) == 7 and {i.group for i, _ in chosen[3:]} == {"hard-0"}
    assert left == [{"kind": "(any)", "items": 4, "reason": "past --limit 5"}]
    assert chosen[0][1].country == "Japan"
    assert most_common_answer([i for i, _ in chosen[3:]]) == "no"
    blend = get_benchmark("blend").read(FIXTURES / "blend").items
    chosen, left = select_items(blend)
    assert {i.kind for i, _ in chosen} == {"multiple_choice", "short_answer"} and len(chosen) == len(blend) and not left
    cdeval = get_benchmark("cdeval").read(FIXTURES / "cdeval").items
    chosen, left = select_items(cdeval)  # items naming no culture, and no one to ask them as
    assert not chosen and left[0]["kind"] == "orientation" and "no cultures were given" in left[0]["reason"]
    assert left[0]["items"] == len(cdeval)
    targets = [culture_target("german"), culture_target("korean")]
    chosen, left = select_items(cdeval, limit=2, cultures=targets)  # the limit counts items, not (item, culture)
    assert [(i.id, t.key) for i, t in chosen] == [(i.id, t.key) for i in cdeval[:2] for t in targets]
    assert left == [{"kind": "(any)", "items": len(cdeval) - 2, "reason": "past --limit 2"}]


def test_eval_bench_culturalbench(ray_session, tmp_path):
    """The fixture's 3 Easy and 8 Hard rows, base and prompted: every row scored against its gold answer,
    accuracy intervals around their means, both baselines, Hard's question accuracy from its rows."""
    import pyarrow.parquet as pq
    from PIL import Image

    from cultura.cli import cli
    from cultura.eval.report import result_schema

    out = tmp_path / "cb"
    result = CliRunner().invoke(cli, ["eval", "bench", "culturalbench", "--from", str(FIXTURES / "culturalbench"),
                                      "--methods", "base,prompted", "--report", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "11 of 11 items scored." in result.output
    for name in ("report.md", "results.parquet", "results.csv", "summary.parquet", "summary.csv", "accuracy.png"):
        assert (out / name).is_file(), name
    assert (out / "accuracy.png").read_bytes().startswith(PNG_SIGNATURE)
    with Image.open(out / "accuracy.png") as image:
        image.verify()
    table = pq.read_table(out / "results.parquet")
    assert table.schema.equals(result_schema())
    rows = table.to_pylist()
    assert len(rows) == 11 * 2 and all(r["status"] == "ok" and r["evaluation"] == "bench" for r in rows)
    for r in rows:
        assert r["prediction"] == r["options"][r["top_option"] - 1] and r["correct"] == (r["prediction"] == r["gold"])
    summary = pq.read_table(out / "summary.parquet").to_pylist()
    for s in summary:
        mine = [r for r in rows if r["method"] == s["method"] and r["item_id"].startswith(s["subset"])
                and s["country"] in ("all", r["target"])]
        assert s["items"] == len(mine) and s["few"]
        assert s["accuracy"] == pytest.approx(sum(r["correct"] for r in mine) / len(mine))
        for name in ("accuracy", "random", "most_common", "lift"):
            assert s[f"{name}_low"] <= s[name] <= s[f"{name}_high"], (name, s)
        assert s["random"] == pytest.approx(0.25 if s["subset"] == "easy" else 0.5)
        assert s["best_baseline"] in ("random", "most-common") and s["versus_baseline"]
        if s["items"] == 1:
            assert s["versus_baseline"] == "cannot tell"
    assert all(s["questions"] is None for s in summary if s["subset"] == "easy")  # one row per question there
    hard = {s["method"]: s for s in summary if s["subset"] == "hard" and s["country"] == "all"}
    assert set(hard) == {"base", "prompted"}
    for method, s in hard.items():
        mine = [r for r in rows if r["method"] == method and r["item_id"].startswith("hard")]
        by_question = [all(r["correct"] for r in mine if r["item_id"] in ids)
                       for ids in ({f"hard-{i}" for i in range(4)}, {f"hard-{i}" for i in range(4, 8)})]
        assert s["questions"] == 2 and s["question_accuracy"] == pytest.approx(sum(by_question) / 2)
        assert s["most_common"] == pytest.approx(6 / 8)  # 'no' is gold on 6 of the 8 rows
    report = (out / "report.md").read_text()
    assert "Nothing was left out." in report and "question_accuracy" in report and "*few*" in report
    assert "(accuracy.png)" in report


def test_eval_bench_blend_short_answers_are_replies_matched_against_the_accepted_answers(ray_session, tmp_path):
    import cultura
    from cultura.eval.answer_match import matches

    items = get_benchmark("blend").read(FIXTURES / "blend").items
    folder = tmp_path / "blend"
    write_items(items, folder)  # a `cultura data get` folder
    done = cultura.evaluate(None, "bench", benchmark=str(folder), methods="base,prompted,home-continent,uniform-blend",
                            report=tmp_path / "r")
    assert len(done.inputs.items) == len(items) and not done.inputs.left_out
    assert left_out_line(done.inputs) == f"{len(items)} of {len(items)} items scored."
    by_id = {i.id: i for i in items}
    open_rows = [r for r in done.result.rows if by_id[r["item_id"]].kind == "short_answer"]
    answered = [r for r in open_rows if r["status"] == "ok"]
    assert {r["method"] for r in answered} == {"base", "prompted", "home-continent"}  # one chat each: a reply
    for r in answered:
        item = by_id[r["item_id"]]
        assert r["response"] and r["prediction"] == r["response"] and r.get("probs") is None and r["subset"] == "saq"
        assert r["correct"] == matches(r["response"], item.gold, item.language)
    mixed = [r for r in open_rows if r["method"] == "uniform-blend"]
    assert mixed and all(r["status"] == "not_applicable" and "mixes 5 chats" in r["note"] for r in mixed)
    scored_mc = [r for r in done.result.rows if by_id[r["item_id"]].kind == "multiple_choice" and r["status"] == "ok"]
    assert scored_mc and all(r["probs"] and r.get("response") is None for r in scored_mc)

    def other_answer(item):  # the baseline by hand: the other country's most-voted answer, same question and language
        votes = {}
        for o in items:
            same_question = o.group == item.group and o.language == item.language
            if o.kind == "short_answer" and same_question and o.country != item.country:
                for cluster in o.meta["votes"]:
                    votes[cluster["answers"][0]] = votes.get(cluster["answers"][0], 0) + cluster["count"]
        return max(votes, key=votes.get) if votes else None

    base = next(s for s in done.result.by_method if s["subset"] == "saq" and s["method"] == "base")
    mine = [r for r in answered if r["method"] == "base"]
    expected = []
    for r in mine:
        item = by_id[r["item_id"]]
        answer = other_answer(item)
        expected.append(float(answer is not None and matches(answer, item.gold, item.language)))
    assert base["items"] == len(mine) and base.get("random") is None and base["best_baseline"] == "most-common"
    assert base["most_common"] == pytest.approx(sum(expected) / len(expected))
    assert base["accuracy"] == pytest.approx(sum(r["correct"] for r in mine) / len(mine))
    assert base.get("questions") is None, "a short answer's group spans countries: no question-level score"
    report = (tmp_path / "r" / "report.md").read_text()
    assert "greedy reply" in report and "Nothing was left out." in report


def test_eval_bench_cdeval_orientation_is_asked_in_both_orders_as_each_culture(ray_session, tmp_path):
    import cultura
    from cultura.data.hofstede import country_scores
    from cultura.eval.metrics import pearson

    items = get_benchmark("cdeval").read(FIXTURES / "cdeval").items
    cultures = ["german", "chinese", "american"]
    done = cultura.evaluate(None, "bench", benchmark="cdeval", source=str(FIXTURES / "cdeval"), methods="base,prompted",
                            cultures=cultures, report=tmp_path / "r")
    rows = done.result.rows
    assert len(rows) == len(items) * len(cultures) * 2 * 2 and all(r["status"] == "ok" for r in rows)
    by_id = {i.id: i for i in items}
    for r in rows:  # each (item, culture, method) twice: the options in the published order, then reversed
        options = by_id[r["item_id"]].options
        assert r["options"] == list(reversed(options) if r["swapped"] else options) and r.get("correct") is None

    def lean(rows):  # P(first pole) per item, averaged over the two orders, then over the items
        per_item = {}
        for r in rows:
            per_item.setdefault(r["item_id"], []).append(r["probs"][1] if r["swapped"] else r["probs"][0])
        return sum(sum(v) / len(v) for v in per_item.values()) / len(per_item)

    summary = {(s["subset"], s["country"], s["method"]): s for s in done.result.summary}
    for dimension in {i.meta["dimension"] for i in items}:
        mine = [r for r in rows if by_id[r["item_id"]].meta["dimension"] == dimension]
        for method in ("base", "prompted"):
            cells = []
            for culture in ("german", "chinese", "united_states"):
                cell = summary[(dimension, culture, method)]
                answered = [r for r in mine if r["method"] == method and r["target"] == culture]
                assert cell["orientation"] == pytest.approx(lean(answered))
                assert cell["first_position"] == pytest.approx(sum(r["probs"][0] for r in answered) / len(answered))
                assert cell["hofstede"] == country_scores(answered[0]["country"])[dimension]
                cells.append(cell)
            overall = summary[(dimension, "all", method)]
            assert overall["targets"] == 3
            assert overall["r_hofstede"] == pearson([c["orientation"] for c in cells], [c["hofstede"] for c in cells])
        assert summary[(dimension, "all", "base")]["r_hofstede"] is None, "base leans alike for every culture"
    report = (tmp_path / "r" / "report.md").read_text()
    assert "## Orientation per Hofstede dimension" in report and "both option orders" in report
    assert "## Overall per subset and method" not in report, "no accuracy table without accuracy items"


def test_eval_bench_culturebank_agreement_is_compared_with_the_share_that_agreed(ray_session, tmp_path):
    import cultura
    from cultura.eval.metrics import jsd_similarity

    items = get_benchmark("culturebank").read(FIXTURES / "culturebank").items
    done = cultura.evaluate(None, "bench", benchmark="culturebank", source=str(FIXTURES / "culturebank"),
                            methods="base,prompted", report=tmp_path / "r")
    asked = {i.id for i, _ in done.inputs.items}
    by_id = {i.id: i for i in items}
    assert asked == {i.id for i in items if i.country}, "a culture no one can answer as is left out"
    assert "international students" not in {t.key for _, t in done.inputs.items}
    shares = {i: by_id[i].reference[0] for i in asked}
    overall = {s["method"]: s for s in done.result.by_method if s["measure"] == "agreement"}
    for method, cell in overall.items():
        rows = [r for r in done.result.rows if r["method"] == method]
        assert sorted(r["swapped"] for r in rows) == [False] * len(asked) + [True] * len(asked)
        agree = {}
        for r in rows:  # P(agree): option 1 in the published order, option 2 when swapped; the orders averaged
            agree.setdefault(r["item_id"], []).append(r["probs"][1] if r["swapped"] else r["probs"][0])
        agree = {i: sum(v) / 2 for i, v in agree.items()}
        similarity = [jsd_similarity([agree[i], 1 - agree[i]], [shares[i], 1 - shares[i]]) for i in sorted(asked)]
        others = {i: sum(shares[j] for j in asked if j != i) / (len(asked) - 1) for i in asked}
        global_mean = [jsd_similarity([others[i], 1 - others[i]], [shares[i], 1 - shares[i]]) for i in sorted(asked)]
        assert cell["items"] == len(asked) and cell["similarity"] == pytest.approx(sum(similarity) / len(asked))
        assert cell["global_mean"] == pytest.approx(sum(global_mean) / len(asked))
        assert cell["p_agree"] == pytest.approx(sum(agree.values()) / len(asked))
        assert cell["versus_baseline"] == "cannot tell", "two items carry no verdict"
    report = (tmp_path / "r" / "report.md").read_text()
    assert "## Agreement with the descriptors" in report and "## Overall per subset and method" not in report


@pytest.mark.parametrize(("target", "message"), [
    ("culturalbenchh", "unknown benchmark 'culturalbenchh'"),
    ("EMPTY", "items.parquet: file not found"),
])
def test_eval_bench_bad_name_or_folder_is_a_clear_error(target, message, tmp_path):
    if target == "EMPTY":
        target = str(tmp_path)
    result = subprocess.run([str(Path(sys.executable).with_name("cultura")), "eval", "bench", target],
                            capture_output=True, text=True, timeout=120, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr, result.stderr


def _w1_by_cdf(p, q):
    """W1 on a scale of unit steps: the sum of |CDF differences| between adjacent points (exact there)."""
    total, cdf_p, cdf_q = 0.0, 0.0, 0.0
    for a, b in zip(p[:-1], q[:-1]):
        cdf_p, cdf_q = cdf_p + a, cdf_q + b
        total += abs(cdf_p - cdf_q)
    return total


def test_eval_bench_worldvaluesbench_is_scored_by_the_distance_to_the_participants_answers(ray_session, tmp_path):
    """The fixture's 19 participants' answers to 3 questions (1-4, 1-2 and 1-10 scales), base and prompted: per
    question the mean distribution against the answers' histogram, by W1 over the scale's span, recomputed here
    from the rows; no accuracy for a scale item; the baselines and lift; the report's section."""
    import pyarrow.parquet as pq

    from cultura.cli import cli

    items = {i.id: i for i in get_benchmark("worldvaluesbench").read(FIXTURES / "worldvaluesbench").items}
    out = tmp_path / "wvb"
    result = CliRunner().invoke(cli, ["eval", "bench", "worldvaluesbench", "--from", str(FIXTURES / "worldvaluesbench"),
                                      "--methods", "base,prompted", "--report", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "19 of 19 items scored." in result.output and "other_continents" in result.output
    rows = pq.read_table(out / "results.parquet").to_pylist()
    assert len(rows) == 19 * 2 and all(r["status"] == "ok" for r in rows)
    for r in rows:
        assert r["correct"] is None and r["prediction"] == r["options"][r["top_option"] - 1]
    base = {r["item_id"]: r["probs"] for r in rows if r["method"] == "base"}
    prompted = {r["item_id"]: r["probs"] for r in rows if r["method"] == "prompted"}
    for question in ("Q1", "Q57", "Q48"):  # base hears the question alone: one answer for everyone
        asked = [base[i] for i in base if items[i].group == question]
        assert all(p == pytest.approx(asked[0]) for p in asked)
    assert any(prompted[i] != pytest.approx(base[i], abs=1e-6) for i in base), "the demographics reached the model"
    summary = pq.read_table(out / "summary.parquet").to_pylist()
    assert {s["measure"] for s in summary} == {"distance"}, "a scale item has no accuracy"
    cells = {(s["country"], s["method"]): s for s in summary}
    assert set(cells) == {(c, m) for c in ("all", "Africa", "Asia", "Europe") for m in ("base", "prompted")}
    for (country, method), s in cells.items():
        mine = [r for r in rows if r["method"] == method and country in ("all", r["target"])]
        distances = []
        for question in sorted({items[r["item_id"]].group for r in mine}):
            asked = [r for r in mine if items[r["item_id"]].group == question]
            options = asked[0]["options"]
            model = [sum(r["probs"][k] for r in asked) / len(asked) for k in range(len(options))]
            people = [sum(r["gold"] == o for r in asked) / len(asked) for o in options]
            distances.append(_w1_by_cdf(model, people) / (len(options) - 1))
        assert s["items"] == len(mine) and s["questions"] == len(distances) and s["few"]
        assert s["distance"] == pytest.approx(sum(distances) / len(distances))
        for name in ("distance", "uniform", "other_continents", "lift"):
            assert s[f"{name}_low"] <= s[name] <= s[f"{name}_high"], (name, s)
        best = min(("uniform", "other-continents"), key=lambda b: s[b.replace("-", "_")])
        assert s["best_baseline"] == best
        assert s["lift"] == pytest.approx(s[best.replace("-", "_")] - s["distance"])
        if s["questions"] < 3:
            assert s["versus_baseline"] == "cannot tell"
    assert cells[("Africa", "base")]["questions"] == 1 and cells[("all", "base")]["questions"] == 3
    report = (out / "report.md").read_text()
    assert "## Distance to the people's answers per question" in report and "divided by the scale's span" in report
    assert "| probe | all | prompted | 19 *few* | 3 *few* |" in report and "other-continents" in report
    assert "## Overall per subset and method" not in report and "Nothing was left out." in report
