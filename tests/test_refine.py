"""CulturePark refinement on real default-model output: parser, verification flow, stages, clusters, SFT files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from cultura.config import Resources, TransformersEngineConfig, load_config
from cultura.errors import DataError
from cultura.pipelines.refine.diversify import choose_k, cluster, group_k, l2_normalise
from cultura.pipelines.refine.opinions import parse_opinions
from cultura.pipelines.refine.run import extraction_units, refine
from cultura.pipelines.refine.input import read_generation, seed_attitudes
from cultura.pipelines.refine.verify import CONTRADICT, ENTAIL, LABELS, verify_opinions

CULTURA = str(Path(sys.executable).with_name("cultura"))
SEEDS = [
    {"id": "r-family", "source": "wvs", "topic": "family", "kind": "question",
     "text": "How important is family in your life?", "options": ["Very important", "Not important"],
     "attitudes": {"Germany": "Very important", "China": "Very important"}},
    {"id": "r-religion", "source": "wvs", "topic": "religion", "kind": "question",
     "text": "Is religion important in your life?", "options": ["Important", "Not important"],
     "attitudes": {"Germany": "Not important", "China": "Not important"}},
]
# small and greedy: the tests check the data flow, not the tiny model's judgement
TINY = {"refine.extract_max_tokens": 64, "refine.rewrite_max_tokens": 32, "refine.judge_check": 9,
        "refine.k": 2, "engine_resources": {"num_cpus": 1}}


# ----- input: generation output with real default-model turns -------------------------------------

def write_generation_run(folder: Path, engine, seed_file: Path) -> Path:
    """A generation run (manifest + one Parquet part in the generator's schema) whose delegate turns
    the default model writes now: two cross dialogues per seed (german, chinese) and one multi."""
    import ray

    from cultura.data.seed_files import load_seeds
    from cultura.engines import ChatRequest
    from cultura.pipelines.generate.run import CALIBRATION, delegate, dialogue_id
    from cultura.pipelines.generate.schema import to_table

    seeds = load_seeds(seed_file)
    planned = []  # (seed, culture, mode)
    for seed in seeds:
        planned += [(seed, "german", "cross"), (seed, "chinese", "cross")]
    planned += [(seeds[0], "german", "multi"), (seeds[0], "chinese", "multi")]
    requests, speakers = [], []
    for seed, culture, _ in planned:
        persona = delegate(culture, 0, "English", extra=CALIBRATION.format(attitude=seed.attitude_text(culture)))
        speakers.append(persona)
        requests.append(ChatRequest.of(persona.messages(f"Lily asks you: {seed.prompt_text()}"),
                                       max_tokens=48, temperature=0.0))
    completions = ray.get(engine.generate.remote(requests))

    def turn(speaker, role, culture, text, c=None):
        return {"speaker": speaker, "role": role, "culture": culture, "text": text,
                "prompt_tokens": c.prompt_tokens if c else 0, "completion_tokens": c.completion_tokens if c else 0,
                "guidance": None}

    def row(seed, culture, country, attitude, mode, turns):
        return {"dialogue_id": dialogue_id(seed.id, culture, mode, "free", 0), "seed_id": seed.id,
                "seed_source": seed.source, "seed_text": seed.text, "seed_kind": seed.kind,
                "options": list(seed.options), "culture": culture, "country": country, "attitude": attitude,
                "mode": mode, "script": "free", "calibration": True, "variation": 0, "rounds": 1, "speakers": [],
                "turns": turns, "model": "default", "adapter": None, "engine": "transformers",
                "prompt_tokens": sum(t["prompt_tokens"] for t in turns),
                "completion_tokens": sum(t["completion_tokens"] for t in turns), "seconds": 1.0,
                "created_at": datetime.now(timezone.utc)}

    rows, multi_turns = [], [turn("Lily", "main_contact", None, seeds[0].prompt_text())]
    for (seed, culture, mode), persona, c in zip(planned, speakers, completions):
        if mode == "cross":
            turns = [turn("Lily", "main_contact", None, seed.prompt_text()), turn(persona.name, "delegate", culture, c.text, c)]
            rows.append(row(seed, culture, persona.country, seed.attitude(culture), "cross", turns))
        else:
            multi_turns.append(turn(persona.name, "delegate", culture, c.text, c))
    rows.append(row(seeds[0], "german+chinese", None, None, "multi", multi_turns))
    (folder / "dialogues").mkdir(parents=True)
    import pyarrow.parquet as pq

    pq.write_table(to_table(rows), folder / "dialogues" / "part-00000.parquet")
    manifest = {"stage": "generate", "status": "complete",
                "params": {"seeds": str(seed_file), "sources": ["wvs"], "format": "parquet"}}
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def seed_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("seeds") / "seeds.jsonl"
    path.write_text("".join(json.dumps(s) + "\n" for s in SEEDS), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def engine(ray_session):
    """One shared engine actor (1 CPU, so embedding actors fit beside it) for every run below."""
    from cultura.actors.agents import stop_actors
    from cultura.actors.engine_actor import start_engine_actor

    handle = start_engine_actor(TransformersEngineConfig(), Resources(num_cpus=1))
    yield handle
    stop_actors([handle])


@pytest.fixture(scope="module")
def gen_run(tmp_path_factory, engine, seed_file) -> Path:
    return write_generation_run(tmp_path_factory.mktemp("gen") / "run", engine, seed_file)


def config(**extra):
    return load_config(None, {**TINY, **extra})


def cli(*args: str, timeout: float = 400) -> subprocess.CompletedProcess:
    return subprocess.run([CULTURA, "refine", *args], capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, HF_HUB_OFFLINE="1"))


# ----- parsers (no model) -----------------------------------------------------------------------

def test_parser_reads_lists_amid_chatter_and_drops_non_opinions():
    answer = ("Sure! Here are the opinions:\n\n"
              "1. People in Germany value family dinners on Sundays.\n"
              "2) **People in Germany think grandparents deserve regular visits.**\n"
              "3. Family.\n"
              "- The text does not contain any other opinion about families.\n"
              "4. People in Germany value family dinners on Sundays.\n"
              "I hope this helps!")
    opinions, rejected = parse_opinions(answer)
    assert opinions == ["People in Germany value family dinners on Sundays.",
                        "People in Germany think grandparents deserve regular visits."]
    assert sorted(r for _, r in rejected) == ["duplicate", "non-opinion", "short"]

    bullets = "* People in Korea respect teachers a great deal\n• \"People in Korea save money for their children.\"\n"
    assert parse_opinions(bullets)[0] == ["People in Korea respect teachers a great deal",
                                          "People in Korea save money for their children."]
    plain = "People in Spain enjoy long meals with relatives. People in Spain keep close ties with cousins.\n"
    assert parse_opinions(plain)[0] == ["People in Spain enjoy long meals with relatives.",
                                        "People in Spain keep close ties with cousins."]
    for empty in ("", "   \n\n", "None", "N/A", "Opinions:\n", "There are no opinions in this text.",
                  "I cannot extract any opinion from the text."):
        assert parse_opinions(empty)[0] == [], empty
    cut = "1. People in Turkey value hospitality towards guests.\n2. People in Turkey think that neighbours should"
    opinions, rejected = parse_opinions(cut, truncated=True)
    assert opinions == ["People in Turkey value hospitality towards guests."] and rejected[0][1] == "cut off"
    assert parse_opinions(cut, truncated=False)[0][1].startswith("People in Turkey think")
    assert parse_opinions("1. Opinion 1: People in Brazil value football above most sports.")[0] == [
        "People in Brazil value football above most sports."]


def scripted_score(pick):
    """A ``score`` function whose judge answers ``pick(chat)`` (a label) with all its mass on that
    label's number in whatever order the chat lists the labels."""
    from cultura.engines.base import OptionScores
    from cultura.pipelines.refine.verify import LABEL_OPTIONS

    def score(items):
        out = []
        for chat, numbers in items:
            text = chat[-1]["content"]
            listed = [label for n in numbers for label in LABELS if f"{n}. {LABEL_OPTIONS[label]}" in text]
            chosen = pick(chat)
            out.append(OptionScores(tuple(0.0 if label == chosen else -30.0 for label in listed), 0.8))
        return out

    return score


def test_labels_do_not_depend_on_the_order_they_are_listed_in():
    """A judge that always answers "1" favours no label: every label is listed first once."""
    from cultura.engines.base import OptionScores
    from cultura.pipelines.refine.verify import judge

    item = {"opinion": "I think family comes first.", "seed_text": "How important is family in your life?",
            "attitude": "Very important", "country": "Germany"}
    [first] = judge([item], lambda items: [OptionScores((0.0, -3.0, -3.0), 0.5) for _ in items])
    assert first.probs[0] == pytest.approx(first.probs[1]) == pytest.approx(first.probs[2]) == pytest.approx(1 / 3)
    [picked] = judge([item], scripted_score(lambda chat: CONTRADICT))
    assert picked.label == CONTRADICT and picked.prob(CONTRADICT) == pytest.approx(1.0)
    assert picked.valid_mass == pytest.approx(0.8)


def test_choose_k_and_cluster_representatives_on_fixed_vectors():
    import numpy as np

    assert choose_k(0) == 0 and choose_k(3) == 1 and choose_k(500) == 10 and choose_k(1000) == 20
    assert choose_k(3, minimum=2) == 2 and choose_k(1, minimum=2) == 1 and choose_k(700, minimum=2) == 14
    assert choose_k(5, 8) == 5 and choose_k(40, 3) == 3
    # the paper: per seed question min(10, n) up to 500 opinions per culture, then 15, then 20
    assert group_k(3, 40, "auto", "seed") == 3 and group_k(30, 500, "auto", "seed") == 10
    assert group_k(30, 700, "auto", "seed") == 15 and group_k(30, 1000, "auto", "seed") == 20
    assert group_k(30, 1000, 4, "seed") == 4 and group_k(120, 120, "auto", "culture", 50, 2) == 2
    vectors = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9], [0.05, 0.95]], dtype=np.float32)
    result = cluster(vectors, 2, "longest", lengths=[1, 50, 3, 2, 1])
    assert result.labels[0] == result.labels[1] != result.labels[2]
    assert set(result.representatives) == {1, 2}  # the longest of each cluster
    dup = cluster(np.ones((4, 2), dtype=np.float32), 3)  # fewer distinct points than k
    assert dup.k == 1 and len(dup.representatives) == 1
    unit = l2_normalise(np.array([[3, 4], [0, 0]]))
    assert np.allclose(unit, [[0.6, 0.8], [0, 0]])


