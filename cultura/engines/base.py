"""The engine protocol: many chat requests in, completions out; option scoring for evaluation.

Every engine (transformers, vllm, openai) implements :class:`Engine`. Requests are small value
objects so they travel through Ray (pickled) and Ray Data rows (as dicts) unchanged.

A request is checked on its own (:func:`check_request`, :func:`check_score_request`) before it may
join a batch, so a bad one fails alone with :class:`InvalidRequest`; :func:`generate_each` and
:func:`score_each` run requests so that one failure leaves the others' results intact (the
pipelines' and the evaluation's Ray Data batches use them).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

from cultura.errors import CulturaError, last_line
from cultura.sampling import SamplingParams, sampling_problem

Message = Mapping[str, str]  # {"role": "system" | "user" | "assistant", "content": str}
VALID_ROLES = ("system", "user", "assistant")


class Totals:
    """Running totals an engine reports (a dataclass of counts and seconds)."""

    def as_dict(self) -> dict[str, float]:
        """Plain values, seconds rounded."""
        return {k: round(v, 2) if isinstance(v, float) else v for k, v in asdict(self).items()}



class InvalidRequest(CulturaError):
    """A request an engine refuses on its own (a sampling value, its text, its length): it fails
    alone, before it joins a batch. ``code`` and ``param`` say what to fix (an HTTP API's error code)."""

    def __init__(self, message: str, code: str = "invalid_request", param: str | None = None):
        super().__init__(message)
        self.code, self.param = code, param

    def __reduce__(self) -> tuple[Any, ...]:  # keeps code and param through Ray's pickling
        return type(self), (str(self), self.code, self.param)


@dataclass(frozen=True)
class ChatRequest:
    """One chat completion request: messages, sampling, and an optional adapter name or path."""

    messages: tuple[Message, ...]
    sampling: SamplingParams = field(default_factory=SamplingParams)
    adapter: str | None = None

    @classmethod
    def of(cls, messages: Sequence[Message], adapter: str | None = None, **sampling: Any) -> ChatRequest:
        """Build a request from a message list and sampling keywords, validating the messages."""
        validate_messages(messages)
        return cls(tuple(dict(m) for m in messages), SamplingParams(**sampling), adapter)


@dataclass(frozen=True)
class Completion:
    """One generated answer with its token counts. ``finish_reason`` is "stop" or "length".

    Engines that see their tokens come (transformers, vllm) time them: ``first_token_s`` is the
    seconds from the request reaching the engine (its queue wait included) to its first generated
    token, ``after_first_s`` the seconds from that token to the last; None where the engine cannot
    tell (``openai``, which gets the answer whole).
    """

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str = "stop"
    first_token_s: float | None = field(default=None, compare=False)  # equal answers are equal, however fast
    after_first_s: float | None = field(default=None, compare=False)

    @property
    def per_token_s(self) -> float | None:
        """Mean seconds per output token after the first (time per output token); None when the
        answer has fewer than two tokens or was not timed."""
        if self.after_first_s is None or self.completion_tokens < 2:
            return None
        return self.after_first_s / (self.completion_tokens - 1)

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (for Arrow rows and JSON)."""
        return asdict(self)


@dataclass(frozen=True)
class OptionScores:
    """What option scoring returns: each option's log-probability, and the mass on the options at all.

    ``logprobs[i]`` is the total log-probability of option ``i`` as the assistant's reply.
    ``valid_mass`` is the probability the model put on replying with any of the options (at most 1),
    the share that renormalising over the options throws away: a model that never answers with an
    option still gets a distribution over them, but a small ``valid_mass``.
    """

    logprobs: tuple[float, ...]
    valid_mass: float

    @classmethod
    def from_logprobs(cls, logprobs: Sequence[float], option_ids: Sequence[Sequence[int]] | None = None) -> OptionScores:
        """Scores whose valid mass is the summed probability of the options (exact log-probabilities).

        With ``option_ids`` (each option's tokens) the options are made prefix-free first: where one
        option's tokens begin another's (a tokenizer that writes "10" as "1", "0"), the reply "10" is
        inside the probability of "1", so the longer options' probabilities are taken out of the
        shorter one's. Option "1" then means "1" not followed by another option's tokens, and no reply
        is counted twice in the valid mass.
        """
        values = [float(x) for x in logprobs]
        if option_ids is not None:
            values = _prefix_free(values, [tuple(ids) for ids in option_ids])
        return cls(tuple(values), min(1.0, sum(math.exp(x) for x in values)))


def _prefix_free(logprobs: list[float], option_ids: list[tuple[int, ...]]) -> list[float]:
    """Each option's log-probability less the probability of the options its tokens are a proper
    prefix of (continuations of one prefix are disjoint, so the subtraction is exact)."""
    out = []
    for ids, logprob in zip(option_ids, logprobs, strict=True):
        longer = sum(math.exp(lp) for other, lp in zip(option_ids, logprobs)
                     if len(other) > len(ids) and other[:len(ids)] == ids)
        if not longer:
            out.append(logprob)
            continue
        left = math.exp(logprob) - longer
        # rounding may leave a hair below zero when every continuation is another option
        out.append(math.log(left) if left > 1e-300 else -math.inf)
    return out


@dataclass(frozen=True)
class ScoreRequest:
    """One option-scoring request: a chat, the options scored as the assistant's reply to it, and
    an optional adapter name or path. :meth:`Engine.score_batch` takes many at once."""

    messages: tuple[Message, ...]
    options: tuple[str, ...]
    adapter: str | None = None

    @classmethod
    def of(cls, messages: Sequence[Message], options: Sequence[str], adapter: str | None = None) -> ScoreRequest:
        """A request from a message list and options (checked by the engine, request by request)."""
        return cls(tuple(messages), tuple(options), adapter)


def validate_messages(messages: Sequence[Message]) -> None:
    """Raise :class:`~cultura.errors.CulturaError` unless ``messages`` is a non-empty chat."""
    if not messages:
        raise CulturaError("messages must not be empty")
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or "role" not in m or "content" not in m:
            raise CulturaError(f"messages[{i}] must have 'role' and 'content'")
        if m["role"] not in VALID_ROLES:
            raise CulturaError(f"messages[{i}].role must be one of {', '.join(VALID_ROLES)}, got {m['role']!r}")
        if not isinstance(m["content"], str):
            raise CulturaError(f"messages[{i}].content must be a string")
    if messages[-1]["role"] == "assistant":
        raise CulturaError("the last message must be from the user or the system, not the assistant")


def check_request(request: ChatRequest) -> None:
    """Raise :class:`InvalidRequest` unless ``request`` can run: a well-formed chat, sampling values
    in range, and every text (messages, stop strings, adapter) encodable as UTF-8 (a lone surrogate
    such as ``"\\ud800"`` would fail the tokenizer inside a batch)."""
    _check_chat(request.messages, request.adapter)
    problem = sampling_problem(request.sampling)
    if problem:
        raise InvalidRequest(problem, "invalid_sampling", problem.split(" ", 1)[0].removeprefix("sampling."))
    _check_texts([("stop", s) for s in request.sampling.stop])


def check_score_request(request: ScoreRequest) -> None:
    """Raise :class:`InvalidRequest` unless ``request`` can be scored: a well-formed chat, options
    that are non-empty strings, and every text (messages, options, adapter) encodable as UTF-8."""
    _check_chat(request.messages, request.adapter)
    if not isinstance(request.options, (tuple, list)) or not all(isinstance(o, str) and o for o in request.options):
        raise InvalidRequest("options must be non-empty strings", "invalid_options", "options")
    _check_texts([("options", o) for o in request.options])


def _check_chat(messages: Sequence[Message], adapter: Any) -> None:
    """The checks a chat request and a scoring request share: the messages, their text, the adapter."""
    try:
        validate_messages(messages)
    except InvalidRequest:
        raise
    except CulturaError as exc:
        raise InvalidRequest(str(exc), "invalid_messages", "messages") from None
    if adapter is not None and not isinstance(adapter, str):
        raise InvalidRequest("adapter must be a name or a folder", "invalid_adapter", "adapter")
    _check_texts([("messages", m["content"]) for m in messages] + ([("adapter", adapter)] if adapter else []))


def _check_texts(texts: Sequence[tuple[str, str]]) -> None:
    """Raise :class:`InvalidRequest` for the first (param, text) that is not encodable as UTF-8."""
    for param, text in texts:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidRequest(f"{param}: the text is not valid Unicode (character {exc.start} is a lone "
                                 "surrogate); send UTF-8 text", "invalid_text", param) from None


def check_context(prompt_tokens: int, max_tokens: int, window: int | None, setting: str | None = None,
                  options: bool = False) -> None:
    """Raise :class:`InvalidRequest` when a prompt of ``prompt_tokens`` plus ``max_tokens`` new tokens
    does not fit the model's context ``window`` (None: unknown, not checked); ``setting`` names the
    configuration that sets the window, if one does. With ``options``, ``max_tokens`` is the length
    of the longest option scored after the prompt."""
    if window is not None and prompt_tokens + max_tokens > window:
        reply, fix = ((f"its longest option has {max_tokens} token{'s' * (max_tokens != 1)}", "the options") if options
                      else (f"max_tokens is {max_tokens}", "lower max_tokens"))
        raise InvalidRequest(
            f"the prompt has {prompt_tokens} tokens and {reply}: together more than the model's context window "
            f"of {window} tokens; shorten the messages or {fix}" + (f" (or raise {setting})" if setting else ""),
            "context_length_exceeded", "messages")


def template_ids(messages: Sequence[Message], prompt_ids: Any) -> list[int]:
    """The token ids of the chat-templated prompt (``prompt_ids(messages)``); a conversation the
    model's chat template refuses (roles out of order, ...) is an :class:`InvalidRequest`."""
    from jinja2 import TemplateError

    try:
        return list(prompt_ids(messages))
    except TemplateError as exc:
        raise InvalidRequest(f"the model's chat template refused the messages: {exc}", "invalid_messages",
                             "messages") from None


def checked_prompt(request: ChatRequest, prompt_ids: Any, window: int | None, setting: str | None = None) -> list[int]:
    """The token ids of ``request``'s chat-templated prompt (``prompt_ids(messages)``), once the
    request passed :func:`check_request`, the model's chat template and :func:`check_context`
    (``window`` and ``setting`` are passed to it)."""
    check_request(request)
    ids = template_ids(request.messages, prompt_ids)
    check_context(len(ids), request.sampling.max_tokens, window, setting)
    return ids


def checked_score_prompt(request: ScoreRequest, prompt_ids: Any, option_ids: Any, window: int | None,
                         setting: str | None = None) -> tuple[list[int], list[list[int]]]:
    """(prompt token ids, each option's token ids) of a scoring request, once it passed
    :func:`check_score_request`, the chat template and :func:`check_context` with its longest option
    (``option_ids(text)`` tokenizes an option as the reply)."""
    check_score_request(request)
    ids = template_ids(request.messages, prompt_ids)
    options = [list(option_ids(o)) for o in request.options]
    if not all(options):
        raise InvalidRequest("an option is no token at all for this model's tokenizer", "invalid_options", "options")
    check_context(len(ids), max(map(len, options), default=0), window, setting, options=True)
    return ids, options


def failure_reason(exc: BaseException, limit: int = 300) -> str:
    """A one-line reason for a failed request: the error's type and the last line of its message
    (Ray wraps remote errors in long tracebacks; their ``cause`` is the original error)."""
    cause = getattr(exc, "cause", None)
    error = cause if isinstance(cause, BaseException) else exc
    text = last_line(error)
    name = type(error).__name__
    return (name if text == name else f"{name}: {text}")[:limit]


@dataclass(frozen=True)
class Failure:
    """A request that failed on its own, in place of its completion: why (see :func:`failure_reason`)."""

    error: str

    @classmethod
    def of(cls, exc: BaseException) -> Failure:
        """The failure of ``exc``."""
        return cls(failure_reason(exc))


async def generate_each(engine: Any, requests: Sequence[ChatRequest]) -> list[Completion | Failure]:
    """Complete every request on its own: a request that fails gives a :class:`Failure` in its place
    and the others complete. The calls are in flight together, so they still share the engine's
    batches (and the transformers engine retries a failed batch one request at a time)."""
    results = await asyncio.gather(*(engine.generate([r]) for r in requests), return_exceptions=True)
    for result in results:
        if isinstance(result, asyncio.CancelledError):
            raise result
    return [Failure.of(r) if isinstance(r, BaseException) else r[0] for r in results]


async def score_each(engine: Any, requests: Sequence[ScoreRequest]) -> list[OptionScores | Failure]:
    """Score every request on its own: a request that fails gives a :class:`Failure` in its place
    and the others their scores, all from one :meth:`Engine.score_batch` call (shared batches)."""
    results = await engine.score_batch(requests, return_exceptions=True)
    for result in results:
        if isinstance(result, asyncio.CancelledError):
            raise result
    return [Failure.of(r) if isinstance(r, BaseException) else r for r in results]


class ScoresThroughBatch:
    """The ``score_options`` every engine shares: one request through the engine's ``score_batch``."""

    async def score_options(
        self, messages: Sequence[Message], options: Sequence[str], adapter: str | None = None
    ) -> OptionScores:
        """The log-probability of each option as the assistant's reply to ``messages``, with the
        options' summed probability as the valid mass; one request of ``score_batch``."""
        [scores] = await self.score_batch([ScoreRequest.of(messages, options, adapter)])  # type: ignore[attr-defined]
        return scores


@runtime_checkable
class Engine(Protocol):
    """What every engine offers. All methods are coroutines so concurrent callers get batched."""

    name: str
    model: str

    async def generate(self, requests: Sequence[ChatRequest]) -> list[Completion]:
        """Complete every request; the i-th completion answers the i-th request."""
        ...

    async def score_options(
        self, messages: Sequence[Message], options: Sequence[str], adapter: str | None = None
    ) -> OptionScores:
        """Return the total log-probability of each option as the assistant's answer to ``messages``,
        with the probability mass the model put on the options (:class:`OptionScores`). The same as
        one request through :meth:`score_batch`."""
        ...

    async def score_batch(self, requests: Sequence[ScoreRequest],
                          return_exceptions: bool = False) -> list[OptionScores | BaseException]:
        """Score many requests together; the i-th result answers the i-th request. Each request is
        checked on its own; with ``return_exceptions`` a failed request gives its exception in its
        place (as :func:`asyncio.gather` does), else the first failure is raised."""
        ...

    def add_adapter(self, name: str, path: str) -> None:
        """Make a LoRA adapter folder available under ``name``."""
        ...

    def adapters(self) -> list[str]:
        """Names of the adapters this engine can apply."""
        ...

    async def close(self) -> None:
        """Release the model and any processes the engine started."""
        ...


def run_sync(coro: Any) -> Any:
    """Run a coroutine to completion from synchronous code (CLI, scripts)."""
    return asyncio.run(coro)
