"""The tables ``cultura refine`` writes, their Arrow schemas written down once.

- ``OUT/extractions.parquet``: one row per extraction unit (dialogue x delegate culture) with the
  model's raw answer, the opinions read from it and the items the parser rejected (and why), or
  the reason the unit's request failed (``error``).
- ``OUT/opinions.parquet``: one row per extracted opinion with every decision taken about it:
  the verification labels, the rewrite, the audit trail, the cluster and whether it was selected.
- ``OUT/sft/<culture>.parquet``: the fine-tuning records (same fields as ``<culture>.jsonl``).
"""

from __future__ import annotations

import functools

from cultura.pipelines.generate.schema import seed_identity_fields

# the dialogue columns an extraction unit (and every opinion) carries along
SEED_COLUMNS = ("dialogue_id", "seed_id", "seed_source", "seed_text", "seed_kind", "options", "culture",
                "country", "attitude", "mode")


@functools.cache
def _seed_fields():
    import pyarrow as pa

    return [
        *seed_identity_fields(),
        pa.field("culture", pa.string(), nullable=False),  # one culture key, also in multi mode
        pa.field("country", pa.string(), nullable=False),  # the country opinions are attributed to
        pa.field("attitude", pa.string()),  # the culture's answer to the seed; null when unknown
        pa.field("mode", pa.string(), nullable=False),
    ]


@functools.cache
def unit_schema():
    """One extraction unit: a dialogue's delegate turns of one culture (``text``)."""
    import pyarrow as pa

    return pa.schema([pa.field("unit_id", pa.string(), nullable=False), *_seed_fields(),
                      pa.field("text", pa.string(), nullable=False)])


@functools.cache
def extraction_schema():
    """``OUT/extractions.parquet``: a unit (without its text), the raw answer and what was read from it."""
    import pyarrow as pa

    rejected = pa.struct([pa.field("text", pa.string(), nullable=False),
                          pa.field("reason", pa.string(), nullable=False)])
    return pa.schema([pa.field("unit_id", pa.string(), nullable=False), *_seed_fields(),
                      pa.field("answer", pa.string(), nullable=False),
                      pa.field("finish_reason", pa.string(), nullable=False),
                      pa.field("opinions", pa.list_(pa.string()), nullable=False),
                      pa.field("rejected", pa.list_(rejected), nullable=False),
                      pa.field("error", pa.string())])  # why the extraction failed; null when it ran


@functools.cache
def audit_type():
    """One step of an opinion's verification: verify, rewrite or reverify (the rewrite's verification).
    Verify steps carry the label probabilities from option scoring; a rewrite step the model's answer."""
    import pyarrow as pa

    return pa.struct([
        pa.field("step", pa.string(), nullable=False),
        pa.field("input", pa.string(), nullable=False),  # the text judged or rewritten
        pa.field("output", pa.string(), nullable=False),  # the rewrite's raw answer; a verify step's label probabilities
        pa.field("label", pa.string()),  # the most probable label (verify steps)
        pa.field("probs", pa.list_(pa.float64())),  # each label's probability, Entail / Contradict / Irrelevant
        pa.field("valid_mass", pa.float64()),  # probability the model put on the label options at all
    ])


@functools.cache
def opinion_schema():
    """``OUT/opinions.parquet``: every extracted opinion and every decision about it.

    Verification columns are null when the run stopped at ``generate``; diversify columns when it
    stopped before ``diversify`` or the opinion did not survive verification.
    """
    import pyarrow as pa

    return pa.schema([
        pa.field("opinion_id", pa.string(), nullable=False),
        pa.field("unit_id", pa.string(), nullable=False),
        *_seed_fields(),
        pa.field("index", pa.int32(), nullable=False),  # position in the unit's extracted list
        pa.field("opinion", pa.string(), nullable=False),  # as extracted
        pa.field("label", pa.string()),
        pa.field("rewrite", pa.string()),
        pa.field("rewrite_label", pa.string()),
        pa.field("verified", pa.bool_()),
        pa.field("decision", pa.string()),  # kept, kept-rewrite, dropped-irrelevant, dropped-rewrite-*, failed, ...
        pa.field("error", pa.string()),  # why a verification step failed (decision "failed"); else null
        pa.field("valid_mass", pa.float64()),  # of the opinion's verification (mean over the label orders)
        pa.field("audit", pa.list_(audit_type())),
        pa.field("text", pa.string(), nullable=False),  # what goes to fine-tuning: the opinion or its rewrite
        pa.field("cluster", pa.int32()),
        pa.field("distance", pa.float32()),  # to the cluster centroid (L2-normalised embeddings)
        pa.field("representative", pa.bool_()),
        pa.field("selected", pa.bool_(), nullable=False),  # in the fine-tuning set of this run
    ])


@functools.cache
def sft_schema():
    """``OUT/sft/<culture>.parquet``: OpenAI chat fine-tuning records with their provenance."""
    import pyarrow as pa

    message = pa.struct([pa.field("role", pa.string(), nullable=False),
                         pa.field("content", pa.string(), nullable=False)])
    return pa.schema([
        pa.field("messages", pa.list_(message), nullable=False),
        pa.field("culture", pa.string(), nullable=False),
        pa.field("seed_id", pa.string(), nullable=False),
        pa.field("dialogue_id", pa.string(), nullable=False),
        pa.field("opinion_id", pa.string(), nullable=False),
    ])
