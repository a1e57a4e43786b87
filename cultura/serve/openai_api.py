"""The OpenAI chat-completions schema as cultura serves it: requests, responses, stream chunks, errors.

Pure pydantic and Python (no Ray), so the models are testable and importable anywhere. cultura's own
extensions ride beside the OpenAI fields: ``country`` in the body (``extra_body={"country": ...}`` in
the ``openai`` client), ``language`` (the answer's language; ``auto``, the default, is the language of
the last user message), ``repetition_penalty`` as vLLM's server takes it, ``no_repeat_ngram_size``, and
``POST /v1/palette``'s request and result.

Types are strict where a lax reading would guess: ``max_tokens: true`` or ``stream: "yes"`` is a 400,
not 1 or true; ``seed`` is a signed 64-bit integer; every text must be encodable as UTF-8 (JSON can
carry a lone surrogate such as ``"\\ud800"``). A name a client sent is echoed in an error cut to
:data:`~cultura.errors.ECHO_CHARS` characters.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt,
                      field_validator, model_validator)

from cultura.sampling import MAX_NO_REPEAT_NGRAM, MAX_REPETITION_PENALTY, MAX_TEMPERATURE, MAX_TOKENS, SEED_RANGE
from cultura.errors import clip

ROLES = ("system", "developer", "user", "assistant")

def _unicode(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"the text is not valid Unicode (character {exc.start} is a lone surrogate)") from None
    return text


Text = Annotated[str, AfterValidator(_unicode)]  # a string that can be encoded as UTF-8


class ApiError(Exception):
    """An error the API answers with ``status`` and an OpenAI-style body (never a traceback)."""

    def __init__(self, status: int, message: str, type: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code

    def body(self, request_id: str | None = None) -> dict[str, Any]:
        """``{"error": {"message", "type", "param", "code", "request_id"}}``."""
        return error_body(self.message, self.type, self.param, self.code, request_id)


def error_body(message: str, type: str = "invalid_request_error", param: str | None = None,
               code: str | None = None, request_id: str | None = None) -> dict[str, Any]:
    """The OpenAI error object ``{"error": {"message", "type", "param", "code"}}`` plus the request
    id the server log names it by (also the ``X-Request-ID`` response header)."""
    return {"error": {"message": message, "type": type, "param": param, "code": code, "request_id": request_id}}


# ----- requests ---------------------------------------------------------------------------------
class _Lenient(BaseModel):
    """Unknown fields are ignored, as OpenAI clients send optional parameters freely."""

    model_config = ConfigDict(extra="ignore")


class ContentPart(_Lenient):
    """One part of a multi-part message; only text parts are understood."""

    type: Text
    text: Text | None = None


class ChatMessage(_Lenient):
    """One chat message. ``developer`` is treated as ``system``; ``content`` may be text parts."""

    role: Literal["system", "developer", "user", "assistant"]
    content: Text | list[ContentPart] | None = None
    name: Text | None = None

    def text(self) -> str:
        """The message's text (text parts joined); a non-text part is a 400."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        texts = []
        for part in self.content:
            if part.type != "text" or part.text is None:
                raise ApiError(400, f"content parts of type {clip(part.type)!r} are not supported; send text",
                               param="messages", code="unsupported_content")
            texts.append(part.text)
        return "\n".join(texts)


class StreamOptions(_Lenient):
    """``stream_options``: ``include_usage`` adds a last chunk with the token counts."""

    include_usage: StrictBool = False


