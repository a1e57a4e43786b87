"""The transformers engine on the real default model: batching, adapters, option scoring.

The engines here run float32 whatever ``engine.dtype: auto`` picks on this CPU: these tests hold the
engine to exact references (transformers' own float32 ``generate``, the unpacked model); bfloat16's
own tests are in ``test_engine_dtypes.py``."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from cultura.config import TransformersEngineConfig
from cultura.engines import ChatRequest, OptionScores, create_engine
from cultura.errors import CulturaError

QUESTIONS = [
    "How important is family in your life?",
    "What is the capital of France?",
    "Name three colors.",
    "Why do people travel abroad?",
]


def make_lora(base_path: str, folder, seed: int) -> str:
    """A small LoRA adapter with random non-zero weights, so it visibly changes the output."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
    config = LoraConfig(r=8, lora_alpha=32, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    peft_model = get_peft_model(model, config)
    peft_model.save_pretrained(str(folder))
    return str(folder)


@pytest.fixture(scope="module")
def adapters(tmp_path_factory, default_model_path):
    root = tmp_path_factory.mktemp("adapters")
    return {name: make_lora(str(default_model_path), root / name, seed) for seed, name in enumerate(["alpha", "beta"])}


@pytest.fixture(scope="module")
def engine(adapters):
    eng = create_engine(TransformersEngineConfig(dtype="float32", adapters=adapters, max_batch_size=16,
                                                 batch_wait_ms=20))
    yield eng
    asyncio.run(eng.close())


def run(coro):
    return asyncio.run(coro)


def requests_for(questions, adapter=None, max_tokens=24):
    return [ChatRequest.of([{"role": "user", "content": q}], adapter=adapter, max_tokens=max_tokens) for q in questions]


def test_batched_greedy_equals_unbatched(engine):
    reqs = requests_for(QUESTIONS)

    async def both():
        single = [(await engine.generate([r]))[0] for r in reqs]
        engine.prefix_cache.clear()  # the batch reads its prompts whole, left-padded
        before = engine.batches_run
        batched = await engine.generate(reqs)
        return single, batched, engine.batches_run - before

    single, batched, batches = run(both())
    assert [c.text for c in batched] == [c.text for c in single]
    assert all(c.text and c.completion_tokens > 0 and c.prompt_tokens > 0 for c in batched)
    assert batches == 1, "four concurrent greedy requests should run as one batch"


def test_concurrent_callers_share_batches(engine):
    reqs = requests_for(QUESTIONS * 2, max_tokens=8)

    async def concurrent():
        before = engine.batches_run
        results = await asyncio.gather(*(engine.generate([r]) for r in reqs))
        return results, engine.batches_run - before

    results, batches = run(concurrent())
    assert len(results) == len(reqs)
    assert batches < len(reqs)


def test_completions_time_their_first_token_from_the_queue_and_each_token_after(engine):
    async def queued():
        long = asyncio.ensure_future(engine.generate(requests_for([QUESTIONS[3]], max_tokens=24)))
        await asyncio.sleep(0.1)  # the long request's batch is running: the next one waits for it
        submitted = time.perf_counter()
        short = asyncio.ensure_future(engine.generate(requests_for([QUESTIONS[1]], max_tokens=8)))
        [first] = await long
        long_done = time.perf_counter()
        [second] = await short
        return first, second, long_done - submitted, time.perf_counter() - submitted

    engine.prefix_cache.clear()
    first, second, waited, wall = run(queued())
    for c in (first, second):
        assert 0 < c.first_token_s and 0 <= c.after_first_s
        assert c.per_token_s == pytest.approx(c.after_first_s / (c.completion_tokens - 1))
    assert first.completion_tokens == 24, "the long answer ran to its length, so the short one queued behind it"
    assert second.first_token_s >= waited - 0.05, (second.first_token_s, waited)  # its queue wait is counted
    assert second.first_token_s + second.after_first_s <= wall
    [one] = run(engine.generate(requests_for([QUESTIONS[2]], max_tokens=1)))
    assert one.first_token_s > 0 and one.per_token_s is None, "one token has no time per output token"


def test_mixed_adapter_batch_equals_per_adapter_runs(engine):
    plan = [(QUESTIONS[0], None), (QUESTIONS[0], "alpha"), (QUESTIONS[1], "beta"), (QUESTIONS[3], "alpha"),
            (QUESTIONS[2], None)]
    reqs = [requests_for([q], adapter=a)[0] for q, a in plan]

    async def both():
        mixed = await engine.generate(reqs)
        alone = [(await engine.generate([r]))[0] for r in reqs]
        return mixed, alone

    mixed, alone = run(both())
    assert [c.text for c in mixed] == [c.text for c in alone]
    assert mixed[0].text != mixed[1].text, "the adapter must change the greedy output"


def test_engine_packs_its_linear_layers(engine):
    assert engine.packed_layers > 0


def test_packed_layers_give_the_plain_models_tokens_and_scores(engine, adapters):
    plain = create_engine(TransformersEngineConfig(dtype="float32", adapters=adapters, packed_linear=False))
    reqs = [requests_for([q], adapter=a)[0] for q, a in [(QUESTIONS[0], None), (QUESTIONS[1], "alpha"),
                                                           (QUESTIONS[3], "beta")]]
    messages = [{"role": "user", "content": "Rate from 1 to 5 how much you like rain."}]

    async def both(eng):
        texts = [c.text for c in await eng.generate(reqs)]
        return texts, await eng.score_options(messages, ["1", "2", "3", "4", "5"], adapter="alpha")

    try:
        packed_texts, packed_scores = run(both(engine))
        plain_texts, plain_scores = run(both(plain))
    finally:
        run(plain.close())
    assert plain.packed_layers == 0
    assert packed_texts == plain_texts
    assert packed_scores.logprobs == pytest.approx(plain_scores.logprobs, abs=1e-3)


def test_a_packed_layer_still_trains_and_matches_plain_inference():
    import torch

    from cultura.engines.packed_linear import pack_linear_layers

    torch.manual_seed(0)
    layer, reference = torch.nn.Linear(64, 32), torch.nn.Linear(64, 32)
    reference.load_state_dict(layer.state_dict())
    assert pack_linear_layers(layer) == 1
    x = torch.randn(3, 64)
    with torch.inference_mode():
        assert torch.allclose(layer(x), reference(x), atol=1e-5)
    layer(x).sum().backward()  # autograd recording: the plain path, so gradients exist
    reference(x).sum().backward()
    assert torch.allclose(layer.weight.grad, reference.weight.grad)


def test_score_options_ranks_obvious_answer_first(engine):
    messages = [{"role": "user", "content": "What is the capital of France? Answer with one word."}]
    scores = run(engine.score_options(messages, ["Paris", "Banana", "Tuesday"])).logprobs
    assert scores[0] == max(scores)
    assert all(s < 0 for s in scores)


def test_single_token_scoring_matches_the_one_row_per_option_path(engine):
    """The one-forward-pass shortcut for single-token options gives the same log-probabilities."""
    messages = [{"role": "user", "content": "Is family important? Answer 1 (yes) to 5 (no)."}]
    options = ["1", "2", "3", "4", "5"]
    shortcut = run(engine.score_options(messages, options)).logprobs
    # A multi-token option forces one row per option, so the first five come from the long path.
    per_row = run(engine.score_options(messages, options + ["not at all important"])).logprobs[:5]
    assert shortcut == pytest.approx(per_row, abs=1e-3)


def scoring_requests():
    """Rows of different lengths and option counts: personas shared by several questions (prefixes
    shared within the batch), a question asked with and without a persona, multi-token options, an
    adapter, the same chat with two option sets, and a chat that extends another."""
    from cultura.engines import ScoreRequest
    from cultura.choices import numbered_question, option_numbers

    persona = "You are Jonas, from Germany. Jonas shares the values and customs common in Germany."
    questions = [numbered_question("How important is family in your life?", ["Very", "Rather", "Not very", "Not at all"]),
                 numbered_question("Think of an ideal job. How important would it be to have a good boss?",
                                   ["Utmost", "Very", "Moderate", "Little", "Very little"]),
                 numbered_question("Think of an ideal job. How important would it be to have time off?",
                                   ["Yes", "No"]),
                 "Is it ever justifiable to cheat on taxes? Answer in a few words."]
    with_persona = [[{"role": "system", "content": persona}, {"role": "user", "content": q}] for q in questions]
    follow_up = [{"role": "user", "content": questions[0]}, {"role": "assistant", "content": "1"},
                 {"role": "user", "content": "Why? " + questions[0]}]
    return [ScoreRequest.of(with_persona[0], option_numbers(4)),
            ScoreRequest.of(with_persona[1], option_numbers(5)),
            ScoreRequest.of(with_persona[2], option_numbers(2)),
            ScoreRequest.of(with_persona[3], ["Never", "Always justifiable", "It depends on the situation"]),
            ScoreRequest.of([{"role": "user", "content": questions[0]}], option_numbers(4)),
            ScoreRequest.of([{"role": "user", "content": questions[0]}], ["1", "2", "three or four"]),
            ScoreRequest.of(follow_up, option_numbers(4)),
            ScoreRequest.of(with_persona[1], option_numbers(5), adapter="alpha"),
            ScoreRequest.of(with_persona[2], option_numbers(2), adapter="alpha")]


def test_batched_scores_equal_one_at_a_time_scores(engine):
    """One batch (identical prompts read once, shared prefixes read once, continuations for longer
    options, two adapters) gives each request the scores it gets alone from a cold cache."""
    requests = scoring_requests()

    async def both():
        alone = []
        for r in requests:
            engine.prefix_cache.clear()
            alone.append(await engine.score_options(r.messages, r.options, r.adapter))
        engine.prefix_cache.clear()
        before = engine.score_stats.as_dict()
        batched = await engine.score_batch(requests)
        after = engine.score_stats.as_dict()
        return alone, batched, {k: after[k] - before[k] for k in before}

    alone, batched, stats = run(both())
    for one, many in zip(alone, batched):
        assert len(many.logprobs) == len(one.logprobs)
        assert many.logprobs == pytest.approx(one.logprobs, abs=1e-3)
        assert many.valid_mass == pytest.approx(one.valid_mass, abs=1e-3)
    assert stats["prompts"] == len(requests) and stats["merged_prompts"] == 1
    assert stats["shared_prefixes"] >= 2, "the persona and the two job questions' opening are shared"
    assert stats["read_tokens"] < stats["prompt_tokens"] * 0.8
    assert stats["forward_passes"] < len(requests)


def test_a_bad_scoring_request_fails_alone(engine, tmp_path):
    """Refused requests (text, context window, options) and one that fails inside the batch (a corrupt
    adapter) give failures in their places; the others are scored as they would be alone."""
    from cultura.engines import ScoreRequest
    from cultura.engines.base import Failure, InvalidRequest, score_each

    (tmp_path / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 8, "target_modules": ["q_proj"]}))
    (tmp_path / "adapter_model.safetensors").write_bytes(b"not safetensors at all")
    good = scoring_requests()[:2]
    poisons = [ScoreRequest.of([{"role": "user", "content": "\ud800 tea"}], ["1", "2"]),
               ScoreRequest.of([{"role": "user", "content": "word " * 9000}], ["1", "2"]),
               ScoreRequest.of([{"role": "user", "content": "Pick one."}], ["1", ""]),
               ScoreRequest.of([{"role": "user", "content": "Pick one."}], ["1", "2"], adapter=str(tmp_path))]
    with pytest.raises(InvalidRequest, match="context window"):
        run(engine.score_options(poisons[1].messages, poisons[1].options))
    expected = run(engine.score_batch(good))
    results = run(score_each(engine, [good[0], *poisons, good[1]]))
    assert [type(r).__name__ for r in results] == ["OptionScores", *["Failure"] * 4, "OptionScores"]
    assert all(isinstance(r, Failure) and r.error for r in results[1:5])
    assert [r.logprobs for r in (results[0], results[-1])] == [pytest.approx(e.logprobs, abs=1e-3) for e in expected]


