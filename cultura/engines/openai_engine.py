"""An engine over any OpenAI-compatible server: a vLLM server, a hosted model, or cultura's own endpoint.

The request's adapter, when given, is sent as the model name (vLLM serves LoRA adapters under
their names; cultura's endpoint serves ``culture/<name>`` and ``continent/<name>``). A repetition
penalty other than 1.0 is sent as ``repetition_penalty``, which vLLM's and cultura's servers take,
and a no-repeat n-gram size as ``no_repeat_ngram_size``, which cultura's server takes; hosted APIs
that refuse unknown fields need ``sampling.repetition_penalty: 1.0`` and ``sampling.no_repeat_ngram_size: 0``.
The answer-language check (:mod:`cultura.engines.rerank`) runs here, whatever the server.
"""

from __future__ import annotations

import asyncio
import math
import os
from collections.abc import Sequence
from typing import Any

from cultura.engines.base import (
    ChatRequest,
    Completion,
    OptionScores,
    ScoreRequest,
    ScoresThroughBatch,
    check_request,
    check_score_request,
)
from cultura.engines.rerank import generate_in_language
from cultura.errors import CulturaError

# Chat APIs return log-probabilities only for generated tokens, and at most 20 alternatives.
TOP_LOGPROBS = 20


class OpenAIEngine(ScoresThroughBatch):
    """Engine protocol over the OpenAI chat completions API, with retries and timeouts."""

    name = "openai"

    def __init__(self, config: Any, num_threads: int | None = None):
        """``config``: :class:`~cultura.config.schema.OpenAIEngineConfig`. ``num_threads`` is taken for
        :func:`~cultura.engines.create_engine`'s one signature and unused: the server does the work."""
        from openai import AsyncOpenAI

        self.config = config
        self.model = config.model
        api_key = os.environ.get(config.api_key_env) or "not-needed-for-local-servers"
        self._client = AsyncOpenAI(base_url=config.base_url, api_key=api_key, timeout=config.timeout_s,
                                   max_retries=config.max_retries)
        self._adapters: dict[str, str] = dict(config.adapters)
        self._limit = asyncio.Semaphore(config.max_batch_size * 4)

    def add_adapter(self, name: str, path: str) -> None:
        """Remember an adapter name; the server must already serve it as a model."""
        self._adapters[name] = path

    def adapters(self) -> list[str]:
        """Adapter names known to this engine."""
        return sorted(self._adapters)

    async def generate(self, requests: Sequence[ChatRequest]) -> list[Completion]:
        """Send every request concurrently (bounded) and return the completions in order. An answer
        out of its ``sampling.language`` is replaced (:mod:`cultura.engines.rerank`), here, client side."""
        return await generate_in_language(self._generate_once, requests)

    async def _generate_once(self, requests: Sequence[ChatRequest]) -> list[Completion]:
        for r in requests:
            check_request(r)
        return list(await asyncio.gather(*(self._one(r) for r in requests)))

    async def _one(self, request: ChatRequest) -> Completion:
        from openai import APIError

        s = request.sampling
        kwargs: dict[str, Any] = dict(model=request.adapter or self.model, messages=list(map(dict, request.messages)),
                                      max_tokens=s.max_tokens, temperature=s.temperature, top_p=s.top_p)
        if s.seed is not None:
            kwargs["seed"] = s.seed
        if s.stop:
            kwargs["stop"] = list(s.stop)
        extra: dict[str, Any] = {}
        if s.repetition_penalty != 1.0:  # not an OpenAI field: vLLM's and cultura's servers take it
            extra["repetition_penalty"] = s.repetition_penalty
        if s.no_repeat_ngram_size:  # not an OpenAI field: cultura's server takes it
            extra["no_repeat_ngram_size"] = s.no_repeat_ngram_size
        if extra:
            kwargs["extra_body"] = extra
        async with self._limit:
            try:
                response = await self._client.chat.completions.create(**kwargs)
            except APIError as exc:
                raise CulturaError(f"OpenAI-compatible server at {self.config.base_url} failed: {exc}") from None
        choice = response.choices[0]
        usage = response.usage
        return Completion(text=(choice.message.content or "").strip(),
                          prompt_tokens=usage.prompt_tokens if usage else 0,
                          completion_tokens=usage.completion_tokens if usage else 0,
                          finish_reason="length" if choice.finish_reason == "length" else "stop")

    async def score_batch(self, requests: Sequence[ScoreRequest],
                          return_exceptions: bool = False) -> list[OptionScores | BaseException]:
        """Score every request, each checked on its own, all sent concurrently (bounded): the
        log-probability of each option's first token in the server's next-token distribution.

        Chat APIs expose only generated-token log-probabilities, so this is exact for single-token
        options (the 1-5 survey scales) and a first-token approximation otherwise. An option whose
        first token is not among the top alternatives gets the lowest returned log-probability
        minus log(2), a bound rather than an invented value. The valid mass sums the probabilities of
        the options found among the alternatives only (a lower bound: the bounded ones add nothing).
        """
        async def one(request: ScoreRequest) -> OptionScores:
            check_score_request(request)
            return await self._score(request)

        if not return_exceptions:
            for r in requests:
                check_score_request(r)
        return list(await asyncio.gather(*(one(r) for r in requests), return_exceptions=return_exceptions))

    async def _score(self, request: ScoreRequest) -> OptionScores:
        if not request.options:
            return OptionScores((), 0.0)
        async with self._limit:
            response = await self._client.chat.completions.create(
                model=request.adapter or self.model, messages=list(map(dict, request.messages)), max_tokens=1,
                temperature=0, logprobs=True, top_logprobs=TOP_LOGPROBS)
        content = response.choices[0].logprobs.content if response.choices[0].logprobs else None
        if not content:
            from cultura.errors import CulturaError

            raise CulturaError(f"server at {self.config.base_url} returned no log-probabilities")
        top = {alt.token.strip(): alt.logprob for alt in content[0].top_logprobs}
        floor = min(top.values()) - math.log(2)
        scores, found = [], set()
        for option in request.options:
            first = next((tok for tok in top if tok and option.strip().startswith(tok)), None)
            scores.append(top[first] if first is not None else floor)
            if first is not None:
                found.add(first)
        return OptionScores(tuple(scores), min(1.0, sum(math.exp(top[tok]) for tok in found)))

    async def close(self) -> None:
        """Close the HTTP client."""
        await self._client.close()
