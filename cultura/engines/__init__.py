"""LLM engines behind one protocol (:class:`cultura.engines.base.Engine`).

``create_engine`` imports the engine its settings name lazily, so importing this package stays cheap.
"""

from __future__ import annotations

import importlib

from cultura.config.schema import ENGINE_KINDS, EngineSettings
from cultura.engines.base import ChatRequest, Completion, Engine, OptionScores, ScoreRequest
from cultura.sampling import SamplingParams

__all__ = ["ChatRequest", "Completion", "Engine", "OptionScores", "SamplingParams", "ScoreRequest", "create_engine",
           "describe", "ENGINE_KINDS"]


def create_engine(config: EngineSettings, num_threads: int | None = None) -> Engine:
    """Build the engine ``config`` describes (one of the :data:`~cultura.config.EngineConfig` kinds).

    ``num_threads`` sizes torch's (or vLLM's) CPU threads: the CPUs the calling actor was given; the
    config's ``num_threads`` wins when set.
    """
    module, _, name = config.engine_class.partition(":")
    engine_class = getattr(importlib.import_module(module), name)  # imported here: each pulls in heavy libraries
    return engine_class(config, num_threads=config.threads(num_threads))


def describe(engine: Engine) -> dict:
    """The engine's kind, model, adapters and context window; for the transformers engine also its
    dtype (``auto`` resolved), its int8 decode limit, the batches and rows it has run, the rows
    dropped because their callers left, the failed batches run again one request at a time, its
    prefix cache's figures (entries, bytes, hits, misses, prompt tokens not re-read), the decode
    loop's totals (:class:`~cultura.engines.decode.DecodeStats`) and option scoring's
    (:class:`~cultura.engines.scoring.ScoreStats`)."""
    info = {"engine": engine.name, "model": engine.model, "adapters": engine.adapters(),
            "context_window": getattr(engine, "context_window", None), "dtype": getattr(engine, "dtype", None),
            "int8_decode_rows": getattr(engine, "int8_decode_rows", None),
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
