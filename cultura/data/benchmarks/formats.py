"""Reading benchmark files as published: CSV/TSV with their exact headers, JSON, folders laid out as
the benchmark's repository lays them out. Every check names the file, the row and the column."""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from cultura.data.hofstede import resolve_country
from cultura.data.seed_files import read_csv
from cultura.errors import DataError, UnknownNameError
from cultura.jsonl import read_text


def read_rows(path: Path, columns: Iterable[str], what: str,
              delimiter: str = ",") -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) pairs of a CSV or TSV after checking its header has every one of
    ``columns``; a missing one is a DataError naming it and the file it belongs to (``what``)."""
    header, rows = read_csv(path, delimiter=delimiter)
    require_columns(path, header, columns, what)
    return rows


def header_of(path: Path, delimiter: str = ",") -> list[str]:
    """The column names on the first line of a CSV or TSV (stripped), read without the rest of the file."""
    import csv

    try:
        with Path(path).open(encoding="utf-8", newline="") as handle:
            return [name.strip() for name in next(csv.reader(handle, delimiter=delimiter), [])]
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the header ({type(exc).__name__})") from None


def require_columns(path: Path, present: Iterable[str], columns: Iterable[str], what: str,
                    row: int | None = None) -> None:
    """A DataError naming the first of ``columns`` that is not in ``present`` (a header or a record's keys)."""
    present = set(present)
    columns = list(columns)
    for name in columns:
        if name not in present:
            where = f"row {row}: " if row is not None else ""
            raise DataError(f"{path}: {where}missing column {name!r} ({what} has the columns "
                            f"{', '.join(repr(c) for c in columns)})")


def cell(record: dict[str, Any], name: str) -> str:
    """A cell's text, stripped; an absent or empty cell is ``""``."""
    value = record.get(name)
    return "" if value is None else str(value).strip()


def required_cell(path: Path, row: int, record: dict[str, Any], name: str) -> str:
    """A cell's stripped text; an empty one is a DataError naming the file, row and column."""
    value = cell(record, name)
    if not value:
        raise DataError(f"{path}: row {row}, column {name!r}: must not be empty")
    return value


def read_json(path: Path) -> Any:
    """A JSON file's value (a JSON-lines file gives the list of its lines); invalid JSON is a DataError."""
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        error = exc
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) > 1:
        try:
            return [json.loads(line) for line in lines]
        except json.JSONDecodeError:
            pass
    raise DataError(f"{path}: not valid JSON (line {error.lineno}: {error.msg})")


def published_files(path: Path, patterns: Iterable[str]) -> list[Path]:
    """``path`` itself when it is a file, else every file under the folder whose name matches one of
    ``patterns`` (shell patterns such as ``*_data.json``), sorted; a missing path is a DataError."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DataError(f"{path}: no such file or folder")
    patterns = tuple(patterns)
    return sorted(p for p in path.rglob("*") if p.is_file() and any(fnmatch.fnmatch(p.name, pat) for pat in patterns))


def canonical_country(name: str) -> str | None:
    """The canonical country of cultura's country table that ``name`` names, or None (a region,
    a culture or a country the table does not hold)."""
    try:
        return resolve_country(name)
    except UnknownNameError:
        return None


def words_of_slug(slug: str) -> str:
    """``south_sudan`` -> ``South Sudan``, ``bosnia_and_herzegovina`` -> ``Bosnia and Herzegovina``."""
    small = {"and", "of", "the"}
    words = slug.replace("_", " ").split()
    return " ".join(w if w in small and i else w[:1].upper() + w[1:] for i, w in enumerate(words))
