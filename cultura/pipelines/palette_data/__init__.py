"""``cultura palette-data``: PRISM-style prompts x five continents -> a Cultural Palette dataset.

In: prompts (bundled or a JSONL file). Out: ``OUT/palette.parquet`` and ``OUT/palette.jsonl`` (one
preferred response per prompt and continent, with the other continents' as rejected) and
``OUT/manifest.json``; ``cultura finetune --per continent`` trains the continent adapters on it.
"""

from cultura.pipelines.palette_data.synthesize import read_palette, synthesize_palette

__all__ = ["read_palette", "synthesize_palette"]
