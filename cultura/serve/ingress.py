"""The HTTP ingress: an OpenAI-compatible API over the Cultural Palette graph (FastAPI on Ray Serve).

Routes: ``POST /v1/chat/completions`` (``stream: true`` gives server-sent events in the OpenAI chunk
format), ``GET /v1/models``, ``POST /v1/palette`` (the answer with gate weights, drafts, missing
drafts and stage timings), ``GET /healthz``. Every error is an OpenAI-style JSON body
``{"error": {"message", "type", "param", "code"}}`` with a 4xx/5xx status, never a traceback.

The target country comes from the body's ``country`` field (``extra_body`` in the ``openai``
client), else the ``X-Cultura-Country`` header, else the first country named in the prompt.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from ray import serve

from cultura.engines.base import SamplingParams
from cultura.errors import CulturaError, UnknownNameError, short_error
from cultura.serve.catalog import ModelRef, parse_model
from cultura.serve.deployments import NoDraftsError
from cultura.serve.metrics import SERVE_METRICS
from cultura.serve.openai_api import (ApiError, ChatCompletionRequest, ChunkWriter, Conversation, ModelCard,
                                      ModelList, PaletteRequest, SamplingFields, Usage, chat_completion,
                                      completion_id, conversation)

COUNTRY_HEADER = "x-cultura-country"
log = logging.getLogger("ray.serve")


@dataclass(frozen=True)
class IngressSettings:
    """What the ingress needs besides the handles: limits, sampling defaults, the served models."""

    api_key_sha256: str | None
    max_prompt_chars: int
    max_tokens_limit: int
    request_timeout_s: float
    default_max_tokens: int
    palette_max_tokens: int
    temperature: float
    top_p: float
    seed: int | None
    draft_temperature: float
    meta_temperature: float
    blend: str
    models: tuple[str, ...]
    continent_adapters: tuple[str, ...] = ()
    repetition_penalty: float = 1.0
    created: int = field(default_factory=lambda: int(time.time()))


@dataclass
class Answer:
    """One finished answer: the text, why it stopped, token usage, and (palette) the details."""

    text: str
    finish_reason: str
    usage: Usage
    details: dict[str, Any] = field(default_factory=dict)


def hash_key(key: str) -> str:
    """The SHA-256 hex digest the ingress compares bearer tokens against (the key itself never travels)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def api_error(exc: BaseException) -> ApiError:
    """Map any exception to the API error a client sees (tracebacks only go to the replica log)."""
    from ray.exceptions import RayActorError
    from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError

    cause = getattr(exc, "cause", None)
    if isinstance(exc, ApiError):
        return exc
    if isinstance(cause, ApiError):
        return cause
    if isinstance(exc, NoDraftsError) or isinstance(cause, NoDraftsError):
        return ApiError(503, short_error(exc), "service_unavailable", code="no_drafts")
    if isinstance(exc, UnknownNameError) and exc.kind == "country":
        return ApiError(400, str(exc), param="country", code="unknown_country")
    if isinstance(exc, CulturaError) or isinstance(cause, CulturaError):
        return ApiError(400, short_error(exc))
    if isinstance(exc, asyncio.TimeoutError):
        return ApiError(504, "the request timed out", "timeout", code="timeout")
    if isinstance(exc, (RayActorError, BackPressureError, DeploymentUnavailableError)):
        return ApiError(503, f"a model replica is unavailable, retry shortly ({short_error(exc)})",
                        "service_unavailable", code="unavailable")
    log.exception("cultura serve: unexpected error", exc_info=exc)
    return ApiError(500, "internal error; the server log has the details", "server_error", code="internal_error")