# ----- bad input --------------------------------------------------------------------------------

def test_bad_input_is_a_clear_error(tmp_path, gen_run):
    import pyarrow as pa
    import pyarrow.parquet as pq

    with pytest.raises(DataError, match="not found"):
        read_generation(tmp_path / "nowhere")
    (tmp_path / "plain").mkdir()
    with pytest.raises(DataError, match="manifest.json is missing"):
        read_generation(tmp_path / "plain")
    other = tmp_path / "other"
    other.mkdir()
    (other / "manifest.json").write_text(json.dumps({"stage": "refine"}))
    with pytest.raises(DataError, match="stage 'refine'"):
        read_generation(other)
    (other / "manifest.json").write_text(json.dumps({"stage": "generate"}))
    with pytest.raises(DataError, match="no dialogues/part-"):
        read_generation(other)
    (other / "dialogues").mkdir()
    pq.write_table(pa.table({"dialogue_id": ["a"], "seed_id": ["s"]}), other / "dialogues" / "part-00000.parquet")
    with pytest.raises(DataError, match="missing column.*seed_source.*turns"):
        read_generation(other)
    (other / "dialogues" / "part-00000.parquet").unlink()
    (other / "dialogues" / "part-00000.jsonl").write_text(json.dumps({"dialogue_id": "a"}) + "\n")
    with pytest.raises(DataError, match="row 1: .*missing field.*seed_id"):
        read_generation(other)
    # the CLI prints the error without a traceback and exits 2; --out must not be --in
    result = cli("--in", str(tmp_path / "plain"), "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and "manifest.json is missing" in result.stderr and "Traceback" not in result.stderr
    result = cli("--in", str(gen_run), "--out", str(gen_run))
    assert result.returncode == 2 and "--out must differ" in result.stderr


# ----- the stages on real default-model output --------------------------------------------------

def test_units_follow_the_mode_and_find_multi_mode_attitudes(gen_run):
    rows, manifest = read_generation(gen_run)
    lookup = seed_attitudes(manifest)
    units = extraction_units(rows, lambda s, c: lookup.get((s, c)))
    multi = [u for u in units if u["mode"] == "multi"]
    assert sorted(u["culture"] for u in multi) == ["chinese", "german"]
    assert all(u["attitude"] == "Very important" and u["country"] in ("Germany", "China") for u in multi)
    cross = [u for u in units if u["mode"] == "cross"]
    assert len(cross) == 4
    by_dialogue = {r["dialogue_id"]: r for r in rows}
    for u in cross:  # only the delegate's words, never the main contact's
        [delegate_turn] = [t for t in by_dialogue[u["dialogue_id"]]["turns"] if t["role"] == "delegate"]
        assert u["text"] == " ".join(delegate_turn["text"].split())


def test_verify_rewrites_a_contradiction_and_verifies_the_rewrite(engine):
    """The judge says Contradict at the first verification and Entail after; the real engine writes
    the rewrite, and it is the rewrite that is judged again (the default model may well echo the
    original: the flow, not the model's skill, is under test)."""
    from cultura.pipelines.refine.llm_stage import EngineCaller

    caller = EngineCaller(engine_handle=engine)
    item = {"opinion": "Religion is very important in my everyday life.",
            "seed_text": "Is religion important in your life?", "attitude": "Not important", "country": "Germany"}
    judged = []

    def pick(chat):
        judged.append(chat[-1]["content"])
        return CONTRADICT if len(judged) <= 3 else ENTAIL  # three orders per verification

    [result] = verify_opinions([item], scripted_score(pick), caller.ask, rewrite_tokens=32, min_words=3)
    assert [s["step"] for s in result["audit"]] == ["verify", "rewrite", "reverify"], result
    assert result["label"] == CONTRADICT and result["rewrite"] and result["valid_mass"] == pytest.approx(0.8)
    reverify = result["audit"][2]
    assert reverify["input"] == result["rewrite"]
    assert all(result["rewrite"] in text for text in judged[3:]) and len(judged) == 6
    assert result["rewrite_label"] == reverify["label"] == ENTAIL and reverify["probs"] == pytest.approx([1, 0, 0])
    assert result["verified"] and result["decision"] == "kept-rewrite" and result["text"] == result["rewrite"]


@pytest.fixture(scope="module")
def runs(gen_run, engine, tmp_path_factory, ray_session):
    """Two stage settings: generate through the CLI, diversify in-process. The diversify run passes
    through verify, so its counts give the verify setting too (same greedy calls, same selection)."""
    root = tmp_path_factory.mktemp("refined")
    cfg_file = root / "config.yaml"
    cfg_file.write_text("engine_resources: {num_cpus: 1}\nrefine: {extract_max_tokens: 64, k: 2}\n")
    result = cli("--in", str(gen_run), "--out", str(root / "generate"), "--stages", "generate",
                 "--config", str(cfg_file))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "INFO" not in result.stdout + result.stderr, result.stderr[-3000:]  # Ray Data's notices: its log only
    out = {"generate": (root / "generate", json.loads((root / "generate" / "summary.json").read_text()), result.stdout)}
    summary = refine(config(**{"refine.stages": "diversify"}), gen_run, root / "diversify", engine=engine)
    out["diversify"] = (root / "diversify", summary.as_dict(), None)
    return out


def _table(path: Path):
    import pyarrow.parquet as pq

    return pq.read_table(path)


def test_counts_shrink_monotonically_across_the_stage_settings(runs):
    from cultura.pipelines.refine.schema import opinion_schema

    gen_dir, gen, stdout = runs["generate"]
    div_dir, div, _ = runs["diversify"]
    assert gen["totals"]["extracted"] > 0, "the default model's extraction yielded no opinion"
    assert "german" in stdout and "chinese" in stdout and "extracted" in stdout  # per-culture counts printed
    assert gen["totals"]["sft"] == gen["totals"]["extracted"]  # generate keeps every extracted opinion
    table = _table(div_dir / "opinions.parquet")
    assert table.schema.equals(opinion_schema(), check_metadata=False)
    rows = table.to_pylist()
    verified = sum(bool(r["verified"]) for r in rows)  # what the verify setting keeps
    assert gen["totals"]["sft"] >= verified >= div["totals"]["sft"]
    per_seed: dict = {}
    for r in rows:
        if r["verified"]:
            per_seed.setdefault(r["culture"], {}).setdefault(r["seed_id"], []).append(r)
    for culture, c in div["cultures"].items():
        assert c["extracted"] >= c["verified"] >= c["diversified"] == c["sft"], culture
        assert c["entail"] + c["contradict"] + c["irrelevant"] + c["no_attitude"] == c["extracted"]
        seeds = per_seed.get(culture, {})
        # k = 2 per seed question (fewer when a seed has fewer distinct opinions)
        assert c["clusters"] == sum(min(2, len({r["text"] for r in m})) for m in seeds.values())
        assert c["seeds_kept"] == c["seeds_verified"] == len(seeds)  # every verified seed keeps one
        if c["valid_mass"] is not None:
            assert 0 < c["valid_mass"] <= 1 and c["judgements"] >= c["extracted"] - c["no_attitude"]
    assert div["clustering"] == {"cluster_by": "seed", "representative": "longest"}
    judge = div["judge"]
    # two seeds x two cultures: 4 labelled items (of the 9 asked for), Entail, Contradict, Irrelevant, Entail
    assert judge["items"] == 4 and sum(judge["predicted"].values()) == 4 and judge["majority_accuracy"] == 0.5
    for row in rows:
        steps = [s["step"] for s in row["audit"]]
        assert steps[:1] == ["verify"] and row["decision"]
        assert row["verified"] == (row["decision"] in ("kept", "kept-rewrite"))
        assert row["selected"] == bool(row["representative"])
        if row["label"] == CONTRADICT and row["rewrite"]:
            assert steps == ["verify", "rewrite", "reverify"] and row["audit"][2]["input"] == row["rewrite"]
        if not row["verified"]:
            assert row["representative"] is None and row["cluster"] is None


def test_representatives_are_members_of_their_clusters(runs):
    """Real opinions, embedded by the Ray Data stage and clustered per culture and seed question in
    Ray tasks: each cluster lies within one seed question and has exactly one representative, a
    member, the longest (the paper's choice)."""
    rows = [r for r in _table(runs["diversify"][0] / "opinions.parquet").to_pylist() if r["verified"]]
    clusters: dict = {}
    for r in rows:
        clusters.setdefault((r["culture"], r["cluster"]), []).append(r)
    assert all(r["cluster"] is not None and 0 <= r["distance"] <= 2 for r in rows)
    for members in clusters.values():
        assert len({m["seed_id"] for m in members}) == 1
        [rep] = [m for m in members if m["representative"]]
        assert len(rep["text"]) == max(len(m["text"]) for m in members)


def test_sft_files_load_with_datasets_and_json(runs):
    import datasets

    from cultura.pipelines.finetune.data import load_culture_sets

    out = runs["generate"][0]
    files = sorted((out / "sft").glob("*.jsonl"))
    assert {f.stem for f in files} == {"chinese", "german"}
    for path in files:
        records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        loaded = datasets.load_dataset("json", data_files=str(path), split="train")
        assert len(loaded) == len(records) > 0
        assert set(loaded.column_names) >= {"messages", "culture", "seed_id", "dialogue_id"}
        display = {"chinese": "Chinese", "german": "German"}[path.stem]
        for record in records:
            system, user, assistant = record["messages"]
            assert [m["role"] for m in record["messages"]] == ["system", "user", "assistant"]
            assert system["content"] == f"You are a {display} chatbot that knows {display} very well."
            seed = next(s for s in SEEDS if s["id"] == record["seed_id"])
            assert seed["text"] in user["content"] and all(o in user["content"] for o in seed["options"])
            country = {"chinese": "China", "german": "Germany"}[path.stem]
            number = seed["options"].index(seed["attitudes"][country]) + 1
            assert assistant["content"].startswith(f"{number}. ")  # the option number, then the opinion
            assert user["content"].endswith("Answer with the number of one option only.\nAnswer:")
            assert record["culture"] == path.stem and record["dialogue_id"]
        parquet = _table(path.with_suffix(".parquet")).to_pylist()
        assert [r["messages"] for r in parquet] == [r["messages"] for r in records]
    sets = load_culture_sets(out)  # the fine-tuning reader accepts the files as they are
    assert sorted(s.name for s in sets) == ["chinese", "german"]


def test_a_killed_stage_worker_loses_and_repeats_no_unit(gen_run, engine, ray_session):
    """SIGKILL the Ray Data actor of the extraction stage mid-run: Ray Data restarts it and retries its
    block, and every extraction unit comes out exactly once."""
    import signal
    import threading
    import time

    import pyarrow as pa
    from ray.util.state import list_actors

    from cultura.pipelines.refine.llm_stage import ExtractWorker, caller_settings, map_table
    from cultura.pipelines.refine.schema import extraction_schema, unit_schema

    rows, manifest = read_generation(gen_run)
    lookup = seed_attitudes(manifest)
    units = extraction_units(rows, lambda s, c: lookup.get((s, c)))
    cfg = config()
    caller, resources = caller_settings(cfg, engine)
    kwargs = {"caller": caller, "max_tokens": 32, "max_chars": cfg.refine.max_input_chars,
              "min_words": cfg.refine.min_words}
    result = {}
    run = threading.Thread(target=lambda: result.update(table=map_table(
        pa.Table.from_pylist(units, schema=unit_schema()), ExtractWorker, kwargs, extraction_schema(),
        workers=1, batch_size=1, resources=resources)))
    run.start()
    killed, seen = None, None
    deadline = time.monotonic() + 300
    while killed is None and run.is_alive() and time.monotonic() < deadline:
        workers = [a for a in list_actors(address=ray_session.get_runtime_context().gcs_address,
                                               filters=[("state", "=", "ALIVE")], detail=True)
                   if "ExtractWorker" in a.class_name and a.pid]
        seen = seen or (time.monotonic() if workers else None)
        if workers and time.monotonic() - seen > 1.0:  # let it take a block first
            os.kill(workers[0].pid, signal.SIGKILL)
            killed = workers[0].pid
        time.sleep(0.2)
    run.join(timeout=400)
    assert killed, "the extraction worker finished before it could be killed"
    ids = result["table"].column("unit_id").to_pylist()
    assert sorted(ids) == sorted(u["unit_id"] for u in units)


# ----- one bad row fails alone ----------------------------------------------------------------------
def test_a_row_whose_request_fails_is_written_with_its_reason_beside_the_rest(gen_run, engine):
    """One extraction unit's prompt overflows the model's context window: that row is written with
    the reason in ``error``, the other rows of its batch are extracted as usual."""
    import pyarrow as pa

    from cultura.pipelines.refine.llm_stage import ExtractWorker, caller_settings, map_table
    from cultura.pipelines.refine.schema import extraction_schema, unit_schema

    rows, manifest = read_generation(gen_run)
    lookup = seed_attitudes(manifest)
    units = extraction_units(rows, lambda s, c: lookup.get((s, c)))[:3]
    poison = dict(units[0], unit_id="poison", seed_text="Why? " * 9000)  # ~18,000 tokens of question
    caller, resources = caller_settings(config(), engine)
    table = map_table(pa.Table.from_pylist([*units, poison], schema=unit_schema()), ExtractWorker,
                      {"caller": caller, "max_tokens": 8, "max_chars": 4000, "min_words": 3}, extraction_schema(),
                      workers=1, batch_size=4, resources=resources)
    written = {r["unit_id"]: r for r in table.to_pylist()}
    assert set(written) == {u["unit_id"] for u in units} | {"poison"}
    assert written["poison"]["error"].startswith("InvalidRequest") and "context window" in written["poison"]["error"]
    assert written["poison"]["finish_reason"] == "error" and written["poison"]["opinions"] == []
    assert all(written[u["unit_id"]]["error"] is None and written[u["unit_id"]]["answer"] for u in units)


def test_verification_ends_a_failed_opinion_alone():
    from cultura.engines.base import Failure

    items = [{"opinion": f"I value opinion {i}.", "seed_text": "Q?", "attitude": "Yes", "country": "Germany"}
             for i in range(3)]
    entail = scripted_score(lambda chat: ENTAIL)

    def score(pairs):  # the second opinion's requests fail
        return [Failure("InvalidRequest: too long") if "opinion 1" in chat[-1]["content"] else entail([(chat, n)])[0]
                for chat, n in pairs]

    results = verify_opinions(items, score, lambda chats, tokens: ["unused"] * len(chats))
    assert [r["decision"] for r in results] == ["kept", "failed", "kept"]
    assert results[1]["error"] == "InvalidRequest: too long" and not results[1]["verified"]
    assert results[0]["error"] is None and results[0]["verified"]
