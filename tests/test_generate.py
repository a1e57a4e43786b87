"""CulturePark generation on the real default model: schema, calibration, exactly-once, resume, faults."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cultura.config import load_config
from cultura.data.seed_files import load_seeds
from cultura.errors import CulturaError
from cultura.pipelines.generate.run import generate_dialogues, plan_dialogues, read_dialogues
from cultura.pipelines.generate.schema import dialogue_schema
from cultura.pipelines.generate.scripts import conversation_for, plan_turns

CULTURA = str(Path(sys.executable).with_name("cultura"))
SEEDS = [
    {"id": "t-family", "source": "wvs", "topic": "family", "kind": "question",
     "text": "How important is family in your life?", "options": ["Very important", "Not important"],
     "attitudes": {"Germany": "Very important", "China": "Very important"}},
    {"id": "t-religion", "source": "pew", "topic": "religion", "kind": "statement",
     "text": "Religion plays an important role in daily life.", "options": ["Agree", "Disagree"],
     "attitudes": {"Germany": "Disagree", "China": "Disagree"}},
]
FIXTURE = Path(__file__).parent / "data" / "globalopinionqa_sample.csv"  # GlobalOpinionQA format
COUNTRY_RUN = {"generate.cultures": ["Germany", "japan"], "generate.max_seeds": 1, "generate.rounds": 1,
               "sampling.max_tokens": 8}
TINY = {"generate.cultures": ["german", "chinese"], "generate.rounds": 2, "generate.batch_size": 2,
        "generate.rows_per_file": 1, "sampling.max_tokens": 16, "sampling.temperature": 0.0}


@pytest.fixture(scope="module")
def seed_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("seeds") / "seeds.jsonl"
    path.write_text("".join(json.dumps(s) + "\n" for s in SEEDS), encoding="utf-8")
    return path


def tiny_config(seed_file: Path, **extra):
    return load_config(None, {**TINY, "generate.seeds": str(seed_file), **extra})


@pytest.fixture(scope="module")
def pool(ray_session, seed_file):
    """One shared agent pool for every in-process run: the agents of all the plans below."""
    from cultura.actors.agents import start_agents

    personas = {}
    for extra in ({}, {"generate.mode": "in"}, {"generate.mode": "multi"}):
        config = tiny_config(seed_file, **extra)
        plan = plan_dialogues(config.generate, load_seeds(seed_file), config.engine.model, config.engine.kind)
        personas.update(plan.personas)
    config = tiny_config(FIXTURE, **COUNTRY_RUN)
    personas.update(plan_dialogues(config.generate, load_seeds(FIXTURE), "m", "e").personas)
    agent_pool = start_agents(list(personas.values()), load_config(None))
    yield agent_pool
    agent_pool.stop()


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([CULTURA, "generate", *args], capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, HF_HUB_OFFLINE="1"))


# ----- scripts (no model) ---------------------------------------------------------------------------

def test_self_guidance_cycles_and_addresses_the_other_person():
    plan = plan_turns("self-guidance", 8, ["Lily", "Jonas"], "Q?")
    assert len(plan) == 16 and [t.speaker for t in plan[:4]] == [0, 1, 0, 1]
    assert "Q?" in plan[0].guidance and "Q?" not in plan[2].guidance
    introduce = [t for t in plan if t.speaker == 1 and "Introduce" in t.guidance]
    assert introduce and all("Introduce to Lily" in t.guidance for t in introduce)  # not to himself
    assert plan[12].guidance == plan[2].guidance  # round 7 cycles back to round 2
    free = plan_turns("free", 3, ["Lily", "Jonas", "Wei"], "Q?")
    assert len(free) == 9 and free[0].guidance and all(t.guidance is None for t in free[3:])
    with pytest.raises(CulturaError):
        plan_turns("self-guidance", 0, ["Lily", "Jonas"], "Q?")


def test_conversation_is_seen_from_each_speaker():
    turns = [{"speaker": "Lily", "text": "hi", "guidance": "Open with Q?"},
             {"speaker": "Jonas", "text": "hallo", "guidance": "Answer Lily."},
             {"speaker": "Wei", "text": "ni hao", "guidance": "Answer Lily."}]
    lily = conversation_for("Lily", turns, "Say more.", named=True)
    assert lily == [{"role": "user", "content": "Open with Q?"}, {"role": "assistant", "content": "hi"},
                    {"role": "user", "content": "Jonas: hallo\n\nWei: ni hao\n\nSay more."}]
    jonas = conversation_for("Jonas", turns, None, named=True)
    assert [m["role"] for m in jonas] == ["user", "assistant", "user"]
    assert jonas[0]["content"] == "Lily: hi" and jonas[2]["content"] == "Wei: ni hao"
    assert conversation_for("Wei", turns[:2], "Answer.")[-1]["content"] == "hi\n\nhallo\n\nAnswer."


# ----- planning (no model) --------------------------------------------------------------------------

def test_plan_modes_ids_and_calibration(seed_file):
    seeds = load_seeds(seed_file)
    cross = plan_dialogues(tiny_config(seed_file, **{"generate.per_seed": 2}).generate, seeds, "m", "e")
    assert len(cross.rows) == 2 * 2 * 2
    ids = [r["dialogue_id"] for r in cross.rows]
    assert len(set(ids)) == len(ids)
    again = plan_dialogues(tiny_config(seed_file, **{"generate.per_seed": 2}).generate, seeds, "m", "e")
    assert ids == [r["dialogue_id"] for r in again.rows]
    for row in cross.rows:
        contact, delegate = row["speakers"]
        assert contact["role"] == "main_contact" and delegate["role"] == "delegate"
        assert delegate["culture"] == row["culture"]
        seed = next(s for s in seeds if s.id == row["seed_id"])
        assert seed.attitude_text(row["culture"]) in delegate["system_prompt"]
    names = {(r["culture"], r["variation"]): r["speakers"][1]["name"] for r in cross.rows}
    assert names[("german", 0)] != names[("german", 1)]

    inside = plan_dialogues(tiny_config(seed_file, **{"generate.mode": "in"}).generate, seeds, "m", "e")
    for row in inside.rows:
        a, b = row["speakers"]
        assert a["role"] == b["role"] == "delegate" and a["culture"] == b["culture"] == row["culture"]
        assert a["name"] != b["name"]
    multi = plan_dialogues(tiny_config(seed_file, **{"generate.mode": "multi"}).generate, seeds, "m", "e")
    assert [r["culture"] for r in multi.rows] == ["german+chinese"] * 2
    assert [s["culture"] for s in multi.rows[0]["speakers"]] == [None, "german", "chinese"]

    plain = plan_dialogues(tiny_config(seed_file, **{"generate.calibration": False}).generate, seeds, "m", "e")
    assert not any("most people" in r["speakers"][1]["system_prompt"] for r in plain.rows)
    first = {r["dialogue_id"] for r in cross.rows if r["variation"] == 0}
    assert {r["dialogue_id"] for r in plain.rows} == first  # same ids: calibration is a run parameter


def test_the_driver_counts_the_plan_without_its_rows_and_the_dataset_plans_exactly_the_rows_left(seed_file,
                                                                                                 ray_session):
    from cultura.pipelines.generate.plan import count_plan, planned_dataset

    gen = tiny_config(seed_file, **{"generate.per_seed": 3}).generate
    seeds = load_seeds(seed_file)
    rows = plan_dialogues(gen, seeds, "m", "e").rows
    ids = [r["dialogue_id"] for r in rows]
    written = frozenset(ids[1:4])
    for limit in (None, 1, 5, 100):
        count = count_plan(gen, seeds, "m", "e", written, limit)
        left = [r for r in rows if r["dialogue_id"] not in written][:limit]
        assert (count.planned, count.written, count.todo) == (len(rows), 3, len(left))
        assert list(count.personas) == list(dict.fromkeys(s["key"] for r in left for s in r["speakers"]))
        for batch_size in (1, 4, 64):  # blocks of one seed, of several, of every seed
            planned = planned_dataset(gen, seeds, "m", "e", written, count, batch_size).take_all()
            # blocks finish in any order: the same rows, each once
            assert sorted(r["dialogue_id"] for r in planned) == sorted(r["dialogue_id"] for r in left), (limit,
                                                                                                       batch_size)
    by_id = {r["dialogue_id"]: r for r in planned}
    assert all(by_id[r["dialogue_id"]]["speakers"] == r["speakers"] for r in left)


def test_a_country_and_its_culture_both_find_the_country_rows():
    seeds = load_seeds(FIXTURE)
    gen = load_config(None, {"generate.cultures": ["Germany", "german", "Mexico", "spanish"]}).generate
    rows = {(r["seed_id"], r["culture"]): r for r in plan_dialogues(gen, seeds, "m", "e").rows}
    for seed in seeds:
        for culture in ("germany", "german"):  # `--cultures Germany` and `--cultures german`
            row = rows[(seed.id, culture)]
            assert row["attitude"] == seed.attitudes["Germany"] and row["attitude_country"] == "Germany"
        assert rows[(seed.id, "spanish")]["attitude_country"] == "Spain"  # the culture's primary country
        if "Mexico" in seed.attitudes:  # Mexico keeps its own answers, not Spain's
            assert rows[(seed.id, "mexico")]["attitude"] == seed.attitudes["Mexico"]
            assert rows[(seed.id, "mexico")]["attitude_country"] == "Mexico"
    pooled = load_config(None, {"generate.cultures": ["spanish"], "generate.attitude": "pooled"}).generate
    row = plan_dialogues(pooled, seeds[:1], "m", "e").rows[0]
    assert row["attitude_country"] == "pooled: Spain, Mexico" and "Spain and Mexico" in row["speakers"][1]["system_prompt"]
    multi = load_config(None, {"generate.cultures": ["german", "Japan"], "generate.mode": "multi"}).generate
    assert plan_dialogues(multi, seeds[:1], "m", "e").rows[0]["attitude_country"] == "german: Germany; japan: Japan"


def test_generation_uses_the_train_split_by_default(seed_file):
    from cultura.data.seeds import seed_split

    config = load_config(None, {"generate.seeds": str(FIXTURE), "generate.cultures": ["Germany"]})
    assert config.generate.split == "train"
    planned = {r["seed_id"] for r in plan_dialogues(config.generate, load_seeds(FIXTURE, split="train"), "m", "e").rows}
    assert planned and all(seed_split(i) == "train" for i in planned)


# ----- real runs on the default model ---------------------------------------------------------------

def test_country_and_culture_key_both_generate(pool, tmp_path, ray_session):
    """`generate --seeds FIXTURE --cultures Germany,japan` writes dialogues for both, from each one's data."""
    config = tiny_config(FIXTURE, **COUNTRY_RUN)
    summary = generate_dialogues(config, tmp_path / "run", agents=pool)
    rows = read_dialogues(tmp_path / "run").to_pylist()
    assert summary.dialogues == 2 and not summary.failures and summary.skipped_no_attitude == 0
    seed = {s.id: s for s in load_seeds(FIXTURE)}[rows[0]["seed_id"]]
    assert {(r["culture"], r["country"], r["attitude_country"]) for r in rows} == {
        ("germany", "Germany", "Germany"), ("japan", "Japan", "Japan")}
    for row in rows:
        assert row["attitude"] == seed.attitudes[row["country"]]
        assert f'most people in {row["country"]} answered "{row["attitude"]}"' in row["speakers"][1]["system_prompt"]
        assert row["turns"][-1]["completion_tokens"] > 0



