"""Stage 2, ``cultura refine``: dialogues -> opinions -> verified -> representatives -> SFT sets.

In: a generation run folder (``IN/manifest.json``, ``IN/dialogues/part-*``). Out:
``OUT/extractions.parquet``, ``OUT/opinions.parquet`` (every opinion with every decision taken about
it), ``OUT/sft/<culture>.jsonl`` and ``.parquet`` (the fine-tuning sets) and ``OUT/summary.json``.

Modules: :mod:`.run` drives the stages; :mod:`.input` reads the generation run; :mod:`.opinions`
extracts opinions; :mod:`.verify` labels and rewrites them; :mod:`.diversify` embeds and clusters
them; :mod:`.llm_stage` runs the LLM steps on Ray Data; :mod:`.sft` writes the fine-tuning sets;
:mod:`.schema` holds the tables' Arrow schemas.
"""

from cultura.pipelines.refine.run import refine

__all__ = ["refine"]
