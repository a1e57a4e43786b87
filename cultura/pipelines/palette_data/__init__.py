"""``cultura palette-data``: PRISM-style prompts x five continents -> a Cultural Palette dataset.

In: prompts (bundled or a JSONL file). Out: ``OUT/palette.parquet`` and ``OUT/palette.jsonl`` (one
preferred response per prompt and continent, with the other continents' as rejected) and
``OUT/manifest.json``; ``cultura finetune --per continent`` trains the continent adapters on it.

Modules: :mod:`.schema` (the rows), :mod:`.select` (which response a continent keeps),
:mod:`.worker` (the Ray Data stage: sample, judge, select), :mod:`.synthesize` (the run) and
:mod:`.read` (reading a dataset back, cultura's or a published Palette JSONL).
"""

from cultura.pipelines.palette_data.read import read_palette
from cultura.pipelines.palette_data.synthesize import synthesize_palette

__all__ = ["read_palette", "synthesize_palette"]