class SamplingFields(_Lenient):
    """Sampling fields shared by ``/v1/chat/completions`` and ``/v1/palette``."""

    max_tokens: StrictInt | None = Field(None, ge=1, le=MAX_TOKENS)
    max_completion_tokens: StrictInt | None = Field(None, ge=1, le=MAX_TOKENS)
    temperature: StrictFloat | None = Field(None, ge=0, le=MAX_TEMPERATURE)
    top_p: StrictFloat | None = Field(None, gt=0, le=1)
    seed: StrictInt | None = Field(None, ge=SEED_RANGE[0], le=SEED_RANGE[1])
    stop: Text | list[Text] | None = None
    repetition_penalty: StrictFloat | None = Field(None, gt=0, le=MAX_REPETITION_PENALTY,
                                                   description="as vLLM's server: the repetition guard, 1.0 off")
    no_repeat_ngram_size: StrictInt | None = Field(None, ge=0, le=MAX_NO_REPEAT_NGRAM,
                                                   description="cultura: the no-repeat n-gram guard, 0 off")
    country: Text | None = Field(None, description="cultura: the target country (name, alias or demonym)")
    language: Text | None = Field(None, description="cultura: the answer's language, a name or ISO 639 code; "
                                                    "auto (the default): the language of the last user message")

    def token_limit(self) -> int | None:
        """``max_completion_tokens`` (the newer name) or ``max_tokens``."""
        return self.max_completion_tokens or self.max_tokens

    def stops(self) -> tuple[str, ...]:
        """``stop`` as a tuple (OpenAI allows a string or up to four strings)."""
        if self.stop is None:
            return ()
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop)
        if len(stops) > 4 or any(not s for s in stops):
            raise ApiError(400, "stop: give at most 4 non-empty strings", param="stop")
        return tuple(stops)


class ChatCompletionRequest(SamplingFields):
    """``POST /v1/chat/completions``."""

    model: Text = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    n: StrictInt = 1
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    user: Text | None = None

    @field_validator("n")
    @classmethod
    def _one_choice(cls, n: int) -> int:
        if n != 1:
            raise ValueError("only n=1 is supported")
        return n


class PaletteRequest(SamplingFields):
    """``POST /v1/palette``: a ``prompt`` or OpenAI ``messages`` (one of them)."""

    prompt: Text | None = None
    messages: list[ChatMessage] | None = None

    @model_validator(mode="after")
    def _one_input(self) -> PaletteRequest:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("give exactly one of 'prompt' and 'messages'")
        if self.messages is not None and not self.messages:
            raise ValueError("messages must not be empty")
        return self

    def chat(self) -> list[ChatMessage]:
        """The request as chat messages."""
        return self.messages if self.messages is not None else [ChatMessage(role="user", content=self.prompt)]


# ----- conversations ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Conversation:
    """A validated chat: the client's system text, earlier turns, and the last user message."""

    system: str | None
    history: tuple[dict[str, str], ...]
    prompt: str
    chars: int

    def turns(self) -> list[dict[str, str]]:
        """Earlier turns plus the prompt as user/assistant messages (no system message)."""
        return [*self.history, {"role": "user", "content": self.prompt}]

    def messages(self) -> list[dict[str, str]]:
        """The conversation as the client sent it: its system text (if any), earlier turns, the prompt."""
        return ([{"role": "system", "content": self.system}] if self.system else []) + self.turns()

    def frame(self, persona_chat: list[dict[str, str]]) -> list[dict[str, str]]:
        """A persona's single-turn chat ``[system, user]`` with the client's system text appended to
        the persona's system prompt and the earlier turns inserted before the question."""
        system, *rest = persona_chat
        if self.system:
            system = {"role": "system", "content": f"{system['content']}\n\n{self.system}"}
        return [system, *self.history, *rest]