def test_valid_mass_is_the_probability_on_the_options(engine):
    """The valid mass is what renormalising throws away: high when the prompt asks for an option
    number, low when nothing invites one."""
    import math

    from cultura.choices import numbered_question, option_numbers

    options = option_numbers(5)
    question = numbered_question("Is family important to you?", ["Very", "Rather", "Somewhat", "Not very", "Not at all"])
    asked = run(engine.score_options([{"role": "user", "content": question}], options))
    assert asked.valid_mass == pytest.approx(sum(math.exp(x) for x in asked.logprobs))
    unasked = run(engine.score_options([{"role": "user", "content": "Write a short poem about the sea."}], options))
    assert 0.0 < unasked.valid_mass < 0.5 < asked.valid_mass <= 1.0
    assert run(engine.score_options([{"role": "user", "content": "Hi"}], [])) == OptionScores((), 0.0)


def test_score_options_with_adapter_differs_from_base(engine):
    messages = [{"role": "user", "content": "Is family important? Answer 1 (yes) to 5 (no)."}]
    options = ["1", "2", "3", "4", "5"]
    base = run(engine.score_options(messages, options))
    adapted = run(engine.score_options(messages, options, adapter="alpha"))
    assert base.logprobs != adapted.logprobs


def test_sampling_with_seed_is_reproducible(engine):
    req = ChatRequest.of([{"role": "user", "content": QUESTIONS[0]}], max_tokens=16, temperature=0.9, seed=7)
    first = run(engine.generate([req]))[0].text
    second = run(engine.generate([req]))[0].text
    assert first == second


