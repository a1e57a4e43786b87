"""The CPU default engine: Hugging Face transformers with an asyncio micro-batcher and peft LoRA.

Concurrent ``generate`` calls are gathered for up to ``batch_wait_ms`` (or until ``max_batch_size``
requests wait) and run as one batch by :func:`cultura.engines.decode.decode`: each row with its own
sampling settings, resumed from the longest prefix of its prompt whose key/value states the engine
still holds (:mod:`cultura.engines.prefix_cache`; a dialogue's next turn re-reads only the new
messages). Batches may mix adapters: peft applies a different LoRA (or none) to each row. All
model work runs on one worker thread so torch never competes with itself for the CPUs.

One request fails alone: each is checked and tokenized when it arrives (a bad value, text that is
not UTF-8, or a prompt that with ``max_tokens`` overflows the model's context window is refused at
once), and a batch that still fails is run again one request at a time. A request whose caller
went away (its awaiting task was cancelled: a client hung up, a deadline passed) leaves the queue,
or the decode loop at its next step.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from cultura.engines.adapters import resolve_adapter
from cultura.engines.base import ChatRequest, Completion, Message, OptionScores, checked_prompt, validate_messages
from cultura.engines.decode import CANCELLED, DecodeOutput, DecodeRow, DecodeStats, decode
from cultura.engines.packed_linear import pack_linear_layers
from cultura.engines.prefix_cache import PrefixCache

BASE = "__base__"  # peft's name for "no adapter" in mixed-adapter batches
log = logging.getLogger(__name__)


def available_cpus() -> int:
    """CPUs this process may run on (respects affinity masks and Ray's CPU pinning)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


@dataclass
class _Pending:
    """A request in the queue: its prompt's token ids, the caller's future, and a flag the decode
    thread reads to drop the row once the caller is gone."""

    request: ChatRequest
    ids: list[int]
    future: asyncio.Future = field(repr=False)
    gone: threading.Event = field(default_factory=threading.Event, repr=False)

    def watch(self) -> None:
        """Raise the ``gone`` flag when the future is cancelled (the caller went away)."""
        self.future.add_done_callback(lambda f: self.gone.set() if f.cancelled() else None)


class TransformersEngine:
    """Engine protocol on transformers; see the module docstring for how batching works."""

    name = "transformers"

    def __init__(self, config: Any, num_threads: int | None = None):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from cultura.models import resolve_model
        from cultura.registry import known_adapters

        self.config = config
        self.model = config.model
        self.num_threads = max(1, num_threads or available_cpus())
        torch.set_num_threads(self.num_threads)
        path = resolve_model(config.model)
        dtype = getattr(torch, config.dtype)
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
        eos = self.tokenizer.eos_token_id
        self._eos_ids = {eos} if isinstance(eos, int) else set(eos or [])
        cache_bytes = config.prefix_cache_mb * 1024 * 1024 if _plain_kv_layers(self._model) else 0
        self.prefix_cache = PrefixCache(cache_bytes)
        self._known_adapters: dict[str, str] = known_adapters(config)  # registry names + config.adapters
        self._loaded_adapters: set[str] = set()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cultura-engine")
        self._queue: asyncio.Queue[_Pending] | None = None
        self._worker: asyncio.Task | None = None
        self.batches_run = 0
        self.rows_run = 0
        self.rows_cancelled = 0  # requests dropped from the queue or the decode loop: their callers left
        self.batches_retried = 0  # failed batches run again one request at a time
        self.decode_stats = DecodeStats()

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
        it joins the queue; cancelling the call drops its requests from the queue and the decode loop."""
        prompts = [checked_prompt(r, self.prompt_ids, self.context_window) for r in requests]
        if self._worker is None or self._worker.done():
            self._queue = asyncio.Queue()
            self._worker = asyncio.get_running_loop().create_task(self._batch_loop())
        loop = asyncio.get_running_loop()
        pending = [_Pending(r, ids, loop.create_future()) for r, ids in zip(requests, prompts)]
        for p in pending:
            p.watch()
            self._queue.put_nowait(p)
        return list(await asyncio.gather(*(p.future for p in pending)))

    def _live(self, batch: list[_Pending]) -> list[_Pending]:
        """The requests of ``batch`` whose callers still wait (the others are counted as cancelled)."""
        live = [p for p in batch if not p.future.done()]
        self.rows_cancelled += len(batch) - len(live)
        return live

    async def _batch_loop(self) -> None:
        queue = self._queue
        wait_s = self.config.batch_wait_ms / 1000.0
        loop = asyncio.get_running_loop()
        while True:
            batch = self._live([await queue.get()])
            deadline = loop.time() + wait_s
            while len(batch) < self.config.max_batch_size:
                timeout = deadline - loop.time()
                if timeout <= 0:
                    while not queue.empty() and len(batch) < self.config.max_batch_size:
                        batch += self._live([queue.get_nowait()])
                    break
                try:
                    batch += self._live([await asyncio.wait_for(queue.get(), timeout)])
                except asyncio.TimeoutError:
                    break
            batch = self._live(batch)
            if not batch:
                continue
            try:
                results = await loop.run_in_executor(self._executor, self._generate_batch, batch)
            except Exception as exc:
                if len(batch) == 1:
                    _settle(batch[0], exc=exc)
                    continue
                # one request may have failed them all: each alone, so only the culprit fails
                log.warning("a batch of %d requests failed (%s); running each alone", len(batch), exc)
                self.batches_retried += 1
                for p in self._live(batch):
                    try:
                        [result] = await loop.run_in_executor(self._executor, self._generate_batch, [p])
                    except Exception as alone:
                        _settle(p, exc=alone)
                    else:
                        _settle(p, result)
                continue
            for p, result in zip(batch, results):
                _settle(p, result)

    def _generate_batch(self, batch: list[_Pending]) -> list[Completion | None]:
        """Decode one batch of requests, resuming each from its longest cached prompt prefix. A row
        whose caller left stops at the next step and gives None."""
        self.batches_run += 1
        self.rows_run += len(batch)
        requests = [p.request for p in batch]
        adapter_names = [self._ensure_adapter(r.adapter) if r.adapter else BASE for r in requests]
        rows = [DecodeRow(p.ids, p.request.sampling, name, self.prefix_cache.lookup(name, p.ids))
                for p, name in zip(batch, adapter_names)]
        outputs = decode(self._model, rows, eos_ids=self._eos_ids, pad_id=self.tokenizer.pad_token_id,
                         use_adapters=bool(self._loaded_adapters), keep_states=self.prefix_cache.max_bytes > 0,
                         stats=self.decode_stats,
                         stopped=lambda i, new_ids: _stop_at(self.tokenizer.decode(new_ids), requests[i].sampling.stop) >= 0,
                         cancelled=lambda i: batch[i].gone.is_set())
        completions: list[Completion | None] = []
        for row, out, r in zip(rows, outputs, requests):
            if out.finish_reason == CANCELLED:
                self.rows_cancelled += 1
                completions.append(None)
                continue
            if out.layers is not None:
                self.prefix_cache.store(row.adapter, out.read_ids, out.layers, resumed_from=row.prefix)
            completions.append(self._to_completion(out, len(row.ids), r))
        return completions

    def _to_completion(self, out: DecodeOutput, prompt_tokens: int, request: ChatRequest) -> Completion:
        text = self.tokenizer.decode(out.new_ids, skip_special_tokens=True)
        finish = out.finish_reason
        cut = _stop_at(text, request.sampling.stop)
        if cut >= 0:
            text, finish = text[:cut], "stop"
        return Completion(text=text.strip(), prompt_tokens=prompt_tokens, completion_tokens=len(out.new_ids),
                          finish_reason=finish)

    # ----- option scoring -------------------------------------------------------------------
    async def score_options(
        self, messages: Sequence[Message], options: Sequence[str], adapter: str | None = None
    ) -> OptionScores:
        """Sum of token log-probabilities of each option as the assistant's reply to ``messages``, with
        the summed probability of the options as the valid mass."""
        validate_messages(messages)
        if not options:
            return OptionScores((), 0.0)
        loop = asyncio.get_running_loop()
        logprobs = await loop.run_in_executor(self._executor, self._score, list(messages), list(options), adapter)
        return OptionScores.from_logprobs(logprobs)

    def _score(self, messages: list[Message], options: list[str], adapter: str | None) -> list[float]:
        import torch

        prompt_ids = self.tokenizer(self.render(messages), add_special_tokens=False)["input_ids"]
        option_ids = [self.tokenizer(o, add_special_tokens=False)["input_ids"] for o in options]
        # Single-token options (the 1-5 survey scales) all read the same next-token distribution:
        # one row with the prompt alone replaces one row per option.
        rows = [prompt_ids] if all(len(ids) == 1 for ids in option_ids) else [prompt_ids + ids for ids in option_ids]
        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
        kwargs: dict[str, Any] = {}
        if adapter:
            kwargs["adapter_names"] = [self._ensure_adapter(adapter)] * len(rows)
        elif self._loaded_adapters:
            kwargs["adapter_names"] = [BASE] * len(rows)
        with torch.inference_mode():
            logits = self._model(input_ids=input_ids, attention_mask=mask, **kwargs).logits.float()
        logprobs = torch.log_softmax(logits, dim=-1)
        start = len(prompt_ids)
        scores = []
        for i, ids in enumerate(option_ids):
            row = 0 if len(rows) == 1 else i
            positions = torch.arange(start - 1, start - 1 + len(ids))
            scores.append(float(logprobs[row, positions, torch.tensor(ids)].sum()))
        return scores

    async def close(self) -> None:
        """Stop the batching task and free the model."""
        if self._worker is not None:
            self._worker.cancel()
            self._worker = None
        self._executor.shutdown(wait=False)
        self._model = None


def _settle(pending: _Pending, result: Completion | None = None, exc: BaseException | None = None) -> None:
    """Hand ``result`` (or ``exc``) to the caller, unless it has gone."""
    if pending.future.done():
        return
    if exc is not None:
        pending.future.set_exception(exc)
    elif result is not None:
        pending.future.set_result(result)


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
