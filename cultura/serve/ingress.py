"""The HTTP ingress: an OpenAI-compatible API over the Cultural Palette graph (FastAPI on Ray Serve).

Routes: ``POST /v1/chat/completions`` (``stream: true`` gives server-sent events in the OpenAI chunk
format), ``GET /v1/models``, ``POST /v1/palette`` (the answer with gate weights, drafts, missing
drafts and stage timings), ``GET /healthz``. Every error is an OpenAI-style JSON body
``{"error": {"message", "type", "param", "code", "request_id"}}`` with a 4xx/5xx status, never a
traceback; an internal error's text goes to the replica log under the request id the body names.

Every request is checked before any model runs (:meth:`Ingress.prepare`): the key, the body size
while it is read (:mod:`cultura.serve.guard`), strict types, the number of messages, characters,
and tokens counted with the model's tokenizer and chat template (``serve.max_prompt_tokens``, and
the prompt plus ``max_tokens`` within the model's context window). A client that hangs up cancels
its request down to the engine and is logged as one INFO line.

The target country comes from the body's ``country`` field (``extra_body`` in the ``openai``
client), else the ``X-Cultura-Country`` header, else the first country named in the prompt.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

from ray import serve
from starlette.requests import Request  # at module level: FastAPI resolves the routes' annotations here
from starlette.responses import Response

from cultura.data.hofstede import resolve_country
from cultura.engines.base import check_context, failure_reason
from cultura.errors import CulturaError, UnknownNameError, last_line
from cultura.language import answer_language
from cultura.sampling import SamplingParams
from cultura.serve.cancel import cancel_in
from cultura.serve.catalog import ModelRef, parse_model
from cultura.serve.deployments import NoDraftsError, invalid_request
from cultura.serve.guard import Guard
from cultura.serve.metrics import SERVE_METRICS, answer_tags, record_answer_latency
from cultura.serve.openai_api import (
    ApiError,
    ChatCompletionRequest,
    ChunkWriter,
    Conversation,
    ModelCard,
    ModelList,
    PaletteRequest,
    SamplingFields,
    Usage,
    chat_completion,
    clip,
    completion_id,
    conversation,
)

COUNTRY_HEADER = "x-cultura-country"
log = logging.getLogger("ray.serve")


@dataclass(frozen=True)
class IngressSettings:
    """What the ingress needs besides the handles: limits, sampling defaults, the served models."""

    api_key_sha256: str | None
    max_prompt_chars: int
    max_prompt_tokens: int
    max_messages: int
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
    adapters: tuple[tuple[str, str], ...] = ()  # (model id, adapter folder) of the served agents with one
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    language_candidates: int = 1
    created: int = field(default_factory=lambda: int(time.time()))

    @functools.cached_property
    def adapter_of(self) -> dict[str, str]:
        """Model id (``continent/Europe``, ``culture/korean``) -> its adapter folder, for those with one."""
        return dict(self.adapters)


@dataclass
class Answer:
    """One finished answer: the text, why it stopped, token usage, (palette) the details, the
    completion its text came from (``final``) and, once timed, its time to first token and time per
    output token in seconds as the ingress saw them."""

    text: str
    finish_reason: str
    usage: Usage
    details: dict[str, Any] = field(default_factory=dict)
    final: Any = None
    first_token_s: float | None = None
    per_token_s: float | None = None

    def server_timing(self) -> dict[str, str]:
        """The ``Server-Timing`` header (milliseconds) of a timed answer; empty when untimed."""
        parts = [f"{name};dur={value * 1000:.1f}" for name, value in (("ttft", self.first_token_s),
                                                                     ("tpot", self.per_token_s)) if value is not None]
        return {"Server-Timing": ", ".join(parts)} if parts else {}


def hash_key(key: str) -> str:
    """The SHA-256 hex digest the ingress compares bearer tokens against (the key itself never travels)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def api_error(exc: BaseException, request_id: str | None = None) -> ApiError:
    """Map any exception to the API error a client sees; an unexpected error's text and traceback
    go only to the replica log, under ``request_id``."""
    from ray.exceptions import RayActorError
    from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError

    cause = getattr(exc, "cause", None)
    if isinstance(exc, ApiError):
        return exc
    if isinstance(cause, ApiError):
        return cause
    refused = invalid_request(exc)
    if refused is not None:
        return ApiError(400, str(refused), param=refused.param, code=refused.code)
    if isinstance(exc, NoDraftsError) or isinstance(cause, NoDraftsError):
        return ApiError(503, last_line(cause if isinstance(cause, NoDraftsError) else exc), "service_unavailable",
                        code="no_drafts")
    if isinstance(exc, UnknownNameError) and exc.kind == "country":
        return ApiError(400, str(exc), param="country", code="unknown_country")
    if isinstance(exc, CulturaError) or isinstance(cause, CulturaError):  # messages written for the user
        return ApiError(400, last_line(cause if isinstance(cause, CulturaError) else exc))
    if isinstance(exc, asyncio.TimeoutError):
        return ApiError(504, "the request timed out", "timeout", code="timeout")
    if isinstance(exc, (RayActorError, BackPressureError, DeploymentUnavailableError)):
        log.warning("request %s: a replica is unavailable: %s", request_id, failure_reason(exc))
        return ApiError(503, "a model replica is unavailable, retry shortly", "service_unavailable", code="unavailable")
    log.error("request %s: unexpected error", request_id, exc_info=exc)
    return ApiError(500, f"internal error; the server log has the details under request id {request_id}",
                    "server_error", code="internal_error")