def test_stop_strings_and_length(engine):
    messages = [{"role": "user", "content": "Count from 1 to 20, separated by commas."}]
    [short] = run(engine.generate([ChatRequest.of(messages, max_tokens=6)]))
    assert short.finish_reason == "length" and short.completion_tokens == 6
    [full, stopped] = run(engine.generate([ChatRequest.of(messages, max_tokens=40),
                                           ChatRequest.of(messages, max_tokens=40, stop=("\n4",))]))
    assert "\n4" in full.text, "the test needs an answer with a fourth line"
    assert stopped.finish_reason == "stop" and stopped.text == full.text[:full.text.index("\n4")].strip()
    assert stopped.completion_tokens < full.completion_tokens


def follow_up(question: str, answer: str) -> list[dict[str, str]]:
    """The second turn of a chat whose first answer was ``answer``."""
    return [{"role": "user", "content": question}, {"role": "assistant", "content": answer},
            {"role": "user", "content": "Why do you think so? Tell me more."}]


def test_a_prompt_that_extends_a_cached_one_reads_only_its_new_tokens_and_answers_the_same(engine):
    async def turns():
        engine.prefix_cache.clear()
        [first] = await engine.generate(requests_for([QUESTIONS[0]]))
        second = ChatRequest.of(follow_up(QUESTIONS[0], first.text), max_tokens=24)
        before = engine.prefix_cache.stats()
        [cached] = await engine.generate([second])
        after = engine.prefix_cache.stats()
        engine.prefix_cache.clear()
        [fresh] = await engine.generate([second])
        return cached, fresh, before, after

    cached, fresh, before, after = run(turns())
    assert after["hits"] == before["hits"] + 1
    assert after["reused_tokens"] - before["reused_tokens"] > cached.prompt_tokens // 2
    assert (cached.text, cached.completion_tokens) == (fresh.text, fresh.completion_tokens)


