"""`cultura eval hofstede|opinions|moderation` for real: the default model, a local Ray, Ray Data.

Runs are tiny (two cultures or one, a few items) and go through the click commands in this process,
so they share the session's Ray. Each writes a complete report folder with valid PNGs.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cultura.eval.metrics import jensen_shannon_distance

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FIXTURE = Path(__file__).parent / "data" / "globalopinionqa_sample.csv"
TABLE_FILES = ("report.md", "results.parquet", "results.csv", "summary.parquet", "summary.csv", "table.png")


def run_eval(*args: str):
    from cultura.cli import cli

    result = CliRunner().invoke(cli, ["eval", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def check_report(folder: Path, pngs: tuple[str, ...]) -> list[dict]:
    """Every report file is there, PNGs are valid images, results.parquet has the declared schema."""
    import pyarrow.parquet as pq
    from PIL import Image

    from cultura.eval.report import result_schema

    for name in TABLE_FILES + pngs:
        assert (folder / name).is_file(), f"{name} missing from {sorted(p.name for p in folder.iterdir())}"
    for name in pngs + ("table.png",):
        data = (folder / name).read_bytes()
        assert data.startswith(PNG_SIGNATURE), name
        with Image.open(folder / name) as image:
            image.verify()
        with Image.open(folder / name) as image:
            assert image.format == "PNG" and image.size[0] > 200 and image.size[1] > 100
    report = (folder / "report.md").read_text()
    for name in pngs:
        assert f"({name})" in report, f"report.md does not show {name}"
    table = pq.read_table(folder / "results.parquet")
    assert table.schema.equals(result_schema())
    assert not list(folder.glob(".*.tmp"))
    return table.to_pylist()


@pytest.fixture(scope="module")
def adapter_registry(tmp_path_factory, default_model_path):
    """A registry folder with one culture adapter (german): a small LoRA with random non-zero weights."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from cultura.registry import AdapterEntry, register_adapter

    root = tmp_path_factory.mktemp("registry")
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(str(default_model_path), dtype=torch.float32)
    lora = get_peft_model(model, LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                                            init_lora_weights=False))
    lora.save_pretrained(str(root / "german"))
    register_adapter(root, AdapterEntry(
        name="german", kind="culture", target="german", base_model="default",
        base_model_path=str(default_model_path), data_path="(random weights for a test)", data_sha256="-",
        preset="test", train_loss=None, eval_loss_before=0.0, eval_loss=0.0, train_rows=0, eval_rows=0, steps=0,
        created="2026-01-01T00:00:00+00:00", path=str(root / "german")))
    return root


