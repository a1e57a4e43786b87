"""The dialogue table written by ``cultura generate`` (and read by ``cultura refine``).

One row per dialogue. The Arrow schema is written down here once; the writer, the reader and the
dialogue workers all build their tables from it. ``turns`` holds the utterances in order; each
``speakers`` entry records the persona and the exact system prompt (with any self-calibration) that
its turns were generated under.
"""

from __future__ import annotations

import functools
from typing import Any

MODES = ("cross", "in", "multi")
SCRIPTS = ("self-guidance", "free")
ROLES = ("main_contact", "delegate")


@functools.cache
def turn_type():
    """Arrow struct of one utterance: who spoke, as which role and culture, what, at what cost."""
    import pyarrow as pa

    return pa.struct([
        pa.field("speaker", pa.string(), nullable=False),
        pa.field("role", pa.string(), nullable=False),
        pa.field("culture", pa.string()),
        pa.field("text", pa.string(), nullable=False),
        pa.field("prompt_tokens", pa.int32(), nullable=False),
        pa.field("completion_tokens", pa.int32(), nullable=False),
        pa.field("guidance", pa.string()),
    ])


@functools.cache
def speaker_type():
    """Arrow struct of one dialogue participant and the system prompt its turns used."""
    import pyarrow as pa

    return pa.struct([
        pa.field("key", pa.string(), nullable=False),
        pa.field("name", pa.string(), nullable=False),
        pa.field("role", pa.string(), nullable=False),
        pa.field("culture", pa.string()),
        pa.field("country", pa.string()),
        pa.field("adapter", pa.string()),
        pa.field("system_prompt", pa.string(), nullable=False),
    ])


@functools.cache
def seed_identity_fields():
    """The columns that say which dialogue and seed a row comes from, first in the dialogue table and
    in every refinement table built from it."""
    import pyarrow as pa

    return (
        pa.field("dialogue_id", pa.string(), nullable=False),
        pa.field("seed_id", pa.string(), nullable=False),
        pa.field("seed_source", pa.string(), nullable=False),
        pa.field("seed_text", pa.string(), nullable=False),
        pa.field("seed_kind", pa.string(), nullable=False),
        pa.field("options", pa.list_(pa.string())),
    )


@functools.cache
def dialogue_schema():
    """The Arrow schema of the dialogue table (``OUT/dialogues/part-*.parquet``)."""
    import pyarrow as pa

    return pa.schema([
        *seed_identity_fields(),
        pa.field("culture", pa.string(), nullable=False),  # "german"; multi mode: "chinese+german"
        pa.field("country", pa.string()),  # null in multi mode (see the speakers)
        # the Ray node the delegate ran on; several (comma-separated, in order) when the dialogue has
        # more delegates or its delegate was restarted on another node; null when not run on Ray
        pa.field("node_id", pa.string()),
        pa.field("attitude", pa.string()),  # the culture's answer to the seed, null when unknown
        # whose survey data the attitude is: a country, "pooled: A, B", or per culture in multi mode
        pa.field("attitude_country", pa.string()),
        pa.field("mode", pa.string(), nullable=False),
        pa.field("script", pa.string(), nullable=False),
        pa.field("calibration", pa.bool_(), nullable=False),
        pa.field("variation", pa.int32(), nullable=False),
        pa.field("rounds", pa.int32(), nullable=False),
        pa.field("speakers", pa.list_(speaker_type())),
        pa.field("turns", pa.list_(turn_type())),
        pa.field("model", pa.string(), nullable=False),
        pa.field("adapter", pa.string()),
        pa.field("engine", pa.string(), nullable=False),
        pa.field("prompt_tokens", pa.int64(), nullable=False),
        pa.field("completion_tokens", pa.int64(), nullable=False),
        pa.field("seconds", pa.float64(), nullable=False),
        pa.field("created_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ])


@functools.cache
def result_schema():
    """What a dialogue worker returns: the dialogue columns plus ``error`` (null unless it failed).

    Failed dialogues are counted and reported by the driver, never written, so ``--resume`` retries them.
    """
    import pyarrow as pa

    return dialogue_schema().append(pa.field("error", pa.string()))


def to_table(rows: list[dict[str, Any]], schema=None):
    """Build an Arrow table of ``rows`` (dicts) with the dialogue schema (or ``schema``)."""
    import pyarrow as pa

    return pa.Table.from_pylist(rows, schema=schema or dialogue_schema())


def conform(table):
    """Cast a table to the dialogue schema, dropping extra columns (such as ``error``)."""
    schema = dialogue_schema()
    return table.select(schema.names).cast(schema)
