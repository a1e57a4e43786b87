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
the response names the missing continents with the reason. Serve replaces dead replicas.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from ray import serve

from cultura.engines.base import ChatRequest, Completion, SamplingParams
from cultura.errors import CulturaError, short_error
from cultura.serve.metrics import SERVE_METRICS
from cultura.serve.openai_api import Conversation


class NoDraftsError(CulturaError):
    """Every chosen continent agent failed or timed out: there is nothing to blend (HTTP 503)."""


class EngineClient:
    """The engine an agent replica uses: its own (dedicated placement) or the Engine deployment's."""

    def __init__(self, handle: Any = None, engine_config: Any = None, num_threads: int | None = None):
        self._handle, self._engine = handle, None
        if engine_config is not None:
            from cultura.engines import create_engine

            self._engine = create_engine(engine_config, num_threads=num_threads)

    async def generate(self, requests: Sequence[ChatRequest]) -> list[Completion]:
        """Complete the requests (see :meth:`cultura.engines.base.Engine.generate`)."""
        if self._engine is not None:
            return await self._engine.generate(list(requests))
        return await self._handle.generate.remote(list(requests))

    async def one(self, messages: list[dict[str, str]], sampling: SamplingParams, adapter: str | None) -> Completion:
        """Complete one chat."""
        [completion] = await self.generate([ChatRequest(tuple(messages), sampling, adapter)])
        return completion


@serve.deployment(name="Engine")
class EngineDeployment:
    """The model (and its adapters) behind one engine; concurrent calls share batches."""

    def __init__(self, engine_config: Any, num_threads: int | None = None):
        from cultura.engines import create_engine

        self.engine = create_engine(engine_config, num_threads=num_threads)

    async def generate(self, requests: list[ChatRequest]) -> list[Completion]:
        """Complete the requests."""
        return await self.engine.generate(requests)

    def info(self) -> dict[str, Any]:
        """What :func:`cultura.engines.describe` says of the engine."""
        from cultura.engines import describe

        return describe(self.engine)


@serve.deployment(name="Gate")
class Gate:
    """The Cultural MoE gate with its sentence embedder; concurrent decisions share one embedding call."""

    def __init__(self, palette_config: Any):
        from cultura.palette.palette import GateHost

        p = palette_config
        self.host = GateHost(p.alpha, p.beta, p.tau, p.top_k, p.mention_bonus)  # loads the embedder now

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
        from cultura.personas import continent_persona

        self.persona = continent_persona(continent, adapter)
        self.continent = self.persona.key.split(":", 1)[1]
        self.client = EngineClient(engine, engine_config, num_threads)

    async def draft(self, conv: Conversation, country: str | None, sampling: SamplingParams) -> Completion:
        """This continent's draft answer to the conversation's question (for a target country)."""
        from cultura.palette.meta import draft_messages

        start = time.perf_counter()
        messages = conv.frame(draft_messages(conv.prompt, self.continent, country))
        completion = await self.client.one(messages, sampling, self.persona.adapter)
        SERVE_METRICS.observe("serve_stage_seconds", time.perf_counter() - start, stage="draft",
                              continent=self.continent)
        return completion


@serve.deployment
class CultureAgent:
    """CulturePark culture agents, multiplexed by culture key (see the module docstring)."""

    def __init__(self, adapters: dict[str, str], engine: Any, engine_config: Any = None,
                 num_threads: int | None = None, models_per_replica: int = 8):
        self.adapters = dict(adapters)
        self.client = EngineClient(engine, engine_config, num_threads)

        async def load_culture(culture: str) -> Any:  # Serve keeps its LRU cache on a plain function
            return await self._persona(culture)

        self._load = serve.multiplexed(max_num_models_per_replica=models_per_replica)(load_culture)

    async def _persona(self, culture: str) -> Any:
        """Load a culture: its persona and adapter; the adapter is warmed with a one-token call so the
        first real request does not pay for loading it."""
        from cultura.personas import culture_persona

        persona = culture_persona(culture).with_adapter(self.adapters.get(culture))
        if persona.adapter:
            await self.client.one(persona.messages("Hello"), SamplingParams(max_tokens=1), persona.adapter)
        return persona

    async def respond(self, conv: Conversation, sampling: SamplingParams) -> Completion:
        """The culture agent's answer; the culture is the request's multiplexed model id."""
        persona = await self._load(serve.get_multiplexed_model_id())
        return await self.client.one(conv.frame(persona.messages(conv.prompt)), sampling, persona.adapter)


