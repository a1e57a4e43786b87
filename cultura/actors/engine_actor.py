"""A Ray actor hosting one engine, shared by every agent that forwards to it.

The actor is async with many concurrent calls allowed, so calls from many agents and Ray Data
workers land in the engine's batcher together and run as shared batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cultura.engines import create_engine, describe
from cultura.engines.base import (
    ChatRequest,
    Completion,
    Failure,
    Message,
    OptionScores,
    ScoreRequest,
    generate_each,
    score_each,
)


class EngineHost:
    """Holds one engine built from an ``EngineConfig``; the Ray actor class wraps this."""

    def __init__(self, engine_config: Any, num_threads: int | None = None):
        self.engine = create_engine(engine_config, num_threads=num_threads)

    async def generate(self, requests: Sequence[ChatRequest]) -> list[Completion]:
        """Complete the requests (see :meth:`cultura.engines.base.Engine.generate`)."""
        return await self.engine.generate(requests)

    async def generate_each(self, requests: Sequence[ChatRequest]) -> list[Completion | Failure]:
        """Complete the requests, each on its own: a failing one gives a :class:`Failure` in its
        place, the others their completions (see :func:`cultura.engines.base.generate_each`)."""
        return await generate_each(self.engine, requests)

    async def score_options(self, messages: Sequence[Message], options: Sequence[str],
                            adapter: str | None = None) -> OptionScores:
        """Log-probability of each option and the valid mass (see :meth:`cultura.engines.base.Engine.score_options`)."""
        return await self.engine.score_options(messages, options, adapter)

    async def score_each(self, requests: Sequence[ScoreRequest]) -> list[OptionScores | Failure]:
        """Score the requests together, each on its own: a failing one gives a :class:`Failure` in its
        place, the others their scores (see :func:`cultura.engines.base.score_each`)."""
        return await score_each(self.engine, requests)

    def add_adapter(self, name: str, path: str) -> None:
        """Register an adapter folder with the engine."""
        self.engine.add_adapter(name, path)

    def info(self) -> dict[str, Any]:
        """What :func:`cultura.engines.describe` says of the engine."""
        return describe(self.engine)

    def clear_prefix_cache(self) -> None:
        """Forget the prompt states the engine keeps (transformers engine); others keep none."""
        cache = getattr(self.engine, "prefix_cache", None)
        if cache is not None:
            cache.clear()

    async def close(self) -> None:
        """Free the engine."""
        await self.engine.close()


def engine_actor_options(resources: Any, name: str | None = None) -> dict[str, Any]:
    """Ray actor options for an engine host with the given ``Resources`` (restarts on failure)."""
    opts: dict[str, Any] = dict(
        num_cpus=resources.num_cpus,
        num_gpus=resources.num_gpus,
        max_concurrency=1024,
        max_restarts=3,
        # a call in flight when the actor's node is lost waits for the restarted actor, however long
        # the restart takes (loading the model on another node); calls are stateless, so a retry is safe
        max_task_retries=-1,
    )
    if name:
        opts.update(name=name, get_if_exists=True)
    return opts


def start_engine_actor(engine_config: Any, resources: Any, name: str | None = None):
    """Start (or reuse, when ``name`` is given) an engine actor; returns its handle.

    Torch threads match the CPUs the actor is given.
    """
    import ray

    cls = ray.remote(EngineHost)
    threads = max(1, int(resources.num_cpus)) if resources.num_cpus else None
    return cls.options(**engine_actor_options(resources, name)).remote(engine_config, threads)