def test_a_batch_of_cached_and_new_prompts_under_several_adapters_matches_fresh_runs(engine):
    async def go():
        engine.prefix_cache.clear()
        firsts = await engine.generate([requests_for([QUESTIONS[0]])[0], requests_for([QUESTIONS[1]], "alpha")[0]])
        reqs = [ChatRequest.of(follow_up(QUESTIONS[0], firsts[0].text), max_tokens=24),  # cached under the base
                ChatRequest.of(follow_up(QUESTIONS[1], firsts[1].text), adapter="alpha", max_tokens=24),
                # the base model's states must not serve another adapter
                ChatRequest.of(follow_up(QUESTIONS[0], firsts[0].text), adapter="beta", max_tokens=24),
                *requests_for(QUESTIONS[2:])]
        before = engine.prefix_cache.stats()
        batched = await engine.generate(reqs)
        after = engine.prefix_cache.stats()
        counts = {k: after[k] - before[k] for k in ("hits", "misses")}
        fresh = []
        for r in reqs:
            engine.prefix_cache.clear()
            fresh += await engine.generate([r])
        return batched, fresh, counts

    batched, fresh, counts = run(go())
    # the first two resume their first turns, the last two share the chat template's default system
    # prompt with the base model's entry; the beta row finds nothing of its own
    assert counts == {"hits": 4, "misses": 1}
    assert [c.text for c in batched] == [c.text for c in fresh]
    assert batched[0].text != batched[2].text


