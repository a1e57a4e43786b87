"""What the generation benchmarks share: a run's turns rebuilt as engine requests, and the engine's
raw batched throughput on them (the ceiling a pipeline is measured against)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any


def turn_requests(rows: Sequence[dict[str, Any]], sampling: Any) -> list[Any]:
    """Every turn of the dialogue ``rows`` (written by ``cultura generate``) as the ChatRequest that
    produced it, turn index by turn index across the dialogues (so each prompt extends one sent before)."""
    from cultura.engines.base import ChatRequest
    from cultura.pipelines.generate.scripts import conversation_for

    requests = []
    for index in range(max((len(r["turns"]) for r in rows), default=0)):
        for row in rows:
            if index < len(row["turns"]):
                turn = row["turns"][index]
                system = next(s["system_prompt"] for s in row["speakers"] if s["name"] == turn["speaker"])
                messages = [{"role": "system", "content": system},
                            *conversation_for(turn["speaker"], row["turns"][:index], turn["guidance"],
                                              named=len(row["speakers"]) > 2)]
                requests.append(ChatRequest(tuple(messages), sampling))
    return requests


def batched_throughput(engine: Any, requests: Sequence[Any], batch: int) -> tuple[int, float]:
    """(generated tokens, seconds) of ``requests`` sent to the engine actor in full batches of ``batch``,
    one batch after another, after its cached prompt states are dropped (as a run of its own would)."""
    import ray

    ray.get(engine.clear_prefix_cache.remote())
    start = time.perf_counter()
    tokens = 0
    for i in range(0, len(requests), batch):
        tokens += sum(c.completion_tokens for c in ray.get(engine.generate.remote(list(requests[i:i + batch]))))
    return tokens, time.perf_counter() - start
