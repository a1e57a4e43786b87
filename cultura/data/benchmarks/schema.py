"""One item schema for every cultural benchmark, as Arrow and Parquet.

An :class:`Item` is one thing a model is asked: its id, the benchmark, the country or culture it is
about, the language, the question, the options (or none), and what it is scored against: a gold
answer (or the accepted answers), a reference distribution, or neither (an orientation item). The
``kind`` says how it is scored:

- ``multiple_choice``: one of ``options`` is right; ``gold`` holds it.
- ``binary``: ``options`` are ``yes`` / ``no``; ``gold`` holds the right one.
- ``short_answer``: no options; ``gold`` holds every accepted answer.
- ``distribution``: ``reference`` is a share per option (a country's survey answers).
- ``agreement``: ``options`` are ``agree`` / ``disagree``; ``reference`` the share on each side.
- ``scale``: ``options`` are the points of a numeric scale; ``gold`` (when known) one person's answer,
  scored as a distribution over the items of one ``group``.
- ``orientation``: two options pointing to two poles, no gold (a model's lean is what is measured).

``culture`` is the country or culture as the benchmark writes it (for display); ``country`` is the
canonical country of cultura's country table when the culture names one, else null. ``group`` joins
the items a benchmark scores together (CulturalBench-Hard's four rows of one question, one
WorldValuesBench question). ``meta`` keeps the benchmark's own fields (topic, context, demographics)
as a JSON object.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cultura.cards import Paper
from cultura.errors import CulturaError, DataError

ITEMS_FILE = "items.parquet"
SCHEMA_VERSION = 1
KINDS = ("multiple_choice", "binary", "short_answer", "distribution", "agreement", "scale", "orientation")
YES_NO = ("yes", "no")
AGREE_DISAGREE = ("agree", "disagree")
# kinds whose gold (when given) must be one of the options, and kinds that need a reference
_GOLD_IN_OPTIONS = ("multiple_choice", "binary", "scale")
_NEEDS_OPTIONS = ("multiple_choice", "binary", "distribution", "agreement", "scale", "orientation")
_NEEDS_REFERENCE = ("distribution", "agreement")


@dataclass(frozen=True)
class Item:
    """One benchmark item in the common schema (see the module docstring for the fields)."""

    id: str
    benchmark: str
    kind: str
    question: str
    language: str
    split: str
    licence: str
    culture: str | None = None
    country: str | None = None
    options: tuple[str, ...] | None = None
    gold: tuple[str, ...] | None = None
    reference: tuple[float, ...] | None = None
    subset: str | None = None
    group: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        problem = self._problem()
        if problem:
            raise DataError(f"{self.benchmark} item {self.id!r}: {problem}")

    def _problem(self) -> str | None:
        if self.kind not in KINDS:
            return f"kind {self.kind!r} is not one of {', '.join(KINDS)}"
        if not self.id or not self.question.strip():
            return "needs an id and a non-empty question"
        if self.kind in _NEEDS_OPTIONS and (not self.options or len(self.options) < 2):
            return f"a {self.kind} item needs at least two options"
        if self.kind in _GOLD_IN_OPTIONS and self.gold and any(g not in self.options for g in self.gold):
            return f"gold {list(self.gold)} is not among the options {list(self.options)}"
        if self.kind in ("multiple_choice", "binary") and (not self.gold or len(self.gold) != 1):
            return f"a {self.kind} item needs exactly one gold answer"
        if self.kind == "short_answer" and not self.gold:
            return "a short_answer item needs at least one accepted answer"
        if self.kind in _NEEDS_REFERENCE and (not self.reference or len(self.reference) != len(self.options)):
            return f"a {self.kind} item needs one reference share per option"
        return None

    def row(self) -> dict[str, Any]:
        """The item as a row of :func:`arrow_schema` (tuples as lists, ``meta`` as JSON text)."""
        return {"id": self.id, "benchmark": self.benchmark, "subset": self.subset, "kind": self.kind,
                "culture": self.culture, "country": self.country, "language": self.language,
                "question": self.question, "options": _list(self.options), "gold": _list(self.gold),
                "reference": _list(self.reference), "split": self.split, "group": self.group,
                "licence": self.licence, "meta": json.dumps(dict(self.meta), ensure_ascii=False, sort_keys=True)}


def _list(value: tuple | None) -> list | None:
    return None if value is None else list(value)


@dataclass
class Loaded:
    """What a loader read: the items, the files they came from, and notes on what it left out."""

    items: list[Item]
    files: list[Path]
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Benchmark:
    """A benchmark cultura loads: what it measures, where it is published, its licence and its loader.

    ``read`` takes a file or a folder laid out as the benchmark publishes it and returns
    :class:`Loaded`; ``download`` fetches the published files (None: there is nothing to download,
    the user passes ``--from``) and returns the path ``read`` takes. ``terms`` are the licence
    conditions a user must hear before using the data (``non-commercial``, ``share-alike``,
    ``no-redistribution``, ``unstated``).
    """

    name: str
    title: str
    measures: str
    size: str
    licence: str
    terms: tuple[str, ...]
    paper: Paper
    source: str
    published: str
    read: Callable[[Path], Loaded]
    download: Callable[[], Path] | None = None


def arrow_schema():
    """The pyarrow schema of ``items.parquet``."""
    import pyarrow as pa

    text = pa.string()
    return pa.schema([
        pa.field("id", text, nullable=False), pa.field("benchmark", text, nullable=False),
        pa.field("subset", text), pa.field("kind", text, nullable=False),
        pa.field("culture", text), pa.field("country", text), pa.field("language", text, nullable=False),
        pa.field("question", text, nullable=False), pa.field("options", pa.list_(text)),
        pa.field("gold", pa.list_(text)), pa.field("reference", pa.list_(pa.float64())),
        pa.field("split", text, nullable=False), pa.field("group", text),
        pa.field("licence", text, nullable=False), pa.field("meta", text, nullable=False),
    ], metadata={"cultura.schema_version": str(SCHEMA_VERSION)})


def to_table(items: Iterable[Item]):
    """The items as a pyarrow Table in :func:`arrow_schema`."""
    import pyarrow as pa

    return pa.Table.from_pylist([item.row() for item in items], schema=arrow_schema())


def write_items(items: Iterable[Item], folder: str | Path) -> Path:
    """Write ``folder/items.parquet`` (written to a temporary name, then moved into place); returns its path."""
    import pyarrow.parquet as pq

    path = Path(folder) / ITEMS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp")
    pq.write_table(to_table(items), temp)
    temp.replace(path)
    return path


def read_items(path: str | Path) -> list[Item]:
    """The items of an ``items.parquet`` (or of a folder holding one) as :class:`Item` objects;
    a file that is not in the schema is a DataError naming the first missing column."""
    import pyarrow.parquet as pq

    path = Path(path)
    if path.is_dir():
        path = path / ITEMS_FILE
    if not path.is_file():
        raise DataError(f"{path}: file not found (write one with `cultura data get NAME --out FOLDER`)")
    table = pq.read_table(path)
    missing = [name for name in arrow_schema().names if name not in table.column_names]
    if missing:
        raise DataError(f"{path}: missing column {missing[0]!r}; not a cultura benchmark items file")
    items = []
    for row in table.to_pylist():
        tuples = {k: tuple(row[k]) if row[k] is not None else None for k in ("options", "gold", "reference")}
        items.append(Item(**{**row, **tuples, "meta": json.loads(row["meta"])}))
    return items


def unique_id(base: str, seen: dict[str, int]) -> str:
    """``base``, or ``base-N`` for its Nth repeat (so an item written twice keeps both copies apart)."""
    seen[base] = seen.get(base, 0) + 1
    return base if seen[base] == 1 else f"{base}-{seen[base]}"


def text_id(prefix: str, text: str) -> str:
    """A short stable id from a text (``prefix-`` + 10 hex digits of its SHA-1)."""
    return f"{prefix}-{hashlib.sha1(text.encode('utf-8')).hexdigest()[:10]}"


def check_unique(items: list[Item], path: Path) -> list[Item]:
    """The items unchanged; a DataError naming the first repeated id otherwise."""
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise DataError(f"{path}: item id {item.id!r} occurs twice")
        seen.add(item.id)
    return items


def no_items(path: Path, what: str) -> CulturaError:
    """The error for a path that holds none of a benchmark's files."""
    return DataError(f"{path}: no {what} found there")