def _cancelled(exc: BaseException) -> bool:
    """Whether ``exc`` says the request was cancelled (its client left) rather than that it failed."""
    from ray.exceptions import TaskCancelledError  # Serve's RequestCancelledError is one

    return isinstance(exc, (asyncio.CancelledError, TaskCancelledError))


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

    def sampling(self, body: SamplingFields, default_tokens: int, temperature: float, prompt: str) -> SamplingParams:
        """Sampling from the request's fields over the configured defaults, answering in the body's
        ``language`` (``auto``: that of ``prompt``); 400 above the token limit or for an unknown language."""
        s = self.settings
        try:
            language = answer_language(body.language, prompt)
        except CulturaError as exc:
            raise ApiError(400, str(exc), param="language", code="unknown_language") from None
        limit = body.token_limit()
        if limit is not None and limit > s.max_tokens_limit:
            raise ApiError(400, f"max_tokens is {limit}; this server allows at most {s.max_tokens_limit}",
                           param="max_tokens", code="max_tokens_too_large")
        return SamplingParams(max_tokens=limit or min(default_tokens, s.max_tokens_limit),
                              temperature=body.temperature if body.temperature is not None else temperature,
                              top_p=body.top_p if body.top_p is not None else s.top_p,
                              seed=body.seed if body.seed is not None else s.seed, stop=body.stops(),
                              repetition_penalty=body.repetition_penalty or s.repetition_penalty,
                              no_repeat_ngram_size=(body.no_repeat_ngram_size if body.no_repeat_ngram_size is not None
                                                    else s.no_repeat_ngram_size),
                              language=language, language_candidates=s.language_candidates)

    @staticmethod
    def country(body: SamplingFields, header: str | None) -> str | None:
        """The target country from the body or the header (canonical name), or None to detect it."""
        name = body.country if body.country not in (None, "") else header
        if name is None or not str(name).strip():
            return None
        try:
            return resolve_country(str(name).strip())
        except UnknownNameError as exc:
            raise ApiError(400, str(exc), param="country", code="unknown_country") from None

    async def palette(self, conv: Conversation, country: str | None, body: SamplingFields,
                      request_id: str | None = None) -> Answer:
        """Gate -> continent drafts -> Meta Agent, with per-stage timings."""
        s = self.settings
        meta_sampling = self.sampling(body, s.palette_max_tokens, s.meta_temperature, conv.prompt)
        draft_sampling = replace(meta_sampling, temperature=s.draft_temperature, stop=())
        start = time.perf_counter()
        decision = await self.gate.decide.remote((conv.prompt, country))
        gate_s = time.perf_counter() - start
        SERVE_METRICS.observe("serve_stage_seconds", gate_s, stage="gate")
        result = await self.meta.respond.remote(conv, decision, draft_sampling, meta_sampling, request_id)
        timings = {"gate_s": gate_s, **result["timings"], "total_s": time.perf_counter() - start}
        SERVE_METRICS.observe("serve_stage_seconds", timings["total_s"], stage="total")
        details = {
            "blend": s.blend, "country": decision.country, "weights": decision.weights,
            "selected": list(decision.selected), "relevance": decision.relevance, "proximity": decision.proximity,
            "drafts": result["drafts"], "missing": result["missing"],
            "without_adapter": [c for c in result["drafts"] if f"continent/{c}" not in s.adapter_of],
            "timings": {k: round(v, 4) for k, v in timings.items()},
        }
        return Answer(result["text"], result["finish_reason"], Usage.of(*result["usage"]), details, result["final"])

    async def answer(self, ref: ModelRef, conv: Conversation, country: str | None, body: SamplingFields,
                     request_id: str | None = None) -> Answer:
        """The answer of the model ``ref`` (palette, one continent agent, one culture agent, or base);
        every call down the graph carries ``request_id`` (see :mod:`cultura.serve.cancel`)."""
        s = self.settings
        if ref.kind == "palette":
            return await self.palette(conv, country, body, request_id)
        sampling = self.sampling(body, s.default_max_tokens, s.temperature, conv.prompt)
        if ref.kind == "continent":
            completion = await self.agents[ref.target].draft.remote(conv, country, sampling, request_id)
        elif ref.kind == "culture":
            completion = await self._culture(ref).respond.remote(conv, sampling, request_id)
        else:
            from cultura.engines.base import ChatRequest

            [completion] = await self.engine.generate.remote([ChatRequest(tuple(conv.messages()), sampling)],
                                                             request_id)
        return Answer(completion.text, completion.finish_reason,
                      Usage.of(completion.prompt_tokens, completion.completion_tokens), final=completion)

    async def timed_answer(self, ref: ModelRef, conv: Conversation, country: str | None,
                           body: SamplingFields, request_id: str, arrived: float | None = None) -> Answer:
        """:meth:`answer` within ``serve.request_timeout_s`` (HTTP 504 after), counted in the metrics,
        its time to first token counted from ``arrived`` (``time.perf_counter()``; default now).
        A client that leaves cancels the work (down to the engine's decode loop) and is logged once."""
        start = time.perf_counter()
        try:
            answer = await asyncio.wait_for(self.answer(ref, conv, country, body, request_id),
                                            self.settings.request_timeout_s)
        except BaseException as exc:
            if _cancelled(exc) or isinstance(exc, asyncio.TimeoutError):
                cancel_in(self._reached(ref), request_id)
            if _cancelled(exc):
                log.info("request %s (%s): the client disconnected after %.2f s; its work was cancelled",
                         request_id, ref.id, time.perf_counter() - start)
                SERVE_METRICS.inc("serve_requests", model=ref.kind, status="499")
                raise
            if not isinstance(exc, Exception):
                raise
            err = api_error(exc, request_id)
            SERVE_METRICS.inc("serve_requests", model=ref.kind, status=str(err.status))
            raise err from None
        SERVE_METRICS.inc("serve_requests", model=ref.kind, status="200")
        selected = answer.details.get("selected") if self.settings.blend == "select" else None
        tags = answer_tags(ref, self.settings.adapter_of, selected[0] if selected else None)
        answer.first_token_s, answer.per_token_s = record_answer_latency(
            time.perf_counter() - (arrived if arrived is not None else start), answer.final, tags)
        SERVE_METRICS.inc("serve_tokens", answer.usage.prompt_tokens, model=ref.kind, kind="prompt")
        SERVE_METRICS.inc("serve_tokens", answer.usage.completion_tokens, model=ref.kind, kind="completion")
        return answer

    def _culture(self, ref: ModelRef) -> Any:
        """The CultureAgent handle routed to the replicas holding ``ref``'s culture."""
        return self.culture.options(multiplexed_model_id=ref.target)

    def _reached(self, ref: ModelRef) -> list[Any]:
        """The deployments a request for ``ref`` may have work running in."""
        if ref.kind == "palette":
            return [self.meta, *self.agents.values(), self.engine]
        if ref.kind == "continent":
            return [self.agents[ref.target], self.engine]
        if ref.kind == "culture":
            return [self._culture(ref), self.engine]
        return [self.engine]

    async def prepare(self, model: str, messages: list[Any], body: SamplingFields, header_country: str | None,
                      request_id: str | None) -> tuple[ModelRef, Conversation, str | None]:
        """Validate a request before any model runs: the model (404), the messages (400/413), the
        country (400), the token limit (400), and the prompt's tokens (413 over
        ``serve.max_prompt_tokens``, 400 when with ``max_tokens`` it overflows the context window)."""
        s = self.settings
        try:
            ref = parse_model(model)
        except UnknownNameError:
            raise ApiError(404, f"the model {clip(model)!r} does not exist; GET /v1/models lists them",
                           param="model", code="model_not_found") from None
        conv = conversation(messages, s.max_prompt_chars, s.max_messages)
        try:
            default_tokens = s.palette_max_tokens if ref.kind == "palette" else s.default_max_tokens
            sampling = self.sampling(body, default_tokens, 0.0, conv.prompt)  # the limit checks, before any work starts
            country = self.country(body, header_country)
            await self.check_tokens(conv, sampling.max_tokens)
        except Exception as exc:
            raise api_error(exc, request_id) from None
        return ref, conv, country

    async def check_tokens(self, conv: Conversation, max_tokens: int) -> None:
        """Count the conversation's tokens with the model's tokenizer and chat template (the Engine
        deployment holds them); 413 over ``serve.max_prompt_tokens``, 400 when the prompt plus
        ``max_tokens`` overflows the model's context window. An engine without a local tokenizer
        (``openai``) leaves the character limit alone to guard."""
        tokens, window = await self.engine.measure.remote(conv.messages())
        if tokens is None:
            return
        limit = self.settings.max_prompt_tokens
        if tokens > limit:
            raise ApiError(413, f"the messages hold {tokens} tokens; this server accepts at most {limit}",
                           param="messages", code="prompt_too_long")
        check_context(tokens, max_tokens, window)

    async def stream(self, ref: ModelRef, conv: Conversation, country: str | None,
                     body: ChatCompletionRequest, request_id: str, arrived: float | None = None) -> AsyncIterator[str]:
        """The SSE events of a streamed completion: the role chunk at once, then the answer in pieces
        once it is complete."""
        writer = ChunkWriter(ref.id)
        yield writer.role()
        try:
            answer = await self.timed_answer(ref, conv, country, body, request_id, arrived)
        except ApiError as err:
            for event in writer.error(err, request_id):
                yield event
            return
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        for event in writer.content(answer.text, answer.finish_reason, answer.usage if include_usage else None):
            yield event