@serve.deployment(name="Ingress")
@serve.ingress()
class Ingress:
    """The OpenAI-compatible HTTP front of the graph; holds only DeploymentHandles."""

    def __init__(self, gate: Any, meta: Any, agents: dict[str, Any], culture: Any, engine: Any,
                 settings: IngressSettings):
        self.gate, self.meta, self.agents, self.culture, self.engine = gate, meta, dict(agents), culture, engine
        self.settings = settings

    def __serve_build_asgi_app__(self) -> Any:
        """The FastAPI app, built in the replica with its routes bound to this instance."""
        return build_api(self)

    # ----- request handling -----------------------------------------------------------------
    def check_key(self, authorization: str | None) -> None:
        """401 unless the bearer token matches the configured key (when one is configured)."""
        expected = self.settings.api_key_sha256
        if expected is None:
            return
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "missing API key: send 'Authorization: Bearer <key>'", code="invalid_api_key")
        if not hmac.compare_digest(hash_key(token.strip()), expected):
            raise ApiError(401, "incorrect API key", code="invalid_api_key")

    def sampling(self, body: SamplingFields, default_tokens: int, temperature: float) -> SamplingParams:
        """Sampling from the request's fields over the configured defaults; 400 above the token limit."""
        s = self.settings
        limit = body.token_limit()
        if limit is not None and limit > s.max_tokens_limit:
            raise ApiError(400, f"max_tokens is {limit}; this server allows at most {s.max_tokens_limit}",
                           param="max_tokens", code="max_tokens_too_large")
        return SamplingParams(max_tokens=limit or min(default_tokens, s.max_tokens_limit),
                              temperature=body.temperature if body.temperature is not None else temperature,
                              top_p=body.top_p if body.top_p is not None else s.top_p,
                              seed=body.seed if body.seed is not None else s.seed, stop=body.stops(),
                              repetition_penalty=body.repetition_penalty or s.repetition_penalty)

    @staticmethod
    def country(body: SamplingFields, header: str | None) -> str | None:
        """The target country from the body or the header (canonical name), or None to detect it."""
        from cultura.data.hofstede import resolve_country

        name = body.country if body.country not in (None, "") else header
        if name is None or not str(name).strip():
            return None
        try:
            return resolve_country(str(name).strip())
        except UnknownNameError as exc:
            raise ApiError(400, str(exc), param="country", code="unknown_country") from None

    async def palette(self, conv: Conversation, country: str | None, body: SamplingFields) -> Answer:
        """Gate -> continent drafts -> Meta Agent, with per-stage timings."""
        s = self.settings
        meta_sampling = self.sampling(body, s.palette_max_tokens, s.meta_temperature)
        draft_sampling = SamplingParams(max_tokens=meta_sampling.max_tokens, temperature=s.draft_temperature,
                                        top_p=meta_sampling.top_p, seed=meta_sampling.seed,
                                        repetition_penalty=meta_sampling.repetition_penalty)
        start = time.perf_counter()
        decision = await self.gate.decide.remote((conv.prompt, country))
        gate_s = time.perf_counter() - start
        SERVE_METRICS.observe("serve_stage_seconds", gate_s, stage="gate")
        result = await self.meta.respond.remote(conv, decision, draft_sampling, meta_sampling)
        timings = {"gate_s": gate_s, **result["timings"], "total_s": time.perf_counter() - start}
        SERVE_METRICS.observe("serve_stage_seconds", timings["total_s"], stage="total")
        details = {
            "blend": s.blend, "country": decision.country, "weights": decision.weights,
            "selected": list(decision.selected), "relevance": decision.relevance, "proximity": decision.proximity,
            "drafts": result["drafts"], "missing": result["missing"],
            "without_adapter": [c for c in result["drafts"] if c not in s.continent_adapters],
            "timings": {k: round(v, 4) for k, v in timings.items()},
        }
        return Answer(result["text"], result["finish_reason"], Usage.of(*result["usage"]), details)

    async def answer(self, ref: ModelRef, conv: Conversation, country: str | None, body: SamplingFields) -> Answer:
        """The answer of the model ``ref`` (palette, one continent agent, one culture agent, or base)."""
        s = self.settings
        if ref.kind == "palette":
            return await self.palette(conv, country, body)
        sampling = self.sampling(body, s.default_max_tokens, s.temperature)
        if ref.kind == "continent":
            completion = await self.agents[ref.target].draft.remote(conv, country, sampling)
        elif ref.kind == "culture":
            completion = await self.culture.options(multiplexed_model_id=ref.target).respond.remote(conv, sampling)
        else:
            from cultura.engines.base import ChatRequest

            messages = ([{"role": "system", "content": conv.system}] if conv.system else []) + conv.turns()
            [completion] = await self.engine.generate.remote([ChatRequest(tuple(messages), sampling)])
        return Answer(completion.text, completion.finish_reason,
                      Usage.of(completion.prompt_tokens, completion.completion_tokens))

    async def timed_answer(self, ref: ModelRef, conv: Conversation, country: str | None,
                           body: SamplingFields) -> Answer:
        """:meth:`answer` within ``serve.request_timeout_s`` (HTTP 504 after), counted in the metrics."""
        try:
            answer = await asyncio.wait_for(self.answer(ref, conv, country, body), self.settings.request_timeout_s)
        except Exception as exc:  # a cancelled request (client gone) propagates as it is
            err = api_error(exc)
            SERVE_METRICS.inc("serve_requests", model=ref.kind, status=str(err.status))
            raise err from None
        SERVE_METRICS.inc("serve_requests", model=ref.kind, status="200")
        SERVE_METRICS.inc("serve_tokens", answer.usage.prompt_tokens, model=ref.kind, kind="prompt")
        SERVE_METRICS.inc("serve_tokens", answer.usage.completion_tokens, model=ref.kind, kind="completion")
        return answer

    def prepare(self, model: str, messages: list[Any], body: SamplingFields,
                header_country: str | None) -> tuple[ModelRef, Conversation, str | None]:
        """Validate a request before any model runs: the model (404), the messages (400/413), the
        country (400) and the token limit (400)."""
        try:
            ref = parse_model(model)
        except UnknownNameError as exc:
            raise ApiError(404, f"the model {model!r} does not exist ({exc}); GET /v1/models lists them",
                           param="model", code="model_not_found") from None
        conv = conversation(messages, self.settings.max_prompt_chars)
        self.sampling(body, 1, 0.0)  # the token limit check, before any work starts
        return ref, conv, self.country(body, header_country)

    async def stream(self, ref: ModelRef, conv: Conversation, country: str | None,
                     body: ChatCompletionRequest) -> AsyncIterator[str]:
        """The SSE events of a streamed completion: the role chunk at once, then the answer in pieces."""
        writer = ChunkWriter(ref.id)
        yield writer.role()
        try:
            answer = await self.timed_answer(ref, conv, country, body)
        except ApiError as err:
            for event in writer.error(err):
                yield event
            return
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        for event in writer.content(answer.text, answer.finish_reason, answer.usage if include_usage else None):
            yield event


