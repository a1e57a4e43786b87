"""Fine-tuning with Ray Train on a small SFT set: losses, adapters, registry, engines, bad input."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from cultura.errors import CulturaError, DataError

CULTURA = str(Path(sys.executable).with_name("cultura"))
CULTURES = ("german", "chinese")


def cultura(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    return subprocess.run([CULTURA, *args], capture_output=True, text=True, timeout=timeout, env=env)


def demo_rows(culture: str) -> list[list[dict[str, str]]]:
    """Conversations in the refinement output's shape: a persona, a seed question with options, and
    the culture's surveyed answer with an opinion, plus one two-turn dialogue."""
    from cultura.pipelines.finetune.data import seed_answer_conversations

    rows = seed_answer_conversations(culture, limit=15)
    system = rows[0][0]["content"]
    rows.append([
        {"role": "system", "content": system},
        {"role": "user", "content": "Lily here. What do people where you live think about working on Sundays?"},
        {"role": "assistant", "content": "Most of us keep Sunday for family; shops are often closed that day."},
        {"role": "user", "content": "Interesting. Does that ever feel inconvenient?"},
        {"role": "assistant", "content": "Sometimes, but we plan our shopping for Saturday and enjoy the quiet."},
    ])
    return rows


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory) -> Path:
    from cultura.pipelines.finetune.data import write_sft_jsonl

    root = tmp_path_factory.mktemp("refined")
    for culture in CULTURES:
        write_sft_jsonl(root, culture, demo_rows(culture))
    return root


@pytest.fixture(scope="module")
def trained(ray_session, demo_data, tmp_path_factory):
    """Both cultures trained as Ray Train runs (concurrently where the CPUs allow)."""
    from cultura.config import load_config
    from cultura.pipelines.finetune.run import finetune

    out = tmp_path_factory.mktemp("adapters")
    config = load_config(None, {"finetune.max_steps": 6, "finetune.evaluations": 3, "finetune.batch_size": 2,
                                "finetune.cpus_per_worker": 1, "finetune.eval_fraction": 0.2})
    summary = finetune(config, demo_data, "culture", out)
    assert not summary.failures, summary.failures
    return summary


def test_eval_loss_falls_and_registry_entries_are_complete(trained, demo_data):
    from cultura.cards import read_card
    from cultura.pipelines.finetune.data import file_sha256
    from cultura.registry import load_registry

    assert [e.name for e in trained.adapters] == sorted(CULTURES)
    folder, _ = read_card(trained.out)
    assert folder["stage"] == "finetune" and sorted(folder["adapters"]) == sorted(CULTURES)
    registry = load_registry(trained.out)
    raw = json.loads(trained.registry.read_text())["adapters"]
    for name in CULTURES:
        e = registry[name]
        assert e.eval_loss < e.eval_loss_before, (name, e.eval_loss_before, e.eval_loss)
        assert e.kind == "culture" and e.target == name and e.base_model == "default" and e.preset == "cpu-small"
        assert Path(e.data_path) == demo_data / "sft" / f"{name}.jsonl"
        assert e.data_sha256 == file_sha256(Path(e.data_path))
        assert e.train_rows + e.eval_rows == len(demo_rows(name)) and e.eval_rows >= 2
        assert e.steps == 6 and e.train_loss is not None and e.train_loss > 0 and e.created
        assert e.hyperparameters["lora_r"] == 16 and e.hyperparameters["max_steps"] == 6
        assert raw[name]["path"] == name  # stored relative: the folder can move
        assert e.seed_ids is None  # these rows do not say which seed they came from
        assert Path(e.path) == trained.out / name
        assert sorted(p.name for p in Path(e.path).iterdir()) == ["README.md", "adapter_config.json",
                                                                  "adapter_model.safetensors"]
        card, body = read_card(e.path)  # a Hugging Face model card saying what the adapter was trained on
        assert card["base_model"] == "default" and card["library_name"] == "peft" and card["adapter"] == name
        assert card["data_sha256"] == e.data_sha256 and card["eval_loss"] == pytest.approx(e.eval_loss)
        assert card["paper"] == "CulturePark arXiv:2405.15145v3" and "seed_ids" not in card
        assert "torch" in card["versions"]
        assert f"{e.train_rows} rows" in body
        # Ray Train kept two checkpoints of three: the best and the latest.
        checkpoints = [p for p in Path(e.run).glob("checkpoint_*") if p.is_dir()]
        assert len(checkpoints) == 2, checkpoints