@serve.deployment
class MetaAgent:
    """The Meta Agent: fans the question out to the gate's chosen continent agents, then blends.

    ``aggregate``: the drafts run in parallel and the Meta Agent writes one answer from them
    (self-regulated aggregation and final decision). ``select``: only the top continent drafts and its
    draft is the answer.
    """

    def __init__(self, agents: dict[str, Any], engine: Any, blend: str, draft_timeout_s: float):
        self.agents, self.blend, self.draft_timeout_s = dict(agents), blend, float(draft_timeout_s)
        self.client = EngineClient(engine)

    async def _draft(self, continent: str, conv: Conversation, country: str | None,
                     sampling: SamplingParams) -> Completion:
        return await asyncio.wait_for(self.agents[continent].draft.remote(conv, country, sampling),
                                      timeout=self.draft_timeout_s)

    async def collect_drafts(self, continents: Sequence[str], conv: Conversation, country: str | None,
                             sampling: SamplingParams) -> tuple[dict[str, Completion], dict[str, str]]:
        """Drafts of ``continents`` in parallel: ``(completions, missing)``, ``missing`` mapping each
        continent that failed or timed out to the reason."""
        results = await asyncio.gather(*(self._draft(c, conv, country, sampling) for c in continents),
                                       return_exceptions=True)
        drafts, missing = {}, {}
        for continent, result in zip(continents, results):
            if isinstance(result, Completion):
                drafts[continent] = result
                continue
            reason = (f"timed out after {self.draft_timeout_s:g} s" if isinstance(result, asyncio.TimeoutError)
                      else f"failed: {short_error(result)}")
            missing[continent] = reason
            SERVE_METRICS.inc("serve_drafts_skipped", continent=continent,
                              reason="timeout" if isinstance(result, asyncio.TimeoutError) else "error")
        return drafts, missing

    async def respond(self, conv: Conversation, decision: Any, draft_sampling: SamplingParams,
                      meta_sampling: SamplingParams) -> dict[str, Any]:
        """Answer for a gate decision: ``text``, ``finish_reason``, ``drafts`` (continent -> text),
        ``missing`` (continent -> reason), ``timings`` (seconds), ``usage`` (prompt, completion tokens
        over every model call)."""
        from cultura.palette.meta import aggregation_messages, final_answer, meta_persona

        drafting = decision.selected[:1] if self.blend == "select" else decision.selected
        for continent, weight in decision.weights.items():
            if continent not in drafting:
                SERVE_METRICS.inc("serve_drafts_skipped", continent=continent, reason="not_selected")
        start = time.perf_counter()
        drafts, missing = await self.collect_drafts(drafting, conv, decision.country, draft_sampling)
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
                                        decision.country)
            final = await self.client.one(chat, meta_sampling, meta_persona().adapter)
            calls.append(final)
            timings["aggregate_s"] = time.perf_counter() - t
            SERVE_METRICS.observe("serve_stage_seconds", timings["aggregate_s"], stage="aggregate")
        text = final_answer(final.text, conv.prompt, {c: d.text for c, d in drafts.items()}, decision.weights,
                            decision.country)
        return {"text": text, "finish_reason": final.finish_reason,
                "drafts": {c: d.text for c, d in drafts.items()}, "missing": missing, "timings": timings,
                "usage": (sum(c.prompt_tokens for c in calls), sum(c.completion_tokens for c in calls))}