def build_api(ingress: Ingress) -> Any:
    """The FastAPI app whose routes call ``ingress``."""
    from fastapi import FastAPI, Header, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, StreamingResponse
    from starlette.exceptions import HTTPException

    app = FastAPI(title="cultura", description="Cultural Palette and CulturePark agents, OpenAI-compatible",
                  docs_url=None, redoc_url=None)
    s = ingress.settings
    body_limit = s.max_prompt_chars * 8 + 65536  # JSON escapes and fields around the messages

    def error_response(err: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if err.status == 401 else None
        return JSONResponse(err.body(), status_code=err.status, headers=headers)

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Any:
        """API key (all routes but /healthz) and request size, before the body is parsed."""
        try:
            if request.url.path != "/healthz":
                ingress.check_key(request.headers.get("authorization"))
            length = request.headers.get("content-length")
            if length and length.isdigit() and int(length) > body_limit:
                raise ApiError(413, f"the request body has {length} bytes; this server accepts at most {body_limit}",
                               code="request_too_large")
        except ApiError as err:
            return error_response(err)
        return await call_next(request)

    @app.exception_handler(ApiError)
    async def on_api_error(request: Request, err: ApiError) -> JSONResponse:
        return error_response(err)

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request", "type": ""}
        param = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or None
        if first.get("type") == "json_invalid":
            message = "the request body is not valid JSON"
        elif param is None:
            message = f"the request body must be a JSON object ({first.get('msg')})"
        else:
            message = f"{param}: {first.get('msg')}" if param else str(first.get("msg"))
        return error_response(ApiError(400, message, param=param, code="invalid_request"))

    @app.exception_handler(HTTPException)
    async def on_http(request: Request, exc: HTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        message = f"{request.method} {request.url.path}: {exc.detail}"
        return error_response(ApiError(exc.status_code, message, code=code))

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        return error_response(api_error(exc))

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "models": len(s.models)}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return ModelList(data=[ModelCard(id=m, created=s.created) for m in s.models]).model_dump()

    @app.post("/v1/chat/completions")
    async def chat_completions(body: ChatCompletionRequest,
                               x_cultura_country: str | None = Header(None)) -> Any:
        ref, conv, country = ingress.prepare(body.model, body.messages, body, x_cultura_country)
        if body.stream:
            return StreamingResponse(ingress.stream(ref, conv, country, body), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache"})
        answer = await ingress.timed_answer(ref, conv, country, body)
        return chat_completion(ref.id, answer.text, answer.finish_reason, answer.usage).model_dump()

    @app.post("/v1/palette")
    async def palette(body: PaletteRequest, x_cultura_country: str | None = Header(None)) -> Any:
        ref, conv, country = ingress.prepare("palette", body.chat(), body, x_cultura_country)
        answer = await ingress.timed_answer(ref, conv, country, body)
        return {"id": completion_id(), "object": "cultura.palette", "created": int(time.time()), "model": "palette",
                "answer": answer.text, "finish_reason": answer.finish_reason, **answer.details,
                "usage": answer.usage.model_dump()}

    return app