def test_eval_hofstede_writes_a_report(ray_session, tmp_path):
    out = tmp_path / "h1"
    result = run_eval("hofstede", "--cultures", "german,korean", "--methods", "base,adapter", "--report", str(out))
    rows = check_report(out, ("radar_german.png", "radar_korean.png", "distance_by_method.png"))
    assert len(rows) == 24 * 2 * 2
    ok = [r for r in rows if r["status"] == "ok"]
    assert len(ok) == 24 * 2 and {r["method"] for r in ok} == {"base"}
    assert all(1.0 <= r["expected"] <= 5.0 and sum(r["probs"]) == pytest.approx(1.0) for r in ok)
    # without an adapter registry the adapter method is reported as not applicable, not silently skipped
    skipped = [r for r in rows if r["method"] == "adapter"]
    assert {r["status"] for r in skipped} == {"not_applicable"} and "no adapter for german" in skipped[0]["note"]
    report = (out / "report.md").read_text()
    assert "no adapter for korean" in report and "## Mean per method" in report
    assert "95% percentile bootstrap" in report and "interval over those targets" in report
    base_line = next(line for line in report.splitlines() if line.startswith("| base | 2 |"))
    assert re.search(r"\| \d+\.\d{3} \[\d+\.\d{3}, \d+\.\d{3}\] \|", base_line)
    # every mean is over the same targets; the adapter, with no distance anywhere, does not shrink them
    assert "over the same 2 targets (german, korean)" in report
    import pyarrow.parquet as pq

    from cultura.eval.hofstede import hofstede_distance
    from cultura.eval.vsm_eval import available_indices

    summary = {(s["target"], s["method"]): s for s in pq.read_table(out / "summary.parquet").to_pylist()}
    german = summary[("german", "base")]
    means = {int(r["item_id"]): r["expected"] for r in ok if r["target"] == "german"}
    assert german["items"] == 24
    assert german["distance"] == pytest.approx(hofstede_distance(available_indices(means), "Germany"))
    # the base model answers the same for every culture; only the reference scores differ
    assert summary[("korean", "base")]["PDI"] == pytest.approx(german["PDI"])
    assert summary[("korean", "base")]["distance"] != pytest.approx(german["distance"])
    assert summary[("german", "adapter")]["distance"] is None
    assert "mean_distance" in result.output and "r_PDI" in result.output and "needs 3 or more targets" in result.output
    # the trivial baselines beside the methods: every index at 50, and the other countries' mean scores
    from cultura.data.hofstede import DIMENSIONS, countries, country_scores

    assert summary[("german", "midpoint")]["distance"] == pytest.approx(hofstede_distance(dict.fromkeys(DIMENSIONS, 50.0),
                                                                                           "Germany"))
    others = [country_scores(c) for c in countries() if c != "Germany"]
    world = {d: sum(o[d] for o in others if o[d] is not None) / sum(o[d] is not None for o in others)
             for d in DIMENSIONS}
    assert summary[("german", "world-mean")]["PDI"] == pytest.approx(world["PDI"])
    assert summary[("german", "world-mean")]["distance"] == pytest.approx(hofstede_distance(world, "Germany"))
    assert "| midpoint | 2 |" in report and "| world-mean | 2 |" in report and "`world-mean`:" in report
    best = min(("midpoint", "world-mean"), key=lambda b: sum(summary[(t, b)]["distance"] for t in ("german", "korean")))
    lift = sum(summary[(t, best)]["distance"] - summary[(t, "base")]["distance"] for t in ("german", "korean")) / 2
    shown = re.escape(f"| {best} | {lift:+.3f} [")
    assert re.search(rf"\| base \| 2 \| [\d.]+ \[[\d.]+, [\d.]+\] {shown}.*\| cannot tell \|", report), base_line
    # two targets give a bootstrap three distinct means: too few to tell a method from a baseline


def test_eval_opinions_with_adapter_and_palette(ray_session, tmp_path, adapter_registry):
    """`palette` runs Cultural Palette (gate -> drafts -> Meta Agent) and scores after its answer."""
    out = tmp_path / "o1"
    config = tmp_path / "short.yaml"
    config.write_text("palette: {max_tokens: 12}\n")
    result = run_eval("opinions", "--countries", "Germany,Japan", "--limit", "1", "--adapters", str(adapter_registry),
                      "--methods", "base,prompted,adapter,palette", "--config", str(config), "--report", str(out))
    rows = check_report(out, ("similarity_by_method.png", "alignment_pct_by_method.png", "gate_weights.png"))
    assert {r["country"] for r in rows} == {"Germany"}  # Japan has no bundled seed data
    assert {r["method"] for r in rows if r["status"] == "ok"} == {"base", "prompted", "adapter", "palette", "uniform",
                                                                 "global-majority", "global-mean"}
    assert {r["split"] for r in rows} == {"eval"}
    adapted = {r["item_id"]: r["probs"] for r in rows if r["method"] == "adapter"}
    prompted = {r["item_id"]: r["probs"] for r in rows if r["method"] == "prompted"}
    assert any(adapted[k] != pytest.approx(prompted[k], abs=1e-4) for k in adapted)  # the LoRA is applied
    [palette] = [r for r in rows if r["method"] == "palette"]
    gate = json.loads(palette["gate"])
    assert sum(gate.values()) == pytest.approx(1.0) and sum(1 for w in gate.values() if w > 0) == 3
    [component] = json.loads(palette["components"])
    assert component["label"] == "palette" and 0.0 < component["valid_mass"] <= 1.0
    report = (out / "report.md").read_text()
    assert "No data (not scored, left out of every mean): Japan" in report
    assert "no data (not scored): Japan" in result.output
    assert "smoke test" in report  # the bundled attitudes are mostly approximate
    import pyarrow.parquet as pq

    for s in pq.read_table(out / "summary.parquet").to_pylist():
        assert 0.0 <= s["similarity"] <= 1.0 and 0.0 <= s["alignment_pct"] <= 100.0
    # Cultural Palette's drafts and the scoring ran on the command's one engine actor, started once
    assert "engine actors: 1 started in" in result.output
    # the gate weights cover Japan too: the gate needs no answers
    gate_rows = [line for line in report.split("## Cultural MoE gate weights")[1].splitlines() if line.startswith("| ")]
    assert [line.split("|")[1].strip() for line in gate_rows[1:]] == ["Germany", "Japan"]