def delegate_turns(row):
    speakers = {s["name"]: s for s in row["speakers"]}
    return [(t, speakers[t["speaker"]]) for t in row["turns"] if t["role"] == "delegate"]


def test_run_writes_each_dialogue_once_from_calibrated_delegates(pool, seed_file, tmp_path, ray_session):
    from cultura.engines.base import ChatRequest

    config = tiny_config(seed_file)
    summary = generate_dialogues(config, tmp_path / "run", agents=pool)
    table = read_dialogues(tmp_path / "run")
    assert table.schema == dialogue_schema()
    plan = plan_dialogues(config.generate, load_seeds(seed_file), "default", "transformers")
    assert sorted(table.column("dialogue_id").to_pylist()) == sorted(r["dialogue_id"] for r in plan.rows)
    assert summary.dialogues == 4 and summary.turns == 16 and not summary.failures
    assert len(summary.files) == 4  # one dialogue per part here
    assert summary.completion_tokens == sum(table.column("completion_tokens").to_pylist()) > 0
    seeds = {s.id: s for s in load_seeds(seed_file)}
    for row in table.to_pylist():
        assert [t["role"] for t in row["turns"]] == ["main_contact", "delegate"] * 2
        turns = delegate_turns(row)
        assert len(turns) == 2
        for turn, speaker in turns:
            assert speaker["key"].startswith(f"delegate:{row['culture']}:") and turn["culture"] == row["culture"]
            assert seeds[row["seed_id"]].attitude_text(row["culture"]) in speaker["system_prompt"]
            assert turn["completion_tokens"] > 0 and turn["prompt_tokens"] > 0
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["params"]["rounds"] == 2

    # The recorded system prompt is the one the text came from: replay a delegate turn greedily.
    row = table.to_pylist()[0]
    index = next(i for i, t in enumerate(row["turns"]) if t["role"] == "delegate")
    turn, speaker = row["turns"][index], {s["name"]: s for s in row["speakers"]}[row["turns"][index]["speaker"]]
    messages = [{"role": "system", "content": speaker["system_prompt"]},
                *conversation_for(turn["speaker"], row["turns"][:index], turn["guidance"])]
    request = ChatRequest.of(messages, max_tokens=16, temperature=0.0,
                             repetition_penalty=config.sampling.repetition_penalty)
    [again] = ray_session.get(pool.engine.generate.remote([request]))
    assert again.text == turn["text"] and again.prompt_tokens == turn["prompt_tokens"]


