"""The engine protocol: many chat requests in, completions out; option scoring for evaluation.

Every engine (transformers, vllm, openai) implements :class:`Engine`. Requests are small value
objects so they travel through Ray (pickled) and Ray Data rows (as dicts) unchanged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

Message = Mapping[str, str]  # {"role": "system" | "user" | "assistant", "content": str}
VALID_ROLES = ("system", "user", "assistant")
MAX_REPETITION_PENALTY = 2.0  # beyond this the penalty garbles answers rather than guarding them


@dataclass(frozen=True)
class SamplingParams:
    """How to sample one completion. ``temperature == 0`` means greedy decoding.

    ``repetition_penalty`` is the repetition guard, as vLLM and transformers define it: the logit of
    every token already in the prompt or the answer is divided by it (multiplied when negative)
    before sampling; 1.0 is off, about 1.1 keeps a small model's answers from looping.
    """

    max_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    repetition_penalty: float = 1.0

    def __post_init__(self) -> None:
        from cultura.errors import ConfigError

        if self.max_tokens < 1:
            raise ConfigError(f"sampling.max_tokens must be >= 1, got {self.max_tokens}")
        if self.temperature < 0:
            raise ConfigError(f"sampling.temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"sampling.top_p must be in (0, 1], got {self.top_p}")
        if not 0 < self.repetition_penalty <= MAX_REPETITION_PENALTY:
            raise ConfigError(f"sampling.repetition_penalty must be in (0, {MAX_REPETITION_PENALTY:g}], "
                              f"got {self.repetition_penalty}")

    @property
    def greedy(self) -> bool:
        """True when decoding is deterministic (temperature 0)."""
        return self.temperature == 0.0

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (for Arrow rows and JSON)."""
        return asdict(self) | {"stop": list(self.stop)}


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
    """One generated answer with its token counts. ``finish_reason`` is "stop" or "length"."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str = "stop"

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (for Arrow rows and JSON)."""
        return asdict(self)


def validate_messages(messages: Sequence[Message]) -> None:
    """Raise :class:`~cultura.errors.CulturaError` unless ``messages`` is a non-empty chat."""
    from cultura.errors import CulturaError

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
    ) -> list[float]:
        """Return the total log-probability of each option as the assistant's answer to ``messages``."""
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
