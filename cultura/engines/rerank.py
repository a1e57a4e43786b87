"""Answers in the requested language: an answer in another language is replaced by a reranked candidate.

A small model told to "reply in English" while role-playing a Brazilian still answers in Portuguese
now and then (on the default model: 2 of 24 persona answers with the best prompt wording found,
4 of 24 with the earlier one; bench/language.py). Prompt wording alone does not hold (telling it
again at the end of the question made it worse: 7 of 24), so the
engines check the answer: a request whose ``sampling.language`` is set and whose answer the detector
places in another language gets ``language_candidates - 1`` more answers, sampled (at least at
``RETRY_TEMPERATURE``) with seeds derived from its own, in one batch with every other such request;
the first candidate in the language wins, else the one the detector finds most likely to be in it.
An answer already in the language costs nothing more; one out of it costs ``language_candidates - 1``
more generations, counted in ``ray_cultura_engine_language_reasks_total`` and
``ray_cultura_engine_language_candidates_total`` (a rate near the answers' rate means most answers are
re-asked: a model that rarely answers in the language, or text in none, such as a random model's).
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace

from cultura.engines.base import ChatRequest, Completion
from cultura.language import is_in_language, language_probability
from cultura.metrics import Metrics, counter

RETRY_TEMPERATURE = 0.7  # the configured sampling temperature: greedy requests retry with samples

RERANK_METRICS = Metrics([
    counter("engine_language_reasks", "Answers detected out of the asked language, re-asked", ("language",)),
    counter("engine_language_candidates", "Extra candidates generated for answers out of the asked language",
            ("language",)),
])


def candidate(request: ChatRequest, k: int) -> ChatRequest:
    """The ``k``-th extra candidate of ``request``: sampled, seeded from its seed and ``k``, unchecked."""
    s = request.sampling
    seed = None if s.seed is None else int.from_bytes(hashlib.sha1(f"{s.seed}:{k}".encode()).digest()[:4], "big")
    return replace(request, sampling=replace(s, temperature=max(s.temperature, RETRY_TEMPERATURE), seed=seed,
                                             language=None))


def best_in_language(completions: Sequence[Completion], language: str) -> Completion:
    """The first of ``completions`` in ``language``, else the one most likely in it."""
    for completion in completions:
        if is_in_language(completion.text, language):
            return completion
    return max(completions, key=lambda c: language_probability(c.text, language))


async def generate_in_language(generate: Callable[[Sequence[ChatRequest]], Awaitable[Sequence[Completion]]],
                               requests: Sequence[ChatRequest]) -> list[Completion]:
    """``generate(requests)``, with every answer out of its request's ``sampling.language`` replaced
    as the module docstring says; the i-th completion answers the i-th request."""
    completions = list(await generate(requests))
    retry = [i for i, (r, c) in enumerate(zip(requests, completions))
             if r.sampling.language and r.sampling.language_candidates > 1
             and not is_in_language(c.text, r.sampling.language)]
    if not retry:
        return completions
    extra = [(i, candidate(requests[i], k)) for i in retry for k in range(1, requests[i].sampling.language_candidates)]
    for i in retry:
        sampling = requests[i].sampling
        RERANK_METRICS.inc("engine_language_reasks", language=sampling.language)
        RERANK_METRICS.inc("engine_language_candidates", sampling.language_candidates - 1, language=sampling.language)
    answers = list(await generate([r for _, r in extra]))
    for i in retry:
        pool = [completions[i]] + [a for (j, _), a in zip(extra, answers) if j == i]
        completions[i] = best_in_language(pool, requests[i].sampling.language)
    return completions