def test_a_seeded_sampled_request_answers_the_same_alone_and_in_a_batch(engine):
    req = ChatRequest.of([{"role": "user", "content": QUESTIONS[0]}], max_tokens=16, temperature=0.9, seed=11)
    engine.prefix_cache.clear()
    [alone] = run(engine.generate([req]))
    engine.prefix_cache.clear()
    batched = run(engine.generate([*requests_for(QUESTIONS[1:], max_tokens=16), req]))
    assert batched[-1].text == alone.text


@pytest.mark.parametrize("ref", ["../../etc/passwd", "culture/../../x", "nope"])
def test_bad_adapter_references_are_clear_errors(engine, ref):
    with pytest.raises(CulturaError):
        run(engine.generate(requests_for(["hi"], adapter=ref)))


def test_adapter_folder_without_safetensors_is_refused(engine, tmp_path):
    (tmp_path / "adapter_config.json").write_text('{"peft_type": "LORA"}')
    (tmp_path / "adapter_model.bin").write_bytes(b"\x80\x04pickle")
    with pytest.raises(CulturaError, match="safetensors"):
        run(engine.generate(requests_for(["hi"], adapter=str(tmp_path))))


@pytest.mark.parametrize("messages", [[], [{"role": "robot", "content": "x"}], [{"role": "user"}]])
def test_bad_messages_are_clear_errors(messages):
    with pytest.raises(CulturaError):
        ChatRequest.of(messages)


# ----- a bad request fails alone; a caller that leaves stops its rows ---------------------------------
def test_refused_requests_fail_alone_before_they_join_a_batch(engine):
    from dataclasses import replace

    from cultura.engines.base import Failure, InvalidRequest, generate_each

    good = requests_for(QUESTIONS[:2], max_tokens=6)
    huge_seed = replace(good[0].sampling, temperature=0.7)
    object.__setattr__(huge_seed, "seed", 2**70)  # as a pickled object would arrive, past the constructor's check
    poisons = {
        "seed": ChatRequest(good[0].messages, huge_seed),
        "messages": ChatRequest(({"role": "user", "content": "\ud800 tea"},), good[0].sampling),
        "context_length_exceeded": requests_for(["word " * 9000], max_tokens=6)[0],
    }
    for expected, poison in poisons.items():
        with pytest.raises(InvalidRequest) as refused:
            run(engine.generate([poison]))
        assert expected in (refused.value.param, refused.value.code)
    results = run(generate_each(engine, [good[0], *poisons.values(), good[1]]))
    assert [type(r).__name__ for r in results] == ["Completion", "Failure", "Failure", "Failure", "Completion"]
    assert all(isinstance(r, Failure) and r.error.startswith("InvalidRequest") for r in results[1:4])


