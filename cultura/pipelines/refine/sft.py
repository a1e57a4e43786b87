"""Fine-tuning sets per culture in the OpenAI chat fine-tuning format, as JSONL and Parquet.

As in the CulturePark paper: the system message makes the model a chatbot of the culture, the user
asks the seed question with its numbered options and asks for one option, and the assistant answers
``<option number>. <a first-person opinion>`` (the number of the culture's answer). The chat is
built by :func:`cultura.personas.chatbot_messages`, which the evaluation's ``adapter`` method uses
too, so an adapter is evaluated in exactly the form it was trained on. Records carry the culture
and the seed, dialogue and opinion they came from. ``cultura finetune --per culture`` reads exactly
these files (``OUT/sft/<culture>.jsonl``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from cultura.data.seeds import Seed
from cultura.personas import chatbot_messages
from cultura.pipelines.refine.schema import sft_schema
from cultura.pipelines.writer import atomic_write_text


def seed_of(row: Mapping[str, Any]) -> Any:
    """The :class:`~cultura.data.seeds.Seed` an opinion row was generated from (text, kind, options)."""
    return Seed(id=row["seed_id"], source=row["seed_source"], topic="", kind=row["seed_kind"],
                text=row["seed_text"], options=tuple(row.get("options") or ()))


def option_number(options: Any, attitude: str | None) -> int | None:
    """The 1-based number of ``attitude`` among ``options``, or None when it is not one of them."""
    options = list(options or ())
    return options.index(attitude) + 1 if attitude in options else None


def sft_record(row: Mapping[str, Any]) -> dict[str, Any] | None:
    """One fine-tuning record for an opinion row (``opinion_schema``; its ``text`` is the opinion
    used), or None when the row's attitude is not one of its seed's options (no number to answer)."""
    number = option_number(row.get("options"), row.get("attitude"))
    if number is None:
        return None
    messages = chatbot_messages(row["culture"], seed_of(row).numbered_prompt())
    messages.append({"role": "assistant", "content": f"{number}. {row['text'].strip()}"})
    return {"messages": messages, "culture": row["culture"], "seed_id": row["seed_id"],
            "dialogue_id": row["dialogue_id"], "opinion_id": row["opinion_id"]}


def atomic_write_parquet(table: Any, path: str | os.PathLike) -> None:
    """Write an Arrow table to ``path`` through a temporary file and a rename."""
    import pyarrow.parquet as pq

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def write_sft_sets(folder: str | os.PathLike, rows: Iterable[Mapping[str, Any]]) -> tuple[dict[str, int], dict[str, int]]:
    """Write ``folder/<culture>.jsonl`` and ``.parquet`` for the opinion rows; returns (culture ->
    records, culture -> rows left out because their attitude is not one of the seed's options).

    Cultures without records get no files (an empty set cannot be trained on). Each file is written
    to a temporary name and renamed into place.
    """
    import pyarrow as pa

    by_culture: dict[str, list[dict[str, Any]]] = {}
    skipped: dict[str, int] = {}
    for row in rows:
        record = sft_record(row)
        if record is None:
            skipped[row["culture"]] = skipped.get(row["culture"], 0) + 1
            continue
        by_culture.setdefault(record["culture"], []).append(record)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for culture, records in sorted(by_culture.items()):
        atomic_write_text(folder / f"{culture}.jsonl",
                          "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        atomic_write_parquet(pa.Table.from_pylist(records, schema=sft_schema()), folder / f"{culture}.parquet")
    return {culture: len(records) for culture, records in sorted(by_culture.items())}, skipped
