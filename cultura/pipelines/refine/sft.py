"""Fine-tuning sets per culture in the OpenAI chat fine-tuning format, as JSONL and Parquet.

As in the CulturePark paper: the system message makes the model a chatbot of the culture, the user
asks the seed question with its options, and the assistant gives the culture's answer followed by the
opinion. Records carry the culture and the seed, dialogue and opinion they came from.
``cultura finetune --per culture`` reads exactly these files (``OUT/sft/<culture>.jsonl``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

SYSTEM = "You are {article} {display} chatbot that knows {display} very well."


def culture_display(culture: str) -> str:
    """The culture's display name ("German"); an unknown key is title-cased."""
    from cultura.data.cultures import get_culture
    from cultura.errors import CulturaError

    try:
        return get_culture(culture).display
    except CulturaError:
        return culture.replace("_", " ").title()


def system_prompt(culture: str) -> str:
    """``You are a German chatbot that knows German very well.`` (``an`` before a vowel)."""
    display = culture_display(culture)
    return SYSTEM.format(article="an" if display[:1].upper() in "AEIOU" else "a", display=display)


def seed_prompt(row: Mapping[str, Any]) -> str:
    """The seed question (or statement) with its options, as the user turn of a record."""
    from cultura.data.seeds import Seed

    seed = Seed(id=row["seed_id"], source=row["seed_source"], topic="", kind=row["seed_kind"],
                text=row["seed_text"], options=tuple(row.get("options") or ()))
    return seed.prompt_text() if seed.options else seed.text


def assistant_answer(attitude: str | None, opinion: str) -> str:
    """The culture's answer followed by the opinion ("Very important. People in Germany ...")."""
    if not attitude:
        return opinion
    attitude = attitude.strip()
    return f"{attitude} {opinion}" if attitude.endswith((".", "!", "?")) else f"{attitude}. {opinion}"


def sft_record(row: Mapping[str, Any]) -> dict[str, Any]:
    """One fine-tuning record for an opinion row (``opinion_schema``; its ``text`` is the opinion used)."""
    return {
        "messages": [
            {"role": "system", "content": system_prompt(row["culture"])},
            {"role": "user", "content": seed_prompt(row)},
            {"role": "assistant", "content": assistant_answer(row.get("attitude"), row["text"])},
        ],
        "culture": row["culture"],
        "seed_id": row["seed_id"],
        "dialogue_id": row["dialogue_id"],
        "opinion_id": row["opinion_id"],
    }


def atomic_write_parquet(table: Any, path: str | os.PathLike) -> None:
    """Write an Arrow table to ``path`` through a temporary file and a rename."""
    import pyarrow.parquet as pq

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def write_sft_sets(folder: str | os.PathLike, rows: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Write ``folder/<culture>.jsonl`` and ``.parquet`` for the opinion rows; returns culture -> records.

    Cultures without records get no files (an empty set cannot be trained on). Each file is written
    to a temporary name and renamed into place.
    """
    import pyarrow as pa

    from cultura.pipelines.refine.schema import sft_schema
    from cultura.pipelines.writer import atomic_write_text

    by_culture: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        record = sft_record(row)
        by_culture.setdefault(record["culture"], []).append(record)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for culture, records in sorted(by_culture.items()):
        atomic_write_text(folder / f"{culture}.jsonl",
                          "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        atomic_write_parquet(pa.Table.from_pylist(records, schema=sft_schema()), folder / f"{culture}.parquet")
    return {culture: len(records) for culture, records in sorted(by_culture.items())}
