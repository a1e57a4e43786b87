"""The 24 items of Hofstede's Values Survey Module 2013, for asking a model to answer as a culture.

Items are numbered 1-24 in the original VSM 2013 order (the index formulas in
:mod:`cultura.eval.hofstede` refer to them by number); each has five ordered answer labels (1-5).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass

from cultura.data import FILES
from cultura.errors import DataError

BUNDLED = FILES / "vsm13.json"
ITEM_COUNT = 24


@dataclass(frozen=True)
class VsmItem:
    """One VSM 2013 item: its number (1-24), its text, and its five answer labels (for 1..5)."""

    number: int
    text: str
    options: tuple[str, ...]


@functools.lru_cache(maxsize=1)
def _load() -> tuple[VsmItem, ...]:
    path = BUNDLED
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: row 1: cannot parse the file ({exc})") from exc
    raw_items = data.get("items") if isinstance(data, dict) else None
    if not isinstance(raw_items, list):
        raise DataError(f"{path}: row 1, field 'items': expected a list of items")
    items = []
    for index, raw in enumerate(raw_items, start=1):
        where = f"{path}: item {index}"
        if not isinstance(raw, dict):
            raise DataError(f"{where}: expected an object")
        if raw.get("number") != index:
            raise DataError(f"{where}, field 'number': expected {index} (items must be in VSM order)")
        if not isinstance(raw.get("text"), str) or not raw["text"].strip():
            raise DataError(f"{where}, field 'text': must be a non-empty string")
        options = raw.get("options")
        if not isinstance(options, list) or len(options) != 5 or not all(isinstance(o, str) and o for o in options):
            raise DataError(f"{where}, field 'options': expected five answer labels")
        items.append(VsmItem(index, raw["text"].strip(), tuple(options)))
    if len(items) != ITEM_COUNT:
        raise DataError(f"{path}: field 'items': expected {ITEM_COUNT} items, got {len(items)}")
    return tuple(items)


def load_vsm_items() -> list[VsmItem]:
    """Return the 24 VSM 2013 items in order (item 1 first)."""
    return list(_load())


def vsm_prompt(item: VsmItem) -> str:
    """Return the item as a question with numbered options 1-5 and an instruction to answer with one number."""
    lines = [item.text, ""]
    lines += [f"{number}. {label}" for number, label in enumerate(item.options, start=1)]
    lines += ["", "Answer with a single number from 1 to 5."]
    return "\n".join(lines)
