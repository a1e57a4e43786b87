"""Reading JSON Lines files with errors that name the file and the row."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from cultura.errors import DataError


def read_text(path: Path) -> str:
    """The file's UTF-8 text; a missing, unreadable or non-UTF-8 file is a DataError.

    ``path`` may also be a :class:`cultura.storage.Location` (a file on any pyarrow filesystem).
    """
    try:
        if hasattr(path, "read_text") and not isinstance(path, Path):
            return path.read_text()
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the file ({exc})") from None


def read_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    """Yield ``(1-based row number, parsed value)`` for each non-blank line; bad JSON is a DataError."""
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: row {number}: not valid JSON ({exc.msg} at column {exc.colno})") from None


def read_jsonl_objects(path: Path, expected: str = "a JSON object") -> Iterator[tuple[int, dict[str, Any]]]:
    """Like :func:`read_jsonl`, and every row must be an object (``expected`` says which kind)."""
    for number, value in read_jsonl(path):
        if not isinstance(value, dict):
            raise DataError(f"{path}: row {number}: expected {expected}")
        yield number, value