def _fixture_references() -> dict[tuple[str, str], list[float]]:
    """(question, canonical country) -> the fixture's own distribution (the country's best sample),
    read straight from the CSV, over its substantive options ("DK/Refused" left out, renormalised)."""
    import ast
    import csv

    from cultura.data.goqa import country_sample, substantive
    from cultura.data.hofstede import resolve_country

    best: dict[tuple[str, str], tuple[int, list[float]]] = {}
    with FIXTURE.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            raw = row["selections"]
            for name, shares in ast.literal_eval(raw[raw.index("{"):raw.rindex("}") + 1]).items():
                country, _, rank = country_sample(name)
                if country in ("Palest. ter.", "Northern Ireland"):
                    continue
                key = (row["question"], resolve_country(country))
                kept = [shares[i] for i in substantive(ast.literal_eval(row["options"]))]
                if key not in best or rank < best[key][0]:
                    best[key] = (rank, [x / sum(kept) for x in kept])
    return {key: shares for key, (_, shares) in best.items()}


@pytest.fixture(scope="module")
def overlapping_registry(tmp_path_factory, adapter_registry):
    """The german test adapter registered as trained on one eval seed of the fixture."""
    from dataclasses import replace

    from cultura.data.seed_files import load_seeds
    from cultura.registry import load_registry, register_adapter

    root = tmp_path_factory.mktemp("overlap")
    seen = load_seeds(FIXTURE, split="eval")[0].id
    register_adapter(root, replace(load_registry(adapter_registry)["german"], seed_ids=[seen, "goqa-unrelated"]))
    return root, seen


