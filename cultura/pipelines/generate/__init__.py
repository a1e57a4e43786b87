"""Stage 1, ``cultura generate``: seeds x cultures -> CulturePark dialogues.

In: seed questions with each culture's attitude (bundled, or a seed / GlobalOpinionQA file) and the
cultures to talk with. Out: ``OUT/dialogues/part-*.parquet`` (or ``.jsonl``), one row per dialogue in
the schema of :mod:`.schema`, and ``OUT/manifest.json`` with the run's parameters.

Modules: :mod:`.run` plans the dialogues and drives them over Ray Data; :mod:`.dialogue` advances a
batch of dialogues turn by turn; :mod:`.scripts` says who speaks when and with what guidance;
:mod:`.schema` is the dialogue table's Arrow schema.
"""

from cultura.pipelines.generate.run import generate_dialogues, plan_dialogues, read_dialogues

__all__ = ["generate_dialogues", "plan_dialogues", "read_dialogues"]
