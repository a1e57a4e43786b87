"""Experiments: the file is validated as the configuration is, stage keys change only downstream of a
changed setting, and a small CulturePark protocol runs end to end on the default model (generate ->
refine -> fine-tune -> opinions with the base model, the adapter, the other-culture control and the
baselines), then reruns from its finished stages without repeating any."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cultura.errors import ConfigError
from cultura.experiments.plan import plan_stages
from cultura.experiments.run import RUNNERS
from cultura.experiments.spec import load_experiment

PRESETS = Path(__file__).resolve().parents[1] / "experiments"
CULTURALBENCH = Path(__file__).parent / "data" / "benchmarks" / "culturalbench"
CULTURA = str(Path(sys.executable).with_name("cultura"))
TINY = {
    "name": "tiny", "cultures": ["german", "chinese"], "seeds": "bundled",
    "sampling": {"max_tokens": 16}, "generate": {"max_seeds": 3, "rounds": 1}, "refine": {"judge_check": 0},
    "finetune": {"max_steps": 2}, "variants": {"refine": ["generate"]}, "controls": ["other-culture"],
    "methods": ["base", "adapter"], "evaluations": {"opinions": {"limit": 6}},
}


@pytest.mark.parametrize(("change", "message"), [
    ({"generate": {"rouds": 1}}, "generate.rouds: unknown field"),
    ({"cultures": ["Germna"]}, "unknown culture 'Germna'"),
    ({"evaluations": {}}, "name at least one of opinions, hofstede, moderation, bench"),
    ({"evaluations": {"bench": [{"benchmark": "blend"}, {"benchmark": "blend"}]}}, "a benchmark is listed twice"),
    ({"evaluations": {"bench": [{"benchmark": "blend", "limt": 3}]}}, "evaluations.bench.0.limt"),
    ({"methods": ["base", "adaptr"]}, "adaptr"),
    ({"generate": {"split": "eval"}}, "generate.split: set by the experiment itself"),
    ({"cultures": ["german"]}, "the other-culture control needs two or more cultures"),
])
def test_a_bad_experiment_names_its_mistake(change, message):
    with pytest.raises(ConfigError, match=message):
        load_experiment({**TINY, **change})


def test_the_cli_reports_a_bad_file_without_a_traceback(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**TINY, "finetune": {"max_step": 2}}), encoding="utf-8")
    result = subprocess.run([CULTURA, "experiment", "plan", str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "finetune.max_step: unknown field" in result.stderr


@pytest.mark.parametrize("preset", sorted(PRESETS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_preset_is_valid_and_plans(preset):
    spec = load_experiment(preset)
    stages = plan_stages(spec, spec.config())
    assert stages and all(s.kind in RUNNERS for s in stages)
    assert any(s.kind == "eval" for s in stages)


def test_each_benchmark_is_a_table_of_its_own_with_the_same_variants():
    spec = load_experiment({**TINY, "evaluations": {"bench": [{"benchmark": "blend"}, {"benchmark": "normad"}]}})
    names = [s.name for s in plan_stages(spec, spec.config()) if s.kind == "eval"]
    assert names == [f"eval-bench-{b}-{part}" for b in ("blend", "normad")
                     for part in ("methods", "adapter-generate", "other-culture-generate")]


def test_a_changed_setting_changes_only_its_stage_and_those_downstream():
    spec = load_experiment({**TINY, "variants": {"refine": ["generate", "verify"]}})
    before = {s.name: s.key for s in plan_stages(spec, spec.config())}
    changed = load_experiment(spec, finetune={"max_steps": 3})
    after = {s.name: s.key for s in plan_stages(changed, changed.config())}
    moved = {name for name in before if before[name] != after[name]}
    widened = load_experiment(spec, variants={"refine": ["generate", "verify", "diversify"]})
    added = {s.name: s.key for s in plan_stages(widened, widened.config())}
    assert all(added[name] == key for name, key in before.items()), "an added variant keeps every other stage"
    assert set(added) - set(before) == {"refine-diversify", "finetune-diversify", "eval-opinions-adapter-diversify",
                                        "eval-opinions-other-culture-diversify"}
    assert moved == {"finetune-generate", "finetune-verify", "eval-opinions-adapter-generate",
                     "eval-opinions-adapter-verify", "eval-opinions-other-culture-generate",
                     "eval-opinions-other-culture-verify"}


def test_a_small_protocol_runs_end_to_end_and_resumes(ray_session, tmp_path):
    import pyarrow.parquet as pq

    from cultura.experiments.run import run_experiment

    out = tmp_path / "experiment"
    first = run_experiment(TINY, out)
    assert first.ran == 6
    rows = {r["row"]: r for r in first.table}
    assert {"base", "adapter (Generate)", "other-culture adapter (Generate)", "uniform"} <= set(rows)
    results = pq.read_table(out / "results.parquet")
    base_units = [r for r in results.to_pylist() if r["level"] == "unit" and r["row"] == "base"]
    assert base_units and all(0 <= r["value"] <= 1 and not math.isnan(r["value"]) for r in base_units)
    for name in ("adapter (Generate)", "other-culture adapter (Generate)"):
        row = rows[name]
        assert row["vs_base_units"] == len(base_units), "paired over every question and country both answered"
        assert row["vs_base_low"] <= row["vs_base"] <= row["vs_base_high"]
        assert row["vs_base_reads"] in ("better", "worse", "cannot tell")
    own = rows["adapter (Generate)"]
    assert own["vs_control_units"] == len(base_units)
    assert own["vs_control_low"] <= own["vs_control"] <= own["vs_control_high"]
    for row in rows.values():
        assert row["similarity_low"] <= row["similarity"] <= row["similarity_high"]
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "| other-culture adapter (Generate) |" in report and "barely tells cultures apart" in report
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "CulturePark arXiv:2405.15145v3" in card and "torch:" in card

    again = run_experiment(out / "experiment.yaml", out)
    assert again.ran == 0 and len(again.stages) == 6
    assert pq.read_table(out / "results.parquet").equals(results), "a resumed run reports exactly as the first"
    assert [r["similarity"] for r in again.table] == [r["similarity"] for r in first.table]

    more = run_experiment(TINY | {"methods": ["base", "prompted", "adapter"]}, out)
    assert [s.stage.name for s in more.stages if s.status == "ran"] == ["eval-opinions-methods"], \
        "a method added to the comparison reruns only the stage that answers it"
    assert "prompted" in {r["row"] for r in more.table}

    bench = {"benchmark": "culturalbench", "source": str(CULTURALBENCH)}
    benched = run_experiment(TINY | {"evaluations": {**TINY["evaluations"], "bench": [bench]}}, out)
    assert [s.stage.name for s in benched.stages if s.status == "ran"] == [
        "eval-bench-culturalbench-methods", "eval-bench-culturalbench-adapter-generate",
        "eval-bench-culturalbench-other-culture-generate"], "a benchmark added runs only its own stages"
    table = {r["row"]: r for r in benched.table if r["evaluation"] == "bench-culturalbench"}
    assert {"base [easy]", "base [hard]", "adapter (Generate) [easy]"} <= set(table)
    for name in ("base [easy]", "base [hard]"):
        assert table[name]["accuracy_low"] <= table[name]["accuracy"] <= table[name]["accuracy_high"]
        assert table[name]["best_baseline"] in ("random", "most-common")
    assert table["base [hard]"]["question_accuracy"] is not None, "CulturalBench-Hard's own metric: whole questions"
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "## bench-culturalbench" in report and "| base [hard] |" in report and "## opinions" in report