def test_limit_then_resume_with_an_agent_killed(pool, seed_file, tmp_path, ray_session):
    config = tiny_config(seed_file, **{"generate.workers": 2, "generate.batch_size": 1})
    out = tmp_path / "run"
    first = generate_dialogues(config, out, limit=2, agents=pool)
    assert first.dialogues == 2 and not first.complete
    assert json.loads((out / "manifest.json").read_text())["status"] == "partial"
    with pytest.raises(CulturaError, match="--resume"):
        generate_dialogues(config, out, agents=pool)

    killed = []

    def kill_a_delegate(path):
        if not killed:  # the other dialogue is in flight on the second worker now
            victim = "delegate:german:0"
            ray_session.kill(pool[victim], no_restart=False)
            killed.append(victim)

    second = generate_dialogues(config, out, resume=True, agents=pool, on_part=kill_a_delegate)
    assert killed and second.already_written == 2 and second.dialogues == 2 and not second.failures
    table = read_dialogues(out)
    ids = table.column("dialogue_id").to_pylist()
    assert len(ids) == len(set(ids)) == 4
    assert all(len(t) == 4 for t in table.column("turns").to_pylist())
    third = generate_dialogues(config, out, resume=True, agents=pool)  # nothing left: no work, no dupes
    assert third.dialogues == 0 and third.already_written == 4 and read_dialogues(out).num_rows == 4


