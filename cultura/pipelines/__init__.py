"""Pipelines: the stages that turn seeds into dialogues, refined data, adapters and datasets.

Each stage is a Python function plus a CLI subcommand; it reads and writes files a user can open
(Parquet with an Arrow schema written down once in code, JSONL).
"""
