"""Open-ended, value-laden user prompts (PRISM style) for Cultural Palette data and demos.

The bundled file is ``files/prism_prompts.jsonl``. A user file may be JSONL or CSV with a text column
named ``text``, ``prompt``, ``query`` or ``opening_prompt`` (the PRISM conversations file uses
``opening_prompt`` and ``conversation_id``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cultura.data import FILES
from cultura.data.seed_files import read_csv
from cultura.errors import DataError
from cultura.jsonl import read_jsonl
from cultura.storage import fetch

BUNDLED = FILES / "prism_prompts.jsonl"
TEXT_FIELDS = ("text", "prompt", "query", "opening_prompt")
ID_FIELDS = ("id", "conversation_id", "prompt_id")
TOPIC_FIELDS = ("topic", "category")


@dataclass(frozen=True)
class Prompt:
    """One user prompt: an id, the text, and a topic (empty when unknown)."""

    id: str
    text: str
    topic: str = ""


def _first(record: dict[str, Any], names: tuple[str, ...]) -> tuple[str | None, Any]:
    for name in names:
        if name in record:
            return name, record[name]
    return None, None


def _records(path: Path) -> list[tuple[int, dict[str, Any]]]:
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        records = []
        for row, data in read_jsonl(path):
            if not isinstance(data, dict):
                raise DataError(f"{path}: row {row}: expected a JSON object, got {type(data).__name__}")
            records.append((row, data))
        return records
    if suffix == ".csv":
        header, rows = read_csv(path)
        if not any(name in header for name in TEXT_FIELDS):
            raise DataError(f"{path}: row 1, field 'text': no text column (name one of {', '.join(TEXT_FIELDS)})")
        return list(rows)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    raise DataError(f"{path}: unsupported prompt file type {suffix!r}; use .jsonl or .csv")


def load_prompts(spec: str | Path = "bundled") -> list[Prompt]:
    """Load prompts from the bundled file (``"bundled"``) or a JSONL/CSV path or URI.

    Raises DataError naming the file, row and field when a text is missing or empty, or an id repeats.
    """
    path = BUNDLED if str(spec) == "bundled" else fetch(spec)  # a filesystem URI is copied here first
    prompts: list[Prompt] = []
    seen: set[str] = set()
    for row, record in _records(path):
        name, text = _first(record, TEXT_FIELDS)
        if name is None:
            raise DataError(f"{path}: row {row}, field 'text': missing (name one of {', '.join(TEXT_FIELDS)})")
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{path}: row {row}, field {name!r}: the prompt text is empty")
        _, raw_id = _first(record, ID_FIELDS)
        prompt_id = str(raw_id).strip() if raw_id not in (None, "") else f"{path.stem}-{row:05d}"
        if prompt_id in seen:
            raise DataError(f"{path}: row {row}, field 'id': duplicate id {prompt_id!r}")
        seen.add(prompt_id)
        _, topic = _first(record, TOPIC_FIELDS)
        prompts.append(Prompt(prompt_id, text.strip(), str(topic).strip() if topic else ""))
    return prompts