def test_metrics_reach_rays_prometheus_export(pool, ray_session):
    from cultura.metrics import scrape_local, total

    deadline = time.monotonic() + 40  # Ray exports every few seconds; the runs above recorded these
    while True:
        samples = scrape_local()
        completed = total(samples, "dialogues_completed", culture="german", mode="cross")
        tokens = total(samples, "generated_tokens", agent="delegate:german:0")
        turns = total(samples, "turns", agent="contact:lily", role="main_contact")
        if (completed >= 2 and tokens > 0 and turns > 0) or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert completed >= 2 and tokens > 0 and turns > 0, sorted({n for n, _, _ in samples})
    assert total(samples, "agent_call_seconds_count", agent="delegate:german:0") > 0


@pytest.mark.parametrize("mode", ["in", "multi"])
def test_in_and_multi_modes_with_the_free_script(pool, seed_file, tmp_path, mode):
    config = tiny_config(seed_file, **{"generate.mode": mode, "generate.script": "free", "generate.max_seeds": 1,
                                       "generate.batch_size": 4, "sampling.max_tokens": 8})
    summary = generate_dialogues(config, tmp_path / mode, agents=pool)
    table = read_dialogues(tmp_path / mode)
    assert not summary.failures and table.num_rows == (2 if mode == "in" else 1)
    for row in table.to_pylist():
        names = [s["name"] for s in row["speakers"]]
        assert [t["speaker"] for t in row["turns"]] == names * 2
        assert row["turns"][0]["guidance"] and all(t["guidance"] is None for t in row["turns"][len(names):])