def conversation(messages: list[ChatMessage], max_chars: int, max_messages: int | None = None) -> Conversation:
    """Validate OpenAI messages into a :class:`Conversation`.

    System (and developer) messages are joined into one system text; the last message must be a
    non-empty user message; there may be at most ``max_messages`` messages (else HTTP 400) and all
    content together must fit ``max_chars`` (else HTTP 413).
    """
    if max_messages is not None and len(messages) > max_messages:
        raise ApiError(400, f"the request has {len(messages)} messages; this server accepts at most {max_messages}",
                       param="messages", code="too_many_messages")
    system, turns, chars = [], [], 0
    for i, m in enumerate(messages):
        text = m.text()
        chars += len(text)
        if m.role in ("system", "developer"):
            system.append(text)
        else:
            turns.append({"role": m.role, "content": text})
    if chars > max_chars:
        raise ApiError(413, f"the messages hold {chars} characters; this server accepts at most {max_chars}",
                       param="messages", code="prompt_too_long")
    if not turns or turns[-1]["role"] != "user":
        raise ApiError(400, "the last message must be from the user", param="messages", code="invalid_messages")
    if not turns[-1]["content"].strip():
        raise ApiError(400, "the last user message is empty", param="messages", code="invalid_messages")
    text = "\n".join(s for s in system if s.strip()) or None
    return Conversation(text, tuple(turns[:-1]), turns[-1]["content"].strip(), chars)


# ----- responses --------------------------------------------------------------------------------
class Usage(BaseModel):
    """Token counts (for ``palette``: every model call of the request together)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    @classmethod
    def of(cls, prompt_tokens: int, completion_tokens: int) -> Usage:
        """Usage with the total filled in."""
        return cls(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                   total_tokens=prompt_tokens + completion_tokens)


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: str
    logprobs: None = None


class ChatCompletion(BaseModel):
    """A non-streaming chat completion."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage


class Delta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: Delta
    finish_reason: str | None = None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    """One server-sent event of a streaming completion."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "cultura"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


def completion_id() -> str:
    """A fresh ``chatcmpl-...`` id."""
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def chat_completion(model: str, text: str, finish_reason: str, usage: Usage, id: str | None = None) -> ChatCompletion:
    """A one-choice :class:`ChatCompletion`."""
    return ChatCompletion(id=id or completion_id(), created=int(time.time()), model=model, usage=usage,
                          choices=[Choice(message=AssistantMessage(content=text), finish_reason=finish_reason)])


_PIECES = re.compile(r"\s*\S+|\s+")


def text_pieces(text: str) -> list[str]:
    """``text`` cut into word-sized pieces (each with its leading whitespace) for streaming."""
    return _PIECES.findall(text)


def sse(data: Any) -> str:
    """One server-sent event line: ``data: <json>`` and a blank line."""
    payload = data.model_dump_json(exclude_none=False) if isinstance(data, BaseModel) else json.dumps(data)
    return f"data: {payload}\n\n"


SSE_DONE = "data: [DONE]\n\n"


class ChunkWriter:
    """Builds the OpenAI chunk sequence of one streamed completion (same id and timestamp throughout)."""

    def __init__(self, model: str, id: str | None = None):
        self.model, self.id, self.created = model, id or completion_id(), int(time.time())

    def chunk(self, delta: Delta, finish_reason: str | None = None, usage: Usage | None = None,
              choices: bool = True) -> str:
        """One ``data:`` event; ``choices=False`` gives the usage-only last chunk (``choices: []``)."""
        body = ChatCompletionChunk(id=self.id, created=self.created, model=self.model, usage=usage,
                                   choices=[ChunkChoice(delta=delta, finish_reason=finish_reason)] if choices else [])
        return sse(body)

    def role(self) -> str:
        """The first chunk: the assistant role with empty content (sent as soon as the request is accepted)."""
        return self.chunk(Delta(role="assistant", content=""))

    def content(self, text: str, finish_reason: str, usage: Usage | None) -> Iterator[str]:
        """The text in word pieces, a closing chunk with ``finish_reason``, the usage chunk if asked, [DONE]."""
        for piece in text_pieces(text):
            yield self.chunk(Delta(content=piece))
        yield self.chunk(Delta(), finish_reason=finish_reason)
        if usage is not None:
            yield self.chunk(Delta(), usage=usage, choices=False)
        yield SSE_DONE

    def error(self, err: ApiError, request_id: str | None = None) -> Iterator[str]:
        """An error after the stream started: one ``data: {"error": ...}`` event, then [DONE]."""
        yield sse(err.body(request_id))
        yield SSE_DONE
