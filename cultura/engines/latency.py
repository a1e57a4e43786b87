"""The engines' token latency metrics: time to first token and time per output token.

Every engine that times its tokens (:class:`~cultura.engines.base.Completion`'s ``first_token_s``
and ``after_first_s``) records each answer here, in whatever stage it runs (a generation actor, an
evaluation worker, a Serve replica), tagged by model and adapter. Exported as
``ray_cultura_engine_time_to_first_token_seconds`` and ``ray_cultura_engine_time_per_output_token_seconds``;
the Serve app records the same two as its clients see them (:mod:`cultura.serve.metrics`).
"""

from __future__ import annotations

from pathlib import Path

from cultura.metrics import Metrics, histogram

# seconds: a prefix-cached prompt on an idle engine up to a long queue on a busy CPU
FIRST_TOKEN_BOUNDARIES = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120)
# seconds per token: a GPU batch (a few ms) up to a crowded CPU batch (hundreds of ms)
PER_TOKEN_BOUNDARIES = (0.002, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.5, 1, 2)
NO_ADAPTER = "none"  # the adapter tag of an answer from the base model

ENGINE_METRICS = Metrics([
    histogram("engine_time_to_first_token_seconds", "Seconds from a request reaching the engine (queue "
              "included) to its first generated token", ("model", "adapter"), FIRST_TOKEN_BOUNDARIES),
    histogram("engine_time_per_output_token_seconds", "Mean seconds per generated token after the first, "
              "one value per answer", ("model", "adapter"), PER_TOKEN_BOUNDARIES),
])


def short_name(name: str) -> str:
    """A model's or adapter's name for a metric tag: a local folder's name, not its whole path."""
    return Path(str(name)).name or str(name)


def record_latency(completion, model: str, adapter: str | None) -> None:
    """Record ``completion``'s time to first token and time per output token (an untimed one
    records nothing)."""
    tags = {"model": short_name(model), "adapter": short_name(adapter) if adapter else NO_ADAPTER}
    if completion.first_token_s is not None:
        ENGINE_METRICS.observe("engine_time_to_first_token_seconds", completion.first_token_s, **tags)
    if completion.per_token_s is not None:
        ENGINE_METRICS.observe("engine_time_per_output_token_seconds", completion.per_token_s, **tags)