# ----- the CLI: a crashed driver, then --resume; bad input ------------------------------------------

def test_cli_resume_after_the_driver_is_killed(seed_file, tmp_path):
    out = tmp_path / "run"
    args = ["--seeds", str(seed_file), "--cultures", "german,chinese", "--max-seeds", "1", "--rounds", "1",
            "--max-tokens", "8", "--temperature", "0", "--format", "jsonl", "--rows-per-file", "1",
            "--batch-size", "1", "--workers", "1", "--out", str(out)]
    log = tmp_path / "first.log"
    with open(log, "w") as sink:
        proc = subprocess.Popen([CULTURA, "generate", *args], stdout=sink, stderr=subprocess.STDOUT,
                                env=dict(os.environ, HF_HUB_OFFLINE="1"), start_new_session=True)
        deadline = time.monotonic() + 240
        while not list((out / "dialogues").glob("part-*.jsonl")) and proc.poll() is None:
            assert time.monotonic() < deadline, "no part file appeared"
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and the local Ray it started
        proc.wait()
    written = read_dialogues(out).num_rows
    assert written >= 1, log.read_text()[-3000:]
    result = cli(*args, "--resume")
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert f"{2 - written} written now, {written} before, 2 planned" in result.stdout
    assert "failures          0" in result.stdout and "tokens/s" in result.stdout
    for chatter in ("Started a local Ray", "core_worker.cc", "(raylet)", "INFO"):  # Ray's, kept in its logs
        assert chatter not in result.stdout + result.stderr, result.stdout + result.stderr
    table = read_dialogues(out)
    assert table.num_rows == 2 and len(set(table.column("dialogue_id").to_pylist())) == 2
    assert not [p for p in (out / "dialogues").iterdir() if p.name.startswith(".")]  # no temporaries left


def test_cli_bad_input(seed_file, tmp_path):
    bad_seeds = tmp_path / "bad.jsonl"
    broken = dict(SEEDS[1], options="Agree")
    bad_seeds.write_text(json.dumps(SEEDS[0]) + "\n" + json.dumps(broken) + "\n", encoding="utf-8")
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("not a run")
    earlier = tmp_path / "earlier"
    (earlier / "dialogues").mkdir(parents=True)
    (earlier / "manifest.json").write_text(json.dumps({"stage": "generate", "params": {"rounds": 3}}))
    base = ["--seeds", str(seed_file), "--cultures", "german"]
    cases = [
        (["--cultures", "german,narnia", "--out", str(tmp_path / "a")], ["unknown culture 'narnia'", "did you mean"]),
        (["--seeds", str(bad_seeds), "--out", str(tmp_path / "b")], ["row 2", "'options'"]),
        ([*base, "--rounds", "0", "--out", str(tmp_path / "c")], ["generate.rounds", "greater than or equal to 1"]),
        ([*base, "--rounds", "-2", "--out", str(tmp_path / "d")], ["generate.rounds"]),
        ([*base, "--out", str(other)], ["not empty", "--overwrite"]),
        ([*base, "--out", str(earlier)], ["already holds", "--resume"]),
        ([*base, "--out", str(earlier), "--resume"], ["other parameters", "rounds: 3 there, 4 now"]),
        ([*base, "--mode", "multi", "--out", str(tmp_path / "e")], ["at least two cultures"]),
    ]
    for args, messages in cases:
        result = cli(*args, timeout=60)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr, result.stderr
        for message in messages:
            assert message in result.stderr, (args, message, result.stderr)
    assert not (tmp_path / "a").exists() and (other / "notes.txt").exists()