def test_adapter_changes_greedy_output_and_loads_by_registry_name(trained):
    from cultura.config import TransformersEngineConfig
    from cultura.engines import ChatRequest, create_engine
    from cultura.adapters import check_adapter_folder

    conversation = demo_rows("german")[0][:2]
    engine = create_engine(TransformersEngineConfig(adapter_registry=str(trained.out)))
    try:
        assert engine.adapters() == sorted(CULTURES)
        check_adapter_folder(trained.out / "german")

        async def answers():
            return await engine.generate([ChatRequest.of(conversation, adapter=a, max_tokens=24, temperature=0.0)
                                          for a in (None, "german", str(trained.out / "german"))])

        base, by_name, by_path = (c.text for c in asyncio.run(answers()))
    finally:
        asyncio.run(engine.close())
    assert by_name != base
    assert by_name == by_path


def test_adapters_list_cli(trained):
    result = cultura("adapters", "list", "--dir", str(trained.out))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["name", "kind", "target"]
    assert [line.split()[0] for line in lines[1:]] == sorted(CULTURES)


def write_jsonl(path: Path, rows: list) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))


GOOD = {"messages": [{"role": "system", "content": "You are a German chatbot"},
                     {"role": "user", "content": "Is family important?"},
                     {"role": "assistant", "content": "Very important."}], "culture": "german"}


@pytest.mark.parametrize(("rows", "extra", "message"), [
    (None, [], "no SFT files"),
    ([], [], "at least 2 are needed"),
    ([GOOD, {"text": "hello"}], [], "missing field 'messages'"),
    ([GOOD, "{not json"], [], "not valid JSON"),
    ([GOOD, {"messages": GOOD["messages"][:2]}], [], "no assistant message"),
    ([GOOD, {"messages": [{"role": "narrator", "content": "x"}]}], [], "must be one of"),
    ([GOOD, {**GOOD, "culture": "korean"}], [], "in the file of culture 'german'"),
    ([GOOD, GOOD], ["--only", "../../etc"], "invalid adapter name"),
    ([GOOD, GOOD], ["--only", "germn"], "did you mean: german"),
    ([GOOD, GOOD], ["--per", "continent"], "no Palette dataset"),
    ([GOOD, GOOD], ["--preset", "huge"], "huge"),
    ([GOOD, GOOD], ["--lora-r", "0"], "finetune.lora_r"),
])
def test_bad_input_is_a_clear_error_before_training(tmp_path, rows, extra, message):
    data = tmp_path / "data"
    (data / "sft").mkdir(parents=True)
    if rows is not None:
        write_jsonl(data / "sft" / "german.jsonl", rows)
    result = cultura("finetune", "--data", str(data), "--out", str(tmp_path / "out"), *extra)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out" / "_runs").exists()  # no Ray Train run was started


def test_output_folder_must_not_be_a_file_or_a_foreign_folder(tmp_path, demo_data):
    from cultura.config import load_config
    from cultura.pipelines.finetune.plan import plan_finetune

    config = load_config()
    (tmp_path / "file").write_text("x")
    with pytest.raises(CulturaError, match="is a file"):
        plan_finetune(config, demo_data, "culture", tmp_path / "file")
    (tmp_path / "out" / "german").mkdir(parents=True)
    (tmp_path / "out" / "german" / "notes.txt").write_text("mine")
    with pytest.raises(CulturaError, match="not an adapter folder"):
        plan_finetune(config, demo_data, "culture", tmp_path / "out", only=["german"])


def test_sft_sets_know_the_seeds_their_rows_came_from(tmp_path):
    from cultura.pipelines.finetune.data import load_culture_sets

    chat = [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "A."}]
    (tmp_path / "sft").mkdir()
    (tmp_path / "sft" / "german.jsonl").write_text("".join(
        json.dumps({"messages": chat, "culture": "german", "seed_id": s}) + "\n" for s in ("wvs-002", "wvs-001", "wvs-002")))
    (tmp_path / "sft" / "korean.jsonl").write_text(json.dumps({"messages": chat, "seed_id": "wvs-001"}) + "\n"
                                                   + json.dumps({"messages": chat}) + "\n")
    sets = {s.name: s for s in load_culture_sets(tmp_path)}
    assert sets["german"].seed_ids == ("wvs-001", "wvs-002")
    assert sets["korean"].seed_ids is None  # one row without its seed: what the adapter saw is not known


