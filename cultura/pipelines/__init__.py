"""Pipelines: the stages that turn seeds into dialogues, refined data, adapters and datasets.

One package per stage, in the order of the data path: :mod:`.generate` (seeds -> dialogues),
:mod:`.refine` (dialogues -> SFT sets), :mod:`.finetune` (SFT sets -> LoRA adapters), and
:mod:`.palette_data` (prompts -> a Cultural Palette dataset). What they share stays here:
:mod:`.writer`, the streaming, atomic Parquet/JSONL output.

Each stage is a Python function plus a CLI subcommand; it reads and writes files a user can open
(Parquet with an Arrow schema written down once in code, JSONL).
"""