def build_api(ingress: Ingress) -> Any:
    """The FastAPI app whose routes call ``ingress``, behind :class:`~cultura.serve.guard.Guard`."""
    from fastapi import FastAPI, Header
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, StreamingResponse
    from starlette.exceptions import HTTPException

    app = FastAPI(title="cultura", description="Cultural Palette and CulturePark agents, OpenAI-compatible",
                  docs_url=None, redoc_url=None)
    s = ingress.settings

    def error_response(err: ApiError, request_id: str | None) -> JSONResponse:
        # Serve's proxy puts the same id in the X-Request-ID header of every response
        headers = {"WWW-Authenticate": "Bearer"} if err.status == 401 else None
        return JSONResponse(err.body(request_id), status_code=err.status, headers=headers)

    def request_id(request: Request) -> str | None:
        return getattr(request.state, "request_id", None)

    app.add_middleware(Guard, check_key=ingress.check_key, respond=error_response,
                       body_limit=s.max_prompt_chars * 8 + 65536)  # JSON escapes and fields around the messages

    @app.exception_handler(ApiError)
    async def on_api_error(request: Request, err: ApiError) -> JSONResponse:
        return error_response(err, request_id(request))

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request", "type": ""}
        param = ".".join(str(p) for p in first.get("loc", ()) if p != "body" and not _union_tag(p)) or None
        if first.get("type") == "json_invalid":
            message = "the request body is not valid JSON"
        elif param is None:
            message = f"the request body must be a JSON object ({first.get('msg')})"
        else:
            message = f"{clip(param)}: {first.get('msg')}"
        return error_response(ApiError(400, message, param=clip(param) if param else None, code="invalid_request"),
                              request_id(request))

    @app.exception_handler(HTTPException)
    async def on_http(request: Request, exc: HTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        message = f"{request.method} {clip(request.url.path)}: {exc.detail}"
        return error_response(ApiError(exc.status_code, message, code=code), request_id(request))

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        return error_response(api_error(exc, request_id(request)), request_id(request))

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok"}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return ModelList(data=[ModelCard(id=m, created=s.created) for m in s.models]).model_dump()

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request, response: Response, body: ChatCompletionRequest,
                               x_cultura_country: str | None = Header(None)) -> Any:
        arrived, rid = time.perf_counter(), request_id(request)
        ref, conv, country = await ingress.prepare(body.model, body.messages, body, x_cultura_country, rid)
        if body.stream:
            return StreamingResponse(ingress.stream(ref, conv, country, body, rid, arrived),
                                     media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        answer = await ingress.timed_answer(ref, conv, country, body, rid, arrived)
        response.headers.update(answer.server_timing())
        return chat_completion(ref.id, answer.text, answer.finish_reason, answer.usage).model_dump()

    @app.post("/v1/palette")
    async def palette(request: Request, response: Response, body: PaletteRequest,
                      x_cultura_country: str | None = Header(None)) -> Any:
        arrived, rid = time.perf_counter(), request_id(request)
        ref, conv, country = await ingress.prepare("palette", body.chat(), body, x_cultura_country, rid)
        answer = await ingress.timed_answer(ref, conv, country, body, rid, arrived)
        response.headers.update(answer.server_timing())
        return {"id": completion_id(), "object": "cultura.palette", "created": int(time.time()), "model": "palette",
                "answer": answer.text, "finish_reason": answer.finish_reason, **answer.details,
                "usage": answer.usage.model_dump()}

    return app


def _union_tag(part: Any) -> bool:
    """Whether a pydantic error location part names a union member (``str``, ``list[ContentPart]``)
    rather than a field."""
    return isinstance(part, str) and (part in ("str", "int", "float", "bool", "none") or "[" in part)
