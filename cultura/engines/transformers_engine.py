"""The CPU default engine: Hugging Face transformers with an asyncio micro-batcher and peft LoRA.

Concurrent ``generate`` calls are gathered for up to ``batch_wait_ms`` (or until ``max_batch_size``
requests wait), grouped by compatible sampling settings, left-padded and run as one ``generate``
call. Batches may mix adapters: peft applies a different LoRA (or none) to each row. All model work
runs on one worker thread so torch never competes with itself for the CPUs.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from cultura.engines.adapters import resolve_adapter
from cultura.engines.base import ChatRequest, Completion, Message, validate_messages
from cultura.engines.packed_linear import pack_linear_layers

BASE = "__base__"  # peft's name for "no adapter" in mixed-adapter batches


def available_cpus() -> int:
    """CPUs this process may run on (respects affinity masks and Ray's CPU pinning)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


@dataclass
class _Pending:
    request: ChatRequest
    future: asyncio.Future = field(repr=False)


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
        self.packed_layers = pack_linear_layers(self._model) if config.packed_linear else 0
        self._known_adapters: dict[str, str] = known_adapters(config)  # registry names + config.adapters
        self._loaded_adapters: set[str] = set()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cultura-engine")
        self._queue: asyncio.Queue[_Pending] | None = None
        self._worker: asyncio.Task | None = None
        self.batches_run = 0

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

    # ----- generation -----------------------------------------------------------------------
    async def generate(self, requests: Sequence[ChatRequest]) -> list[Completion]:
        """Complete every request; concurrent callers share batches."""
        for r in requests:
            validate_messages(r.messages)
        if self._worker is None or self._worker.done():
            self._queue = asyncio.Queue()
            self._worker = asyncio.get_running_loop().create_task(self._batch_loop())
        loop = asyncio.get_running_loop()
        pending = [_Pending(r, loop.create_future()) for r in requests]
        for p in pending:
            self._queue.put_nowait(p)
        return list(await asyncio.gather(*(p.future for p in pending)))

    async def _batch_loop(self) -> None:
        queue = self._queue
        wait_s = self.config.batch_wait_ms / 1000.0
        while True:
            first = await queue.get()
            batch = [first]
            deadline = asyncio.get_running_loop().time() + wait_s
            while len(batch) < self.config.max_batch_size:
                timeout = deadline - asyncio.get_running_loop().time()
                if timeout <= 0:
                    while not queue.empty() and len(batch) < self.config.max_batch_size:
                        batch.append(queue.get_nowait())
                    break
                try:
                    batch.append(await asyncio.wait_for(queue.get(), timeout))
                except asyncio.TimeoutError:
                    break
            for group in _group_by_sampling(batch):
                try:
                    results = await asyncio.get_running_loop().run_in_executor(
                        self._executor, self._generate_batch, [p.request for p in group]
                    )
                except Exception as exc:  # deliver the failure to every caller of this group
                    for p in group:
                        if not p.future.done():
                            p.future.set_exception(exc)
                    continue
                for p, result in zip(group, results):
                    if not p.future.done():
                        p.future.set_result(result)

    def _generate_batch(self, requests: list[ChatRequest]) -> list[Completion]:
        """Run one left-padded ``generate`` over requests that share sampling settings."""
        import torch

        self.batches_run += 1
        adapter_names = [self._ensure_adapter(r.adapter) if r.adapter else BASE for r in requests]
        prompts = [self.render(r.messages) for r in requests]
        enc = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        sampling = requests[0].sampling
        max_new = max(r.sampling.max_tokens for r in requests)
        kwargs: dict[str, Any] = dict(
            max_new_tokens=max_new,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.tokenizer.eos_token_id,
        )
        if sampling.greedy:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        else:
            kwargs.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p, top_k=0)
            seeds = [r.sampling.seed for r in requests if r.sampling.seed is not None]
            if seeds:  # reproducible for the same batch composition
                torch.manual_seed(hash(tuple(seeds)) & 0x7FFFFFFF)
        if sampling.stop:
            kwargs.update(stop_strings=list(sampling.stop), tokenizer=self.tokenizer)
        if self._loaded_adapters:
            kwargs["adapter_names"] = adapter_names
        with torch.inference_mode():
            out = self._model.generate(**enc, **kwargs)
        prompt_width = enc["input_ids"].shape[1]
        completions = []
        for i, r in enumerate(requests):
            new_ids = out[i, prompt_width:].tolist()[: r.sampling.max_tokens]
            completions.append(self._to_completion(new_ids, int(enc["attention_mask"][i].sum()), r))
        return completions

    def _to_completion(self, new_ids: list[int], prompt_tokens: int, request: ChatRequest) -> Completion:
        eos = self.tokenizer.eos_token_id
        stops = {eos} if isinstance(eos, int) else set(eos or [])
        finish = "length"
        for j, tok in enumerate(new_ids):
            if tok in stops:
                new_ids, finish = new_ids[:j], "stop"
                break
        text = self.tokenizer.decode(new_ids, skip_special_tokens=True)
        for s in request.sampling.stop:
            cut = text.find(s)
            if cut >= 0:
                text, finish = text[:cut], "stop"
        return Completion(text=text.strip(), prompt_tokens=prompt_tokens, completion_tokens=len(new_ids),
                          finish_reason=finish)

    # ----- option scoring -------------------------------------------------------------------
    async def score_options(
        self, messages: Sequence[Message], options: Sequence[str], adapter: str | None = None
    ) -> list[float]:
        """Sum of token log-probabilities of each option as the assistant's reply to ``messages``."""
        validate_messages(messages)
        if not options:
            return []
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._score, list(messages), list(options), adapter)

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


def _peft_safe_name(name: str) -> str:
    # peft module names cannot hold '.' or '/': a path-named adapter gets a stable safe alias
    import hashlib

    if all(c.isalnum() or c in "_-" for c in name):
        return name
    return "a" + hashlib.sha1(name.encode()).hexdigest()[:12]


def _group_by_sampling(batch: list[_Pending]) -> list[list[_Pending]]:
    """Split a batch into groups that one ``generate`` call can serve together."""
    groups: dict[tuple, list[_Pending]] = {}
    for p in batch:
        s = p.request.sampling
        key = ("greedy",) if s.greedy else ("sample", s.temperature, s.top_p)
        groups.setdefault(key + (s.stop,), []).append(p)
    return list(groups.values())