def test_concurrency_comes_from_resources():
    from cultura.config import load_config
    from cultura.pipelines.finetune.plan import concurrent_runs

    def runs(resources, n_jobs=8, **finetune):
        return concurrent_runs(load_config(None, {f"finetune.{k}": v for k, v in finetune.items()}), resources, n_jobs)

    assert runs({"CPU": 2.0}) == 2
    assert runs({"CPU": 2.0}, cpus_per_worker=2) == 1
    assert runs({"CPU": 16.0}, n_jobs=3) == 3
    assert runs({"CPU": 64.0, "GPU": 4.0}, use_gpu=True, workers=2) == 2
    assert runs({"CPU": 64.0}, max_concurrent=1) == 1
    with pytest.raises(CulturaError, match="lower --workers"):
        runs({"CPU": 2.0}, workers=3)
    with pytest.raises(CulturaError, match="GPUs"):
        runs({"CPU": 8.0}, use_gpu=True)


def test_presets_and_overrides():
    from cultura.config import FinetuneConfig
    from cultura.pipelines.finetune.plan import hyperparameters

    paper = hyperparameters(FinetuneConfig(preset="paper"))
    assert (paper["lora_r"], paper["lora_alpha"], paper["lora_dropout"], paper["learning_rate"]) == (64, 16, 0.1, 2e-4)
    assert (paper["lr_scheduler"], paper["warmup_ratio"], paper["epochs"], paper["max_grad_norm"]) == \
        ("constant", 0.03, 6, 0.3)
    assert paper["batch_size"] == 4 and paper["load_in_4bit"] is True
    small = hyperparameters(FinetuneConfig(learning_rate=5e-4, target_modules=["all-linear"]))
    assert small["learning_rate"] == 5e-4 and small["target_modules"] == ["all-linear"] and small["lora_r"] == 16


def test_engine_dtype_is_the_training_dtype_and_lora_factors_stay_float32(default_model_path, tmp_path):
    import torch
    from transformers import AutoTokenizer

    from cultura.config import FinetuneConfig
    from cultura.pipelines.finetune.data import tokenize_conversation
    from cultura.pipelines.finetune.lora_train import build_trainer, load_lora_model
    from cultura.pipelines.finetune.plan import hyperparameters

    hp = {**hyperparameters(FinetuneConfig(target_modules=["q_proj"], lora_r=4)), "dtype": "bfloat16"}
    model, _ = load_lora_model("default", hp, use_gpu=False)
    dtypes = {("lora_" in name, p.dtype) for name, p in model.named_parameters()}
    assert dtypes == {(False, torch.bfloat16), (True, torch.float32)}
    tokenizer = AutoTokenizer.from_pretrained(str(default_model_path))
    row = tokenize_conversation(tokenizer, demo_rows("german")[-1], max_length=128)
    batch = {k: torch.tensor([v]) for k, v in row.items()}
    with torch.autocast("cpu", dtype=torch.bfloat16):  # what the Trainer's bf16=True runs
        loss = model(**batch).loss
    loss.backward()
    assert torch.isfinite(loss) and 0.5 < float(loss.detach()) < 10
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for n, p in model.named_parameters() if "lora_" in n)
    trainer = build_trainer(model, tokenizer, [row], [row], {**hp, "max_steps": 1, "evaluations": 1}, str(tmp_path),
                            use_gpu=False)
    assert trainer.args.bf16 and trainer.train().global_step == 1


def test_loss_covers_assistant_turns_only(default_model_path):
    from transformers import AutoTokenizer

    from cultura.pipelines.finetune.data import IGNORE_INDEX, tokenize_conversation

    tokenizer = AutoTokenizer.from_pretrained(str(default_model_path))
    dialogue = demo_rows("german")[-1]
    row = tokenize_conversation(tokenizer, dialogue, max_length=512)
    learned = tokenizer.decode([t for t, label in zip(row["input_ids"], row["labels"]) if label != IGNORE_INDEX])
    assert learned == "".join(f"{m['content']}<|im_end|>\n" for m in dialogue if m["role"] == "assistant")
    assert len(row["input_ids"]) == len(row["labels"]) == len(row["attention_mask"])
    # Cut inside the first user turn: no assistant token is left, so the row is dropped.
    assert tokenize_conversation(tokenizer, dialogue, max_length=20) is None


def test_continent_sets_use_the_chosen_response_and_the_continent_persona(tmp_path):
    from cultura.pipelines.finetune.data import load_sft_sets
    from cultura.personas import continent_persona

    rows = [{"query": f"What is a polite greeting? ({i})", "continent": c, "response": f"chosen {c} {i}",
             "rejected_response": f"rejected {c} {i}", "country": "x"}
            for i in range(3) for c in ("Europe", "asia")]
    write_jsonl(tmp_path / "palette.jsonl", rows)
    sets = {s.name: s for s in load_sft_sets(tmp_path, "continent")}
    assert sorted(sets) == ["asia", "europe"]
    europe = sets["europe"]
    assert europe.kind == "continent" and europe.target == "Europe" and len(europe.conversations) == 3
    system, user, assistant = europe.conversations[0]
    assert system["content"] == continent_persona("Europe").system_prompt
    assert user["content"].startswith("What is a polite greeting?") and assistant["content"].startswith("chosen Europe")
    assert [s.name for s in load_sft_sets(tmp_path, "continent", only=["Asia"])] == ["asia"]
    write_jsonl(tmp_path / "bad" / "palette.jsonl", [{**rows[0], "continent": "Atlantis"}])
    with pytest.raises(DataError, match="'Atlantis' is not one of"):
        load_sft_sets(tmp_path / "bad", "continent")