def test_a_failed_batch_is_run_again_one_request_at_a_time(engine, tmp_path):
    """A corrupt adapter passes the checks and fails inside the batch: only its request fails."""
    (tmp_path / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 8, "target_modules": ["q_proj"]}))
    (tmp_path / "adapter_model.safetensors").write_bytes(b"not safetensors at all")
    good = requests_for(QUESTIONS[:2], max_tokens=6)
    expected = run(engine.generate(good))
    retried = engine.batches_retried

    async def together():
        return await asyncio.gather(engine.generate(good[:1]), engine.generate(requests_for(["hi"], adapter=str(tmp_path))),
                                    engine.generate(good[1:]), return_exceptions=True)

    first, poison, second = run(together())
    assert [first[0].text, second[0].text] == [c.text for c in expected]
    assert isinstance(poison, Exception) and engine.batches_retried == retried + 1


def test_cancelled_callers_leave_the_queue_and_the_decode_loop(engine):
    long = requests_for([f"Tell a long story about the village number {i}." for i in range(4)], max_tokens=300)
    before_rows, before_cancelled = engine.decode_stats.decode_rows, engine.rows_cancelled

    async def abandon():
        calls = [asyncio.ensure_future(engine.generate([r])) for r in long]
        await asyncio.sleep(0.5)
        for call in calls:
            call.cancel()
        start = time.perf_counter()
        [answer] = await engine.generate(requests_for(QUESTIONS[:1], max_tokens=4))
        return answer, time.perf_counter() - start

    answer, seconds = run(abandon())
    assert answer.text and engine.rows_cancelled - before_cancelled == 4
    assert engine.decode_stats.decode_rows - before_rows < 4 * 300 / 4, "abandoned rows kept decoding"
    assert seconds < 10


def persona_request(culture: str, question: str, **sampling):
    from cultura.personas import culture_persona

    return ChatRequest.of(culture_persona(culture).messages(question), **sampling)


def test_the_repetition_penalty_is_per_row_and_matches_transformers_generate(engine, default_model_path):
    import torch
    from transformers import AutoModelForCausalLM

    guarded = persona_request("arabic", "How do you feel about religion?", max_tokens=40, repetition_penalty=1.1)
    plain = persona_request("arabic", "How do you feel about religion?", max_tokens=40)
    engine.prefix_cache.clear()
    texts = [c.text for c in run(engine.generate([guarded, plain]))]

    model = AutoModelForCausalLM.from_pretrained(str(default_model_path), dtype=torch.float32).eval()
    ids = engine.tokenizer(engine.render(guarded.messages), add_special_tokens=False, return_tensors="pt")["input_ids"]
    expected = []
    for penalty in (1.1, 1.0):
        with torch.inference_mode():
            out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=40, do_sample=False,
                                 repetition_penalty=penalty, pad_token_id=engine.tokenizer.pad_token_id)
        expected.append(engine.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip())
    assert texts == expected
    assert texts[0] != texts[1], "the penalty must change this answer within 40 tokens"


def test_greedy_persona_answers_loop_without_the_guard_and_not_with_the_default_one(engine):
    from cultura.config import SamplingConfig
    from cultura.engines.repetition import loops, most_repeated_span

    default = SamplingConfig()
    guards = [(1.0, 0), (default.repetition_penalty, default.no_repeat_ngram_size)]
    # the persona answers that loop without the guards (bench/repetition.py --cultures arabic,bengali)
    asks = [("arabic", "What do you think about working hard?"), ("bengali", "How important is family in your life?"),
            ("bengali", "What do you think about working hard?")]
    requests = [persona_request(c, q, max_tokens=128, repetition_penalty=p, no_repeat_ngram_size=n)
                for p, n in guards for c, q in asks]
    texts = [c.text for c in run(engine.generate(requests))]
    without, with_guard = texts[:len(asks)], texts[len(asks):]
    assert sum(map(loops, without)) >= 2, [most_repeated_span(t) for t in without]
    assert not any(map(loops, with_guard)), with_guard