def test_eval_opinions_scores_each_country_on_its_own_data(ray_session, tmp_path, overlapping_registry):
    from cultura.cli import cli
    from cultura.errors import CulturaError

    registry, seen = overlapping_registry
    countries = "Spain,Mexico,S. Korea,Britain,Germany,India,Brazil"  # six of the fixture's, one absent
    args = ["eval", "opinions", "--questions", str(FIXTURE), "--countries", countries, "--methods", "base,adapter",
            "--adapters", str(registry)]
    refused = CliRunner().invoke(cli, [*args, "--report", str(tmp_path / "refused")])
    assert isinstance(refused.exception, CulturaError) and "trained on" in str(refused.exception)
    assert seen in str(refused.exception) and not (tmp_path / "refused").exists()

    out = tmp_path / "goqa"
    result = run_eval(*args[1:], "--allow-overlap", "--report", str(out))
    rows = check_report(out, ("similarity_by_method.png",))
    references = _fixture_references()
    scored = {r["country"] for r in rows}
    assert scored == {"Spain", "Mexico", "South Korea", "United Kingdom", "Germany", "India"}
    assert {r["split"] for r in rows} == {"eval"}
    for r in rows:  # each country against its own rows of the file, never a neighbour's
        assert r["reference"] == pytest.approx(references[(r["item_text"], r["country"])])
        assert r["reference_source"].startswith(f"{r['country']}: distribution; GlobalOpinionQA")
    base = [r for r in rows if r["method"] == "base"]
    assert base and all(r["status"] == "ok" and 0.0 < r["valid_mass"] <= 1.0 for r in base)
    assert all(r["similarity"] == pytest.approx(1 - jensen_shannon_distance(r["probs"], r["reference"])) for r in base)
    baselines = [r for r in rows if r["method"] in ("uniform", "global-majority", "global-mean")]
    assert len(baselines) == 3 * len(base) and all(r["valid_mass"] is None for r in baselines)
    adapted = [r for r in rows if r["method"] == "adapter" and r["status"] == "ok"]
    assert {r["country"] for r in adapted} == {"Germany"}  # the german adapter speaks for Germany only
    assert {r["item_id"] for r in adapted if r["overlap"]} == {seen}
    report = (out / "report.md").read_text()
    assert "No data (not scored, left out of every mean): Brazil" in report
    assert "Adapter `german` was trained on 1 of the scored seeds" in report
    assert "Seed data: " in report and "valid_mass" in report and "| global-mean |" in report
    # every mean carries its bootstrap interval, the report says how they were made and warns on few questions
    assert "95% percentile bootstrap (scipy.stats.bootstrap), 2000 resamples, seed 0" in report
    assert "Questions per country: Spain " in report and "**Fewer than 20 questions**" in report
    assert "## Valid mass per country and source" in report and "| all countries |" in report
    base_line = next(line for line in report.splitlines() if line.startswith("| base | 6 |"))
    assert re.search(r"\| \d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\] \|", base_line)  # similarity [low, high]
    assert re.search(r"\| [+-]\d\.\d{3} \[[+-]\d\.\d{3}, [+-]\d\.\d{3}\] \| (better|worse|cannot tell) \|", base_line)
    import pyarrow.parquet as pq

    summary = pq.read_table(out / "summary.parquet").to_pylist()
    means = {s["country"]: s for s in summary if s["method"] == "base"}
    assert set(means) == scored
    for entry in (s for s in summary if s["questions"]):
        assert entry["similarity_low"] <= entry["similarity"] + 1e-12 <= entry["similarity_high"] + 2e-12
        assert entry["few"] == (entry["questions"] < 20)
    for country, entry in means.items():
        assert entry["lift_low"] <= entry["lift"] + 1e-12 <= entry["lift_high"] + 2e-12
        excludes = entry["questions"] >= 3 and (entry["lift_low"] > 0 or entry["lift_high"] < 0)
        assert entry["versus_baseline"] == ("cannot tell" if not excludes else "better" if entry["lift"] > 0 else "worse")
        own = {s["method"]: s["similarity"] for s in summary if s["country"] == country}
        assert entry["best_baseline"] in ("uniform", "global-majority", "global-mean")
        assert entry["baseline_similarity"] == pytest.approx(max(own[b] for b in ("uniform", "global-majority",
                                                                                 "global-mean")))
        assert entry["lift"] == pytest.approx(entry["similarity"] - entry["baseline_similarity"])
    assert "no data (not scored): Brazil" in result.output and "best_baseline" in result.output
    from cultura.api import load_config
    from cultura.cards import read_card

    card, _ = read_card(out)  # what the numbers rest on: the held-out seeds scored, the file's licence
    assert card["evaluation"] == "opinions" and card["split"] == "eval" and card["seeds"] == str(FIXTURE)
    assert set(card["seed_ids"]) == {r["item_id"] for r in rows} and card["data_licence"] == "CC-BY-NC-SA-4.0"
    assert card["methods"] == ["base", "adapter"] and card["papers"] == ["CulturePark arXiv:2405.15145v3"]
    assert card["model"] == load_config().engine.model and card["dtype"] == load_config().engine.resolved_dtype() and "torch" in card["versions"]


