"""The Ray Serve deployments of the Cultural Palette graph (the HTTP ingress is in ``ingress.py``).

    Ingress -> Gate                      (Cultural MoE weights; holds the sentence embedder)
            -> MetaAgent -> ContinentAgent_<Continent> x5   (drafts in parallel, then the blend)
            -> ContinentAgent_<Continent> (model ``continent/<name>``)
            -> CultureAgent              (model ``culture/<key>``, multiplexed by culture)
    every agent ---------------------> Engine   (model ``base`` too)

**Where the model lives.** One ``Engine`` deployment holds the model and every adapter. With
``placement: shared`` (the default on one machine) the agents are light replicas that call it
through a DeploymentHandle, so drafts of all continents, the Meta Agent and the culture agents land
in the engine's batcher together: on two CPUs one model copy batching five callers beats five copies
fighting for the cores. The drafts reach the engine through separate replicas, milliseconds apart, so
the Engine deployment widens the engine's batching window (``serve.engine_batch_wait_ms``) for them
to share one batch. With ``placement: dedicated`` (the cluster profile) each ContinentAgent and
CultureAgent replica owns an engine and asks for its own resources (``num_gpus: 1`` per replica), so
every continent scales on its own GPUs; the Engine deployment then serves only the Meta Agent and ``base``.

**Culture agents are one multiplexed deployment** (``@serve.multiplexed``, model id = culture key)
rather than one deployment per culture: any of ~120 cultures (the eight CulturePark ones and every
Hofstede country) can be asked for, while their LoRA adapters are small and share one base model.
Serve routes a culture's requests to replicas that already hold its adapter, each replica keeps up to
``serve.culture_models_per_replica`` cultures, and the pool autoscales as one; one deployment per
culture would hold a mostly idle base model per culture.

**Failure tolerance.** The Meta Agent awaits each draft with ``serve.draft_timeout_s``; a continent
agent that fails, dies or times out is left out, the answer is built from the remaining drafts and
the response names the missing continents with the reason (an internal error's text stays in the
log). Serve replaces dead replicas. A draft that times out, or whose request's client left, is
cancelled down to the engine, which drops its row from the decode loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

from ray import serve

from cultura.engines import create_engine, describe
from cultura.engines.base import ChatRequest, Completion, InvalidRequest, checked_prompt, failure_reason
from cultura.errors import CulturaError
from cultura.palette.meta import aggregation_messages, draft_messages, final_answer, meta_persona
from cultura.palette.palette import GateHost
from cultura.personas import continent_persona, culture_persona
from cultura.sampling import SamplingParams
from cultura.serve.cancel import Calls, cancel_in
from cultura.serve.metrics import SERVE_METRICS
from cultura.serve.openai_api import Conversation

log = logging.getLogger("ray.serve")


class NoDraftsError(CulturaError):
    """Every chosen continent agent failed or timed out: there is nothing to blend (HTTP 503)."""


class EngineClient:
    """The engine an agent replica uses: its own (dedicated placement) or the Engine deployment's."""

    def __init__(self, handle: Any = None, engine_config: Any = None, num_threads: int | None = None):
        self._handle, self._engine = handle, None
        if engine_config is not None:
            from cultura.engines import create_engine

            self._engine = create_engine(engine_config, num_threads=num_threads)

    async def generate(self, requests: Sequence[ChatRequest], request_id: str | None = None) -> list[Completion]:
        """Complete the requests (see :meth:`cultura.engines.base.Engine.generate`) as part of the
        HTTP request ``request_id`` (see :mod:`cultura.serve.cancel`)."""
        if self._engine is not None:
            return await self._engine.generate(list(requests))
        return await self._handle.generate.remote(list(requests), request_id)

    async def one(self, messages: list[dict[str, str]], sampling: SamplingParams, adapter: str | None,
                  request_id: str | None = None) -> Completion:
        """Complete one chat."""
        [completion] = await self.generate([ChatRequest(tuple(messages), sampling, adapter)], request_id)
        return completion


@serve.deployment(name="Engine")
class EngineDeployment:
    """The model (and its adapters) behind one engine; concurrent calls share batches."""

    def __init__(self, engine_config: Any, num_threads: int | None = None):
        self.engine = create_engine(engine_config, num_threads=num_threads)
        self.calls = Calls()

    async def generate(self, requests: list[ChatRequest], request_id: str | None = None) -> list[Completion]:
        """Complete the requests (part of the HTTP request ``request_id``, when given)."""
        with self.calls.track(request_id):
            return await self.engine.generate(requests)

    def cancel(self, request_id: str) -> int:
        """Cancel the calls of ``request_id`` (the engine drops their rows); see :mod:`cultura.serve.cancel`."""
        return self.calls.cancel(request_id)

    def measure(self, messages: list[dict[str, str]]) -> tuple[int | None, int | None]:
        """``(prompt tokens, context window)`` of ``messages`` as the model reads them (chat template
        included); ``(None, None)`` for an engine without a local tokenizer (``openai``)."""
        prompt_ids = getattr(self.engine, "prompt_ids", None)
        if prompt_ids is None:
            return None, None
        request = ChatRequest(tuple(messages), SamplingParams(max_tokens=1))
        return len(checked_prompt(request, prompt_ids, None)), getattr(self.engine, "context_window", None)

    def info(self) -> dict[str, Any]:
        """What :func:`cultura.engines.describe` says of the engine."""
        return describe(self.engine)


