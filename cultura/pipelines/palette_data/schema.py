"""The Palette dataset's rows: the published format (``query, continent, response, rejected_response``)
plus audit columns, and the per-continent outcome rows the synthesis worker produces."""

from __future__ import annotations

import functools
from typing import Any

from cultura.data.hofstede import DIMENSIONS

PARQUET, JSONL, MANIFEST = "palette.parquet", "palette.jsonl", "manifest.json"


@functools.cache
def palette_schema() -> Any:
    """The Arrow schema of the Palette dataset (``OUT/palette.parquet``; JSONL rows have the same fields).

    ``query``, ``continent``, ``response`` (chosen) and ``rejected_response`` (the other continents'
    chosen responses, with their continents in ``rejected_continents``) are the published format;
    the rest is the audit trail: the judge's ratings (1-5, expected scale points) for the chosen
    response with their summary line (``judge_text``) and valid mass, its distance to the continent
    centroid, and every sample with its ratings and distance.
    """
    import pyarrow as pa

    ratings = pa.struct([pa.field(d, pa.float32()) for d in DIMENSIONS])
    candidate = pa.struct([
        pa.field("response", pa.string(), nullable=False),
        pa.field("judge_text", pa.string(), nullable=False),
        pa.field("ratings", ratings, nullable=False),
        pa.field("valid_mass", pa.float64()),  # mean probability the judge put on the scale's numbers
        pa.field("distance", pa.float64()),
    ])
    return pa.schema([
        pa.field("query", pa.string(), nullable=False),
        pa.field("continent", pa.string(), nullable=False),
        pa.field("response", pa.string(), nullable=False),
        pa.field("rejected_response", pa.list_(pa.string()), nullable=False),
        pa.field("rejected_continents", pa.list_(pa.string()), nullable=False),
        pa.field("prompt_id", pa.string()),
        pa.field("topic", pa.string()),
        pa.field("judge_ratings", ratings),
        pa.field("judge_text", pa.string()),
        pa.field("judge_valid_mass", pa.float64()),
        pa.field("hofstede_distance", pa.float64()),
        pa.field("candidates", pa.list_(candidate)),
        pa.field("source", pa.string(), nullable=False),  # "cultura" (synthesized) or the loaded file
        pa.field("model", pa.string()),
        pa.field("created_at", pa.timestamp("us", tz="UTC")),
    ])

@functools.cache
def outcome_schema() -> Any:
    """What a synthesis worker returns: one row per prompt and continent, with ``status`` ``kept`` (a
    Palette row) or why the continent was dropped: ``far`` (best sample beyond ``max_distance``),
    ``unrated`` (no readable rating), ``alone`` (no other continent kept to reject)."""
    import pyarrow as pa

    fields = [pa.field(f.name, f.type) for f in palette_schema()]
    return pa.schema(fields + [pa.field("status", pa.string(), nullable=False),
                               pa.field("ratings_read", pa.int32(), nullable=False)])