def test_eval_opinions_scores_countries_without_hofstede_scores(ray_session, tmp_path):
    """Opinion methods need no Hofstede scores: Kyrgyzstan and the Palestinian territories are scored;
    the methods that read the scores (the gate, nearest-continent) skip them and say why."""
    fixture = Path(__file__).parent / "data" / "goqa_nonsubstantive.csv"
    out = tmp_path / "unscored"
    run_eval("opinions", "--questions", str(fixture), "--countries", "Germany,Kyrgyzstan,Palest. ter.",
             "--split", "all", "--limit", "2", "--methods", "base,home-continent,nearest-continent,gate-mixture",
             "--report", str(out))
    rows = check_report(out, ("similarity_by_method.png",))
    answered = {(r["country"], r["method"]) for r in rows if r["status"] == "ok"}
    for country in ("Germany", "Kyrgyzstan", "Palestinian territories"):
        assert {(country, "base"), (country, "home-continent"), (country, "uniform")} <= answered
    assert {("Germany", "nearest-continent"), ("Germany", "gate-mixture")} <= answered
    skipped = [r for r in rows if r["status"] == "not_applicable"]
    assert {(r["country"], r["method"]) for r in skipped} == {
        (c, m) for c in ("Kyrgyzstan", "Palestinian territories") for m in ("nearest-continent", "gate-mixture")}
    assert all("Hofstede publishes none for" in r["note"] for r in skipped)
    report = (out / "report.md").read_text()
    assert "Every country has data." in report and "Hofstede publishes none for Kyrgyzstan" in report
    # every mean of a method is over the countries it answered, next to the baseline over the same ones
    import pyarrow.parquet as pq

    means = {m["method"]: m for m in pq.read_table(out / "summary.parquet").to_pylist() if m["country"] == "Kyrgyzstan"}
    assert means["base"]["questions"] == 2 and means["gate-mixture"]["questions"] == 0


def test_eval_moderation_macro_f1(ray_session, tmp_path):
    """Four examples per task (two of each label): one of each goes to dev, where the threshold on
    P(yes) is chosen; macro-F1 and ROC AUC are over the test rows, next to the constant baselines."""
    from sklearn.metrics import f1_score, roc_auc_score

    out = tmp_path / "m1"
    run_eval("moderation", "--tasks", "bundled", "--cultures", "german", "--limit", "4",
             "--methods", "base,prompted", "--report", str(out))
    rows = check_report(out, ("macro_f1_by_method.png",))
    assert len(rows) == 3 * 4 * 2
    import pyarrow.parquet as pq

    baselines = pq.read_table(out / "baselines.parquet").to_pylist()
    for s in pq.read_table(out / "summary.parquet").to_pylist():
        mine = [r for r in rows if r["item_id"].startswith(s["task"] + ":") and r["method"] == s["method"]]
        assert sorted(r["split"] for r in mine) == ["dev", "dev", "test", "test"]
        test = [r for r in mine if r["split"] == "test"]
        labels = [s["task"], "not_" + s["task"]]
        assert {r["label"] for r in mine} == set(labels) and {r["prediction"] for r in mine} <= set(labels)
        for r in mine:  # one threshold on P(yes) = the probability of option 1 decides every row
            assert r["prediction"] == (labels[0] if r["probs"][0] >= s["threshold"] else labels[1])
        expected = f1_score([r["label"] for r in test], [r["prediction"] for r in test], labels=labels,
                            average="macro", zero_division=0)
        assert s["dev"] == 2 and s["examples"] == 2 and s["macro_f1"] == pytest.approx(expected)
        auc = roc_auc_score([r["label"] == labels[0] for r in test], [r["probs"][0] for r in test])
        assert s["roc_auc"] == pytest.approx(auc)
        constant = [b for b in baselines if b["task"] == s["task"]]
        assert len(constant) == 2 and s["baseline_macro_f1"] == max(b["macro_f1"] for b in constant) == 1 / 3
        # intervals over the test examples; the lift is paired with the constant label on the same examples
        assert s["macro_f1_low"] <= s["macro_f1"] + 1e-12 and s["macro_f1"] <= s["macro_f1_high"] + 1e-12
        assert s["lift"] == pytest.approx(s["macro_f1"] - s["baseline_macro_f1"])
        assert s["lift_low"] <= s["lift"] + 1e-12 and s["lift"] <= s["lift_high"] + 1e-12
        assert s["few"] and s["versus_baseline"] in ("better", "worse", "cannot tell")
    report = (out / "report.md").read_text()
    assert "Constant-label baselines" in report and "95% percentile bootstrap" in report
    assert "| 2 *few* |" in report and re.search(r"\| [+-]\d\.\d{3} \[[+-]\d\.\d{3}, [+-]\d\.\d{3}\] \|", report)


