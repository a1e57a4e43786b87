"""The transformers engine's dtypes on the real default model: bfloat16 against float32 option scoring,
``engine.dtype: auto``, and int8 weights for decode steps of a few rows."""

from __future__ import annotations

import asyncio
import math

import pytest

from cultura.api import load_config
from cultura.config import TransformersEngineConfig
from cultura.engines import ChatRequest, ScoreRequest, create_engine, describe

PROMPTS = ["How important is family in your life?", "Why do people travel abroad?", "Name three colors."]


def run(coro):
    return asyncio.run(coro)


def vsm_requests(count: int) -> list[ScoreRequest]:
    """The first ``count`` VSM questions, asked plainly and as a German, over their numbered options."""
    from cultura.data.vsm import load_vsm_items, vsm_prompt
    from cultura.personas import culture_persona

    requests = []
    for persona in (None, culture_persona("german").system_prompt):
        for item in load_vsm_items()[:count]:
            messages = [{"role": "user", "content": vsm_prompt(item)}]
            if persona:
                messages.insert(0, {"role": "system", "content": persona})
            requests.append(ScoreRequest.of(messages, [str(i + 1) for i in range(len(item.options))]))
    return requests


def distributions(scores) -> list[list[float]]:
    return [[math.exp(x) / s.valid_mass for x in s.logprobs] for s in scores]


@pytest.fixture(scope="module")
def float32_engine():
    eng = create_engine(TransformersEngineConfig(dtype="float32", max_batch_size=16))
    yield eng
    run(eng.close())


def test_bfloat16_option_scores_give_float32_decisions(float32_engine):
    """Tolerance: Jensen-Shannon divergence below 0.01 bits on every item and the same argmax on at
    least 95% (this CPU may run bfloat16 slowly; the decisions must not depend on it)."""
    from cultura.eval.metrics import jensen_shannon_distance

    requests = vsm_requests(4)
    bf16 = create_engine(TransformersEngineConfig(dtype="bfloat16"))
    try:
        assert describe(bf16)["dtype"] == "bfloat16" and bf16.packed_layers == 0
        low = distributions(run(bf16.score_batch(requests)))
    finally:
        run(bf16.close())
    full = distributions(run(float32_engine.score_batch(requests)))
    divergences = [jensen_shannon_distance(p, q) ** 2 for p, q in zip(full, low)]
    agree = sum(p.index(max(p)) == q.index(max(q)) for p, q in zip(full, low)) / len(full)
    assert max(divergences) < 0.01, divergences
    assert agree >= 0.95, agree


def test_auto_dtype_is_bfloat16_exactly_where_the_cpu_runs_it_natively_and_cards_record_the_choice():
    import torch

    from cultura.cards import provenance
    from cultura.config.dtype import cpu_bfloat16, dtype_choice, resolve_dtype

    native, reason = cpu_bfloat16()
    has_units = torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported()
    assert native == (has_units and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    expected = "bfloat16" if native else "float32"
    config = load_config(engine={"dtype": "auto"})
    assert config.engine.resolved_dtype() == resolve_dtype("auto") == expected
    assert provenance(config)["dtype"] == expected
    assert dtype_choice("auto") == f"dtype {expected} (engine.dtype auto: {reason})"
    assert resolve_dtype("float16") == "float16"
    assert load_config().engine.resolved_dtype() == "float32", "the default: batch-invariant answers (README)"
    remote = load_config(engine={"kind": "openai", "dtype": "auto"})
    assert remote.engine.resolved_dtype() == "auto"  # a remote server picks its own


def test_an_int8_layer_is_close_to_float32_inside_a_decode_step_and_exact_outside():
    import torch

    from cultura.engines.int8_linear import int8_weights, quantize_linear_layers

    torch.manual_seed(0)
    layer, reference = torch.nn.Linear(576, 256), torch.nn.Linear(576, 256)
    reference.load_state_dict(layer.state_dict())
    assert quantize_linear_layers(layer) == 1 and quantize_linear_layers(layer) == 0  # once only
    one, many = torch.randn(1, 1, 576), torch.randn(6, 1, 576)
    with torch.inference_mode():
        assert torch.equal(layer(one), reference(one))  # outside a decode step: the float32 weights
        with int8_weights(rows=1, limit=4):
            quantized = layer(one)
            assert torch.equal(layer(many), reference(many))  # more rows than the limit: float32
        with int8_weights(rows=6, limit=4):  # a step above the limit
            assert torch.equal(layer(one), reference(one))
    expected = reference(one)
    assert not torch.equal(quantized, expected)
    error = (quantized - expected).norm() / expected.norm()
    assert error < 0.02, error
    with int8_weights(rows=1, limit=4):  # autograd recording: float32, so training is unchanged
        layer(one).sum().backward()
    assert layer.weight.grad is not None


def test_int8_decoding_leaves_scores_and_long_batches_as_float32_and_keeps_its_states_out_of_the_cache(
        float32_engine):
    from cultura.engines.transformers_engine import BASE

    int8 = create_engine(TransformersEngineConfig(dtype="float32", max_batch_size=16, int8_decode_rows=1))
    requests = vsm_requests(3)
    asks = [ChatRequest.of([{"role": "user", "content": p}], max_tokens=8) for p in PROMPTS]

    def cached_tokens(engine, answer) -> tuple[int, int]:  # (prompt tokens, tokens the cache resumes from)
        prompt = engine.prompt_ids(asks[0].messages)
        answer_ids = engine.tokenizer(answer.text, add_special_tokens=False)["input_ids"]
        found = engine.prefix_cache.lookup(BASE, prompt + list(answer_ids))
        return len(prompt), found.length if found else 0

    try:
        assert describe(int8)["int8_decode_rows"] == 1
        alone = run(int8.generate(asks[:1]))[0]
        int8_prompt, int8_cached = cached_tokens(int8, alone)
        int8_scores = run(int8.score_batch(requests))
        three = run(int8.generate(asks))  # steps of three rows, above the limit: float32
    finally:
        run(int8.close())
    full = run(float32_engine.generate(asks))
    float_prompt, float_cached = cached_tokens(float32_engine, full[0])
    assert int8_cached == int8_prompt  # the answer's int8 states stayed out of the prefix cache
    assert float_cached > float_prompt  # where float32 keeps them
    float_scores = run(float32_engine.score_batch(requests))
    for mine, theirs in zip(int8_scores, float_scores):  # float32 rounding of other batchings only (int8: ~1e-2)
        assert mine.logprobs == pytest.approx(theirs.logprobs, abs=1e-4)
    assert [c.text for c in three] == [c.text for c in full]
    words, reference = alone.text.split(), full[0].text.split()
    assert words[:3] == reference[:3], (alone.text, full[0].text)  # int8 noise shows late if at all