@serve.deployment(name="Gate")
class Gate:
    """The Cultural MoE gate with its sentence embedder; concurrent decisions share one embedding call."""

    def __init__(self, palette_config: Any):
        self.host = GateHost(palette_config)  # loads the embedder now

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.002)
    async def decide(self, items: list[tuple[str, str | None]]) -> list[Any]:
        """The gate's decision (:class:`~cultura.palette.gate.GateDecision`) for ``(prompt, country)``."""
        decisions = await asyncio.to_thread(self.host.weights_many, [p for p, _ in items], [c for _, c in items])
        for d in decisions:
            for continent, weight in d.weights.items():
                SERVE_METRICS.observe("serve_gate_weight", weight, continent=continent)
        return decisions


@serve.deployment
class ContinentAgent:
    """One Cultural Palette continent agent: the continent persona and its adapter (if any)."""

    def __init__(self, continent: str, adapter: str | None, engine: Any, engine_config: Any = None,
                 num_threads: int | None = None):
        self.persona = continent_persona(continent, adapter)
        self.continent = self.persona.key.split(":", 1)[1]
        self.client = EngineClient(engine, engine_config, num_threads)
        self.calls = Calls()

    async def draft(self, conv: Conversation, country: str | None, sampling: SamplingParams,
                    request_id: str | None = None) -> Completion:
        """This continent's draft answer to the conversation's question (for a target country)."""
        with self.calls.track(request_id):
            start = time.perf_counter()
            messages = conv.frame(draft_messages(conv.prompt, self.continent, country, sampling.language or "English"))
            completion = await self.client.one(messages, sampling, self.persona.adapter, request_id)
            SERVE_METRICS.observe("serve_stage_seconds", time.perf_counter() - start, stage="draft",
                                  continent=self.continent)
            return completion

    def cancel(self, request_id: str) -> int:
        """Cancel the drafts of ``request_id``; see :mod:`cultura.serve.cancel`."""
        return self.calls.cancel(request_id)


@serve.deployment
class CultureAgent:
    """CulturePark culture agents, multiplexed by culture key (see the module docstring)."""

    def __init__(self, adapters: dict[str, str], engine: Any, engine_config: Any = None,
                 num_threads: int | None = None, models_per_replica: int = 8):
        self.adapters = dict(adapters)
        self.client = EngineClient(engine, engine_config, num_threads)
        self.calls = Calls()

        async def load_culture(culture: str) -> Any:  # Serve keeps its LRU cache on a plain function
            return await self._persona(culture)

        self._load = serve.multiplexed(max_num_models_per_replica=models_per_replica)(load_culture)

    async def _persona(self, culture: str) -> Any:
        """Load a culture: its persona and adapter; the adapter is warmed with a one-token call so the
        first real request does not pay for loading it."""
        persona = culture_persona(culture).with_adapter(self.adapters.get(culture))
        if persona.adapter:
            await self.client.one(persona.messages("Hello"), SamplingParams(max_tokens=1), persona.adapter)
        return persona

    async def respond(self, conv: Conversation, sampling: SamplingParams, request_id: str | None = None) -> Completion:
        """The culture agent's answer, in ``sampling.language``; the culture is the request's
        multiplexed model id."""
        with self.calls.track(request_id):
            loaded = await self._load(serve.get_multiplexed_model_id())
            persona = culture_persona(loaded.culture, language=sampling.language or "English")
            return await self.client.one(conv.frame(persona.messages(conv.prompt)), sampling, loaded.adapter,
                                         request_id)

    def cancel(self, request_id: str) -> int:
        """Cancel the answers of ``request_id``; see :mod:`cultura.serve.cancel`."""
        return self.calls.cancel(request_id)