def test_eval_sample_mode_counts_every_answer(ray_session, tmp_path):
    out = tmp_path / "s1"
    run_eval("opinions", "--countries", "Germany", "--limit", "2", "--methods", "base", "--sample", "2",
             "--report", str(out))
    from cultura.data.seed_files import load_seeds

    rows = [r for r in check_report(out, ("similarity_by_method.png",)) if r["method"] == "base"]
    assert len(rows) == sum("Germany" in s.attitudes for s in load_seeds(split="eval")[:2]) > 0
    for r in rows:
        assert r["n_samples"] == 2
        assert r["status"] in ("ok", "unreadable")
        if r["status"] == "ok":
            assert sum(r["probs"]) == pytest.approx(1.0)
            # a distribution of sampled answers: multiples of 1 / (answers read)
            read = r["n_samples"] - r["n_unparsable"]
            assert all(abs(p * read - round(p * read)) < 1e-9 for p in r["probs"])
    assert "re-asked" in (out / "report.md").read_text()


def test_a_row_that_fails_fails_alone_and_the_rest_of_its_batch_is_answered(ray_session):
    """One batch holding a chat over the context window, a lone surrogate and a malformed plan: those
    rows fail with their reasons, the others are answered."""
    from cultura.config import load_config
    from cultura.choices import numbered_question
    from cultura.eval.methods import Component, Plan
    from cultura.eval.runner import EnginePool

    question = numbered_question("Is family important to you?", ["Yes", "No"])

    def row(row_id: int, text: str) -> dict:
        plan = Plan((Component("base", ({"role": "user", "content": text},)),)).to_json()
        return {"row_id": row_id, "plan": plan, "options": ["Yes", "No"]}

    rows = [row(0, question), row(1, "word " * 9000), row(2, "\ud800 " + question),
            {"row_id": 3, "plan": "[{not json", "options": ["Yes", "No"]}, row(4, "Really? " + question)]
    with EnginePool(load_config(None, {"engine_resources.num_cpus": 1})) as pool:
        answers = pool.answer(rows)
    assert [answers[i]["status"] for i in range(5)] == ["ok", "failed", "failed", "failed", "ok"]
    assert "context window" in answers[1]["error"] and "Unicode" in answers[2]["error"]
    assert answers[3]["error"].startswith("JSONDecodeError")
    assert all(answers[i]["probs"] is None for i in (1, 2, 3))
    for i in (0, 4):
        assert sum(answers[i]["probs"]) == pytest.approx(1.0) and 0.0 < answers[i]["valid_mass"] <= 1.0
    assert answers[0]["probs"] != pytest.approx(answers[4]["probs"], abs=1e-6)
    assert pool.rows == 5 and pool.startup_s > 0 and "1 started in" in pool.summary()


@pytest.mark.parametrize(("args", "message"), [
    (["eval", "hofstede", "--methods", "base,telepathy"], "unknown method 'telepathy'"),
    (["eval", "opinions", "--countries", "Atlantis"], "unknown country 'Atlantis'"),
    (["eval", "hofstede", "--cultures", "klingon"], "unknown culture 'klingon'"),
])
def test_eval_bad_names_are_clear_errors(args, message):
    result = subprocess.run([str(Path(sys.executable).with_name("cultura")), *args], capture_output=True, text=True,
                            timeout=120, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_eval_task_file_with_a_missing_label_names_the_row(tmp_path):
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "spam.jsonl").write_text('{"text": "hello", "label": "not_spam"}\n{"text": "BUY NOW"}\n')
    result = subprocess.run([str(Path(sys.executable).with_name("cultura")), "eval", "moderation", "--tasks",
                             str(tasks)], capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, HF_HUB_OFFLINE="1"))
    assert result.returncode == 2 and "spam.jsonl: row 2, field 'label': missing" in result.stderr
