"""The CPU default engine: Hugging Face transformers with an asyncio micro-batcher and peft LoRA.

Concurrent ``generate`` calls are gathered for up to ``batch_wait_ms`` (or until ``max_batch_size``
requests wait) and run as one batch by :func:`cultura.engines.decode.decode`: each row with its own
sampling settings, resumed from the longest prefix of its prompt whose key/value states the engine
still holds (:mod:`cultura.engines.prefix_cache`; a dialogue's next turn re-reads only the new
messages). Batches may mix adapters: peft applies a different LoRA (or none) to each row. All
model work runs on one worker thread so torch never competes with itself for the CPUs.

One request fails alone: each is checked and tokenized when it arrives (a bad value, text that is
not UTF-8, or a prompt that with ``max_tokens`` overflows the model's context window is refused at
once), and a batch that still fails is run again one request at a time
(:mod:`cultura.engines.batcher`). A request whose caller went away (its awaiting task was
cancelled: a client hung up, a deadline passed) leaves the queue, or the decode loop at its next step.

Option scoring has a queue of its own: concurrent ``score_options`` calls and ``score_batch``
requests are gathered (up to ``score_batch_size`` prompts) and scored together by
:func:`cultura.engines.scoring.score_rows`: many prompts per forward pass, prefixes shared within the
batch read once, and the prefix cache serving what earlier prompts read.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from cultura.adapters import resolve_adapter
from cultura.config.dtype import AUTO, dtype_choice
from cultura.engines.base import (
    ChatRequest,
    Completion,
    Message,
    OptionScores,
    ScoreRequest,
    ScoresThroughBatch,
    checked_prompt,
    checked_score_prompt,
)
from cultura.engines.batcher import MicroBatcher, Pending
from cultura.engines.decode import CANCELLED, DecodeOutput, DecodeStats, decode
from cultura.engines.forward import DecodeRow
from cultura.engines.int8_linear import can_quantize, quantize_linear_layers
from cultura.engines.latency import record_latency
from cultura.engines.packed_linear import pack_linear_layers
from cultura.engines.prefix_cache import PrefixCache
from cultura.engines.rerank import generate_in_language
from cultura.engines.scoring import ScoreRow, ScoreStats, score_rows
from cultura.errors import ConfigError
from cultura.models import resolve_model
from cultura.registry import known_adapters

BASE = "__base__"  # peft's name for "no adapter" in mixed-adapter batches


def available_cpus() -> int:
    """CPUs this process may run on (respects affinity masks and Ray's CPU pinning)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


@dataclass
class _Prompt:
    """A chat request and its prompt's token ids, as queued for generation (``queued_at``: when, by
    ``time.perf_counter()``)."""

    request: ChatRequest
    ids: list[int]
    queued_at: float = field(default_factory=time.perf_counter)


@dataclass
class _Scoring:
    """A scoring request with its prompt's and options' token ids, as queued for scoring."""

    request: ScoreRequest
    ids: list[int]
    options: list[list[int]]


class TransformersEngine(ScoresThroughBatch):
    """Engine protocol on transformers; see the module docstring for how batching works."""

    name = "transformers"

    def __init__(self, config: Any, num_threads: int | None = None):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.config = config
        self.model = config.model
        self.num_threads = max(1, num_threads or available_cpus())
        torch.set_num_threads(self.num_threads)
        path = resolve_model(config.model)
        self.dtype = config.resolved_dtype(gpu=False)
        if config.dtype == AUTO:  # which dtype auto chose, and why, goes to the log (an actor's reaches the driver)
            print(f"cultura engine: {dtype_choice(config.dtype)}", file=sys.stderr, flush=True)
        dtype = getattr(torch, self.dtype)
        self.tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=config.trust_remote_code)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self._model = AutoModelForCausalLM.from_pretrained(
            path, dtype=dtype, trust_remote_code=config.trust_remote_code, use_safetensors=True
        )
        self._model.eval()
        # the longest prompt plus answer the model's positions cover (None: the config does not say)
        self.context_window: int | None = getattr(self._model.config, "max_position_embeddings", None)
        self.packed_layers = pack_linear_layers(self._model) if config.packed_linear else 0
        self.int8_decode_rows = config.int8_decode_rows
        if self.int8_decode_rows:
            if not can_quantize():
                raise ConfigError("engine.int8_decode_rows: this torch build has no int8 weight-only matmul "
                                  "(torch.ops.aten._weight_int8pack_mm); set it to 0")
            quantize_linear_layers(self._model)
        eos = self.tokenizer.eos_token_id
        self._eos_ids = {eos} if isinstance(eos, int) else set(eos or [])
        cache_bytes = config.prefix_cache_mb * 1024 * 1024 if _plain_kv_layers(self._model) else 0
        self.prefix_cache = PrefixCache(cache_bytes)
        self._known_adapters: dict[str, str] = known_adapters(config)  # registry names + config.adapters
        self._loaded_adapters: set[str] = set()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cultura-engine")
        wait_s = config.batch_wait_ms / 1000.0
        self._generation = MicroBatcher(self._generate_batch, self._executor, config.max_batch_size, wait_s)
        self._scoring = MicroBatcher(self._score_batch, self._executor, config.score_batch_size, wait_s,
                                     "scoring requests")
        self.batches_run = 0
        self.rows_run = 0
        self.decode_stats = DecodeStats()
        self.score_stats = ScoreStats()

    @property
    def rows_cancelled(self) -> int:
        """Requests dropped from a queue or the decode loop because their callers left."""
        return self._generation.cancelled + self._scoring.cancelled + self.decode_stats.rows_cancelled

    @property
    def batches_retried(self) -> int:
        """Failed batches run again one request at a time."""
        return self._generation.retried + self._scoring.retried

    # ----- adapters -------------------------------------------------------------------------
    def add_adapter(self, name: str, path: str) -> None:
        """Register an adapter folder under ``name``; it is loaded on first use."""
        self._known_adapters[name] = str(path)

    def adapters(self) -> list[str]:
        """Registered adapter names."""
        return sorted(self._known_adapters)

    def _ensure_adapter(self, ref: str) -> str:
        """Load the adapter ``ref`` into the peft model (once) and return its peft name."""
        name, folder = resolve_adapter(ref, self._known_adapters)
        peft_name = _peft_safe_name(name)
        if peft_name in self._loaded_adapters:
            return peft_name
        from peft import PeftModel

        if not self._loaded_adapters:
            self._model = PeftModel.from_pretrained(self._model, str(folder), adapter_name=peft_name)
        else:
            self._model.load_adapter(str(folder), adapter_name=peft_name)
        self._model.eval()
        self._loaded_adapters.add(peft_name)
        return peft_name

    # ----- prompts --------------------------------------------------------------------------
    def render(self, messages: Sequence[Message]) -> str:
        """The chat-templated prompt text for ``messages``, ending where the assistant speaks."""
        return self.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)

    def prompt_ids(self, messages: Sequence[Message]) -> list[int]:
        """Token ids of the chat-templated prompt."""
        return list(self.tokenizer(self.render(messages), add_special_tokens=False)["input_ids"])

    # ----- generation -----------------------------------------------------------------------
    async def generate(self, requests: Sequence[ChatRequest]) -> list[Completion]:
        """Complete every request; concurrent callers share batches. Each request is checked before
        it joins the queue; cancelling the call drops its requests from the queue and the decode loop.
        An answer out of its ``sampling.language`` is replaced (:mod:`cultura.engines.rerank`)."""
        return await generate_in_language(self._generate_once, requests)

    async def _generate_once(self, requests: Sequence[ChatRequest]) -> list[Completion]:
        prompts = [_Prompt(r, checked_prompt(r, self.prompt_ids, self.context_window)) for r in requests]
        return list(await asyncio.gather(*(p.future for p in self._generation.submit(prompts))))

    def _generate_batch(self, batch: list[Pending]) -> list[Completion | None]:
        """Decode one batch of requests, resuming each from its longest cached prompt prefix. A row
        whose caller left stops at the next step and gives None."""
        self.batches_run += 1
        self.rows_run += len(batch)
        prompts: list[_Prompt] = [p.item for p in batch]
        requests = [p.request for p in prompts]
        adapter_names = [self._ensure_adapter(r.adapter) if r.adapter else BASE for r in requests]
        rows = [DecodeRow(p.ids, p.request.sampling, name, self.prefix_cache.lookup(name, p.ids))
                for p, name in zip(prompts, adapter_names)]
        outputs = decode(self._model, rows, eos_ids=self._eos_ids, pad_id=self.tokenizer.pad_token_id,
                         use_adapters=bool(self._loaded_adapters), keep_states=self.prefix_cache.max_bytes > 0,
                         stats=self.decode_stats,
                         stopped=lambda i, new_ids: _stop_at(self.tokenizer.decode(new_ids), requests[i].sampling.stop) >= 0,
                         cancelled=lambda i: batch[i].gone.is_set(), int8_rows=self.int8_decode_rows)
        completions: list[Completion | None] = []
        for row, out, prompt in zip(rows, outputs, prompts):
            if out.finish_reason == CANCELLED:
                completions.append(None)
                continue
            if out.layers is not None:
                self.prefix_cache.store(row.adapter, *self._cacheable(out, len(row.ids)), resumed_from=row.prefix)
            completion = self._to_completion(out, prompt)
            record_latency(completion, self.model, prompt.request.adapter)
            completions.append(completion)
        return completions

    def _cacheable(self, out: DecodeOutput, prompt_tokens: int) -> tuple[list[int], list[tuple[Any, Any]]]:
        """The token ids and key/value states of ``out`` that may enter the prefix cache: all it read,
        or with int8 decoding only its prompt, so option scoring never resumes from int8 states."""
        if not self.int8_decode_rows:
            return out.read_ids, out.layers
        return (out.read_ids[:prompt_tokens],
                [(keys[:, :prompt_tokens].clone(), values[:, :prompt_tokens].clone()) for keys, values in out.layers])

    def _to_completion(self, out: DecodeOutput, prompt: _Prompt) -> Completion:
        text = self.tokenizer.decode(out.new_ids, skip_special_tokens=True)
        finish = out.finish_reason
        cut = _stop_at(text, prompt.request.sampling.stop)
        if cut >= 0:
            text, finish = text[:cut], "stop"
        return Completion(text=text.strip(), prompt_tokens=len(prompt.ids), completion_tokens=len(out.new_ids),
                          finish_reason=finish, first_token_s=out.first_token_at - prompt.queued_at,
                          after_first_s=out.last_token_at - out.first_token_at)

    # ----- option scoring -------------------------------------------------------------------
    async def score_batch(self, requests: Sequence[ScoreRequest],
                          return_exceptions: bool = False) -> list[OptionScores | BaseException]:
        """Score every request (see :meth:`cultura.engines.base.Engine.score_batch`); concurrent callers
        share batches. Each request is checked and tokenized before it joins the queue."""
        loop = asyncio.get_running_loop()
        prepared: list[_Scoring | BaseException] = []
        for r in requests:
            try:
                ids, options = checked_score_prompt(r, self.prompt_ids, self._option_ids, self.context_window)
            except Exception as exc:
                if not return_exceptions:
                    raise
                prepared.append(exc)
            else:
                prepared.append(_Scoring(r, ids, options))
        queued = iter(self._scoring.submit([p for p in prepared if isinstance(p, _Scoring) and p.options]))
        futures = []
        for p in prepared:
            if isinstance(p, _Scoring) and p.options:
                futures.append(next(queued).future)
                continue
            done = loop.create_future()
            if isinstance(p, BaseException):
                done.set_exception(p)
            else:
                done.set_result(OptionScores((), 0.0))
            futures.append(done)
        return list(await asyncio.gather(*futures, return_exceptions=return_exceptions))

    def _option_ids(self, option: str) -> list[int]:
        return list(self.tokenizer(option, add_special_tokens=False)["input_ids"])

    def _score_batch(self, batch: list[Pending]) -> list[OptionScores]:
        """Score one batch of requests (:func:`cultura.engines.scoring.score_rows`)."""
        jobs: list[_Scoring] = [p.item for p in batch]
        rows = [ScoreRow(j.ids, j.options, self._ensure_adapter(j.request.adapter) if j.request.adapter else BASE)
                for j in jobs]
        scores = score_rows(self._model, rows, self.prefix_cache, pad_id=self.tokenizer.pad_token_id,
                            use_adapters=bool(self._loaded_adapters), max_rows=self.config.max_batch_size,
                            stats=self.score_stats)
        return [OptionScores.from_logprobs(s, j.options) for s, j in zip(scores, jobs)]

    async def close(self) -> None:
        """Stop the batching tasks and free the model."""
        self._generation.close()
        self._scoring.close()
        self._executor.shutdown(wait=False)
        self._model = None


def _peft_safe_name(name: str) -> str:
    # peft module names cannot hold '.' or '/': a path-named adapter gets a stable safe alias
    import hashlib

    if all(c.isalnum() or c in "_-" for c in name):
        return name
    return "a" + hashlib.sha1(name.encode()).hexdigest()[:12]


def _stop_at(text: str, stops: Sequence[str]) -> int:
    """Where the first of ``stops`` begins in ``text`` (-1: none occurs)."""
    found = [i for i in (text.find(s) for s in stops) if i >= 0]
    return min(found) if found else -1


def _plain_kv_layers(model: Any) -> bool:
    """Whether every layer of ``model`` keeps plain, full-length key/values (no sliding window),
    which the prefix cache needs to cut a row's states out of a batch."""
    from transformers.cache_utils import DynamicCache, DynamicLayer

    try:
        layers = DynamicCache(config=model.config).layers
    except Exception:  # a model type the dynamic cache does not describe
        return False
    return bool(layers) and all(type(layer) is DynamicLayer for layer in layers)