def test_registry_writes_from_many_threads_keep_every_entry(tmp_path):
    from cultura.registry import AdapterEntry, known_adapters, load_registry, register_adapter
    from cultura.config import TransformersEngineConfig

    def entry(i: int) -> AdapterEntry:
        return AdapterEntry(name=f"a{i}", kind="culture", target="german", base_model="default",
                            base_model_path="/m", data_path="/d", data_sha256="0" * 64, preset="cpu-small",
                            train_loss=1.0, eval_loss_before=2.0, eval_loss=1.5, train_rows=9, eval_rows=1,
                            steps=3, created="2025-01-01T00:00:00+00:00", path=str(tmp_path / f"a{i}"))

    threads = [threading.Thread(target=register_adapter, args=(tmp_path, entry(i))) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(load_registry(tmp_path)) == sorted(f"a{i}" for i in range(12))
    adapters = known_adapters(TransformersEngineConfig(adapter_registry=str(tmp_path), adapters={"a0": "/elsewhere"}))
    assert adapters["a0"] == "/elsewhere" and adapters["a5"] == str(tmp_path / "a5")
    with pytest.raises(CulturaError, match="invalid adapter name"):
        register_adapter(tmp_path, entry(0).__class__(**{**entry(0).__dict__, "name": "../x"}))
    register_adapter(tmp_path, entry(0).__class__(**{**entry(0).__dict__, "seed_ids": ["wvs-001", "pew-002"]}))
    assert load_registry(tmp_path)["a0"].seed_ids == ["wvs-001", "pew-002"] and load_registry(tmp_path)["a1"].seed_ids is None
    raw = json.loads((tmp_path / "registry.json").read_text())
    raw["adapters"]["a1"]["seed_ids"] = "wvs-001"
    (tmp_path / "registry.json").write_text(json.dumps(raw))
    with pytest.raises(DataError, match="field 'seed_ids'"):
        load_registry(tmp_path)
    (tmp_path / "registry.json").write_text("{oops")
    with pytest.raises(DataError, match="not valid JSON"):
        load_registry(tmp_path)


def test_a_killed_train_worker_resumes_from_the_last_checkpoint(ray_session, demo_data, tmp_path):
    """SIGKILL the Ray Train worker once a checkpoint is reported: Ray Train restarts the worker group, the
    Trainer resumes at that checkpoint's step (weights, optimizer, scheduler) and finishes the run."""
    import signal
    import time

    from ray.util.state import list_actors

    from cultura.config import load_config
    from cultura.pipelines.finetune.run import finetune

    out = tmp_path / "adapters"
    config = load_config(None, {"finetune.max_steps": 12, "finetune.evaluations": 6, "finetune.batch_size": 2,
                                "finetune.cpus_per_worker": 1, "finetune.eval_fraction": 0.2})
    result = {}
    run = threading.Thread(target=lambda: result.update(summary=finetune(config, demo_data, "culture", out,
                                                                         only=["german"])))
    run.start()
    killed = None
    deadline = time.monotonic() + 400
    while killed is None and run.is_alive() and time.monotonic() < deadline:
        # the second checkpoint folder means the first one's report has completed
        if len(list(out.glob("_runs/*/checkpoint_*"))) >= 2:
            workers = [a for a in list_actors(address=ray_session.get_runtime_context().gcs_address,
                                               filters=[("state", "=", "ALIVE")], detail=True)
                       if a.class_name.endswith("RayTrainWorker") and a.pid]
            if workers:
                os.kill(workers[0].pid, signal.SIGKILL)
                killed = workers[0].pid
        time.sleep(0.3)
    run.join(timeout=600)
    assert killed, "no Ray Train worker was found to kill after the first checkpoint"
    summary = result["summary"]
    assert not summary.failures, summary.failures
    [entry] = summary.adapters
    assert entry.steps == 12 and entry.eval_loss < entry.eval_loss_before
    assert summary.timings["german"]["resumed_from_step"] >= 2, summary.timings
