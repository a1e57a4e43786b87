"""LLM engines behind one protocol (:class:`cultura.engines.base.Engine`).

``create_engine`` imports the chosen engine lazily, so importing this package stays cheap.
"""

from __future__ import annotations

from cultura.engines.base import ChatRequest, Completion, Engine, OptionScores, ScoreRequest
from cultura.errors import ConfigError
from cultura.sampling import SamplingParams

__all__ = ["ChatRequest", "Completion", "Engine", "OptionScores", "SamplingParams", "ScoreRequest", "create_engine",
           "describe", "ENGINE_KINDS"]

ENGINE_KINDS = ("transformers", "vllm", "openai")


def create_engine(config, num_threads: int | None = None) -> Engine:
    """Build the engine named by ``config.kind`` (an :class:`~cultura.config.EngineConfig`).

    ``num_threads`` sizes torch's CPU threads (the CPUs the calling actor was given); the
    config's ``num_threads`` wins when set.
    """
    if config.kind == "transformers":
        from cultura.engines.transformers_engine import TransformersEngine

        return TransformersEngine(config, num_threads=config.num_threads or num_threads)
    if config.kind == "vllm":
        from cultura.engines.vllm_engine import VllmEngine

        return VllmEngine(config, num_threads=config.num_threads or num_threads)
    if config.kind == "openai":
        from cultura.engines.openai_engine import OpenAIEngine

        return OpenAIEngine(config)
    raise ConfigError(f"engine.kind must be one of {', '.join(ENGINE_KINDS)}, got {config.kind!r}")


def describe(engine: Engine) -> dict:
    """The engine's kind, model, adapters and context window; for the transformers engine also the
    batches and rows it has run, the rows dropped because their callers left, the failed batches run
    again one request at a time, its prefix cache's figures (entries, bytes, hits, misses, prompt
    tokens not re-read), the decode loop's totals (:class:`~cultura.engines.decode.DecodeStats`) and
    option scoring's (:class:`~cultura.engines.scoring.ScoreStats`)."""
    info = {"engine": engine.name, "model": engine.model, "adapters": engine.adapters(),
            "context_window": getattr(engine, "context_window", None),
            "batches_run": getattr(engine, "batches_run", None), "rows_run": getattr(engine, "rows_run", None),
            "rows_cancelled": getattr(engine, "rows_cancelled", None),
            "batches_retried": getattr(engine, "batches_retried", None)}
    cache = getattr(engine, "prefix_cache", None)
    if cache is not None:
        info["prefix_cache"] = cache.stats()
    decoding = getattr(engine, "decode_stats", None)
    if decoding is not None:
        info["decode"] = decoding.as_dict()
    scoring = getattr(engine, "score_stats", None)
    if scoring is not None:
        info["scoring"] = scoring.as_dict()
    return info