@serve.deployment
class MetaAgent:
    """The Meta Agent: fans the question out to the gate's chosen continent agents, then blends.

    ``aggregate``: the drafts run in parallel and the Meta Agent writes one answer from them
    (self-regulated aggregation and final decision). ``select``: only the top continent drafts and its
    draft is the answer.
    """

    def __init__(self, agents: dict[str, Any], engine: Any, blend: str, draft_timeout_s: float):
        self.agents, self.blend, self.draft_timeout_s = dict(agents), blend, float(draft_timeout_s)
        self.engine = engine
        self.client = EngineClient(engine)
        self.calls = Calls()

    async def _draft(self, continent: str, conv: Conversation, country: str | None, sampling: SamplingParams,
                     request_id: str | None) -> Completion:
        part = f"{request_id}/{continent}" if request_id else None
        try:
            return await asyncio.wait_for(self.agents[continent].draft.remote(conv, country, sampling, part),
                                          timeout=self.draft_timeout_s)
        except asyncio.TimeoutError:
            if part:  # stop the late draft's work too, not only the wait for it
                cancel_in([self.agents[continent], self.engine], part)
            raise

    async def collect_drafts(self, continents: Sequence[str], conv: Conversation, country: str | None,
                             sampling: SamplingParams,
                             request_id: str | None = None) -> tuple[dict[str, Completion], dict[str, str]]:
        """Drafts of ``continents`` in parallel: ``(completions, missing)``, ``missing`` mapping each
        continent that failed or timed out to the reason."""
        results = await asyncio.gather(*(self._draft(c, conv, country, sampling, request_id) for c in continents),
                                       return_exceptions=True)
        drafts, missing = {}, {}
        for continent, result in zip(continents, results):
            if isinstance(result, Completion):
                drafts[continent] = result
                continue
            if isinstance(result, asyncio.CancelledError):  # the request itself was cancelled
                raise result
            missing[continent] = draft_failure(continent, result, self.draft_timeout_s)
            SERVE_METRICS.inc("serve_drafts_skipped", continent=continent,
                              reason="timeout" if isinstance(result, asyncio.TimeoutError) else "error")
        if not drafts:
            refused = [r for r in results if isinstance(invalid_request(r), InvalidRequest)]
            if refused and len(refused) == len(results):  # the request's own fault: say so (HTTP 400)
                raise invalid_request(refused[0])
        return drafts, missing

    def cancel(self, request_id: str) -> int:
        """Cancel the answers of ``request_id``; see :mod:`cultura.serve.cancel`."""
        return self.calls.cancel(request_id)

    async def respond(self, conv: Conversation, decision: Any, draft_sampling: SamplingParams,
                      meta_sampling: SamplingParams, request_id: str | None = None) -> dict[str, Any]:
        """Answer for a gate decision: ``text``, ``finish_reason``, ``final`` (the completion the
        text came from: the blend, or with ``select`` the top draft), ``drafts`` (continent -> text),
        ``missing`` (continent -> reason), ``timings`` (seconds), ``usage`` (prompt, completion tokens
        over every model call)."""
        with self.calls.track(request_id):
            return await self._respond(conv, decision, draft_sampling, meta_sampling, request_id)

    async def _respond(self, conv: Conversation, decision: Any, draft_sampling: SamplingParams,
                       meta_sampling: SamplingParams, request_id: str | None) -> dict[str, Any]:
        drafting = decision.selected[:1] if self.blend == "select" else decision.selected
        for continent, weight in decision.weights.items():
            if continent not in drafting:
                SERVE_METRICS.inc("serve_drafts_skipped", continent=continent, reason="not_selected")
        start = time.perf_counter()
        drafts, missing = await self.collect_drafts(drafting, conv, decision.country, draft_sampling, request_id)
        timings = {"drafts_s": time.perf_counter() - start}
        SERVE_METRICS.observe("serve_stage_seconds", timings["drafts_s"], stage="drafts")
        if not drafts:
            raise NoDraftsError("no continent agent answered: " + "; ".join(f"{c} {r}" for c, r in missing.items()))
        calls = list(drafts.values())
        if self.blend == "select":
            final = drafts[drafting[0]]
        else:
            t = time.perf_counter()
            chat = aggregation_messages(conv.prompt, {c: d.text for c, d in drafts.items()}, decision.weights,
                                        decision.country, language=meta_sampling.language or "English")
            final = await self.client.one(chat, meta_sampling, meta_persona().adapter, request_id)
            calls.append(final)
            timings["aggregate_s"] = time.perf_counter() - t
            SERVE_METRICS.observe("serve_stage_seconds", timings["aggregate_s"], stage="aggregate")
        text = final_answer(final.text, conv.prompt, {c: d.text for c, d in drafts.items()}, decision.weights,
                            decision.country)
        return {"text": text, "finish_reason": final.finish_reason, "final": final,
                "drafts": {c: d.text for c, d in drafts.items()}, "missing": missing, "timings": timings,
                "usage": (sum(c.prompt_tokens for c in calls), sum(c.completion_tokens for c in calls))}


def invalid_request(exc: BaseException) -> InvalidRequest | None:
    """The :class:`InvalidRequest` behind ``exc`` (raised here or in another replica), or None."""
    cause = getattr(exc, "cause", None)
    for error in (exc, cause):
        if isinstance(error, InvalidRequest):
            return InvalidRequest(str(error), error.code, error.param)
    return None


def draft_failure(continent: str, exc: BaseException, timeout_s: float) -> str:
    """Why a continent's draft is missing, in words a client may read; an unexpected error's text
    goes to the log (named by the request id) instead."""
    from ray.exceptions import RayActorError

    if isinstance(exc, asyncio.TimeoutError):
        return f"timed out after {timeout_s:g} s"
    refused = invalid_request(exc)
    if refused is not None:
        return f"refused: {refused}"
    if isinstance(exc, RayActorError) or isinstance(getattr(exc, "cause", None), RayActorError):
        log.warning("the %s agent's replica died during its draft: %s", continent, failure_reason(exc))
        return "failed: the agent's replica died"
    log.warning("the %s agent's draft failed: %s", continent, failure_reason(exc), exc_info=exc)
    return "failed: internal error (see the server log)"
