"""Content-moderation task files: JSONL, CSV or TSV, labels read per task, a dev split per task.

A task is one file of labelled texts. Its name is the file name without its suffix; its yes/no
template comes from ``template`` or the name's first word (``hate_arabic`` -> ``hate``).

- JSONL (``.jsonl``): one object per line; the text and label fields are ``text`` and ``label``
  unless :class:`TaskFormat` names others.
- CSV (``.csv``) and TSV (``.tsv``, ``.txt``): with a header row, columns are named (``text``,
  ``label`` by default); without one, both columns are given as 1-based numbers (GermEval 2018's
  TSV: text in column 1, the coarse label in column 2).
- Labels: with ``positive_label`` a row is positive when its label equals it (case and surrounding
  blanks ignored) and negative otherwise (``OFFENSE`` / ``OTHER``); without it a label must be
  1/0, true/false, yes/no or the template's label names (``offensive`` / ``not_offensive``).

The dev split (:func:`dev_rows`) holds a fixed share of each label's examples, chosen by a hash of
the task name and row, so the decision threshold can be chosen on it and the rest scored.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cultura.errors import CulturaError, DataError, UnknownNameError
from cultura.jsonl import read_jsonl_objects, read_text

BUNDLED_TASKS = Path(__file__).resolve().parents[1] / "data" / "files" / "moderation"
SUFFIXES = {".jsonl": "jsonl", ".csv": "csv", ".tsv": "tsv", ".txt": "tsv"}
FOLDER_GLOBS = ("*.jsonl", "*.csv", "*.tsv")  # a folder's task files (.txt only when named alone)


@dataclass(frozen=True)
class Template:
    """A yes/no classification question; ``positive`` is the label a "Yes" means."""

    positive: str
    question: str

    @property
    def negative(self) -> str:
        """The label a "No" means."""
        return f"not_{self.positive}"


TEMPLATES: dict[str, Template] = {t.positive: t for t in (
    Template("offensive", "Would people in your culture find the following text offensive?"),
    Template("hate", "Does the following text express hate against a group of people, as people in your culture would judge it?"),
    Template("abusive", "Is the following text abusive towards someone, as people in your culture would judge it?"),
    Template("vulgar", "Does the following text use vulgar language, as people in your culture would judge it?"),
    Template("threat", "Does the following text threaten someone?"),
    Template("bias", "Does the following text express a biased or prejudiced view of a group of people?"),
    Template("spam", "Is the following message spam?"),
)}


@dataclass(frozen=True)
class TaskFormat:
    """How to read task files: the text and label columns (names, or 1-based numbers for files
    without a header), the label that means positive (None: the usual label spellings), and the
    template (None: from each file's name)."""

    text_column: str | int = "text"
    label_column: str | int = "label"
    positive_label: str | None = None
    template: str | None = None

    def __post_init__(self) -> None:
        numbered = [isinstance(c, int) for c in (self.text_column, self.label_column)]
        if any(numbered) and not all(numbered):
            raise CulturaError("give both the text and the label column as numbers (a file without a header) "
                               "or both as names (a header row)")
        if all(numbered) and min(self.text_column, self.label_column) < 1:  # type: ignore[type-var]
            raise CulturaError("column numbers start at 1")
        if self.text_column == self.label_column:
            raise CulturaError(f"the text and the label column are the same ({self.text_column})")
        if self.template is not None:
            template_for(self.template)

    @property
    def headerless(self) -> bool:
        """True when the columns are numbers: the file has no header row."""
        return isinstance(self.text_column, int)


@dataclass(frozen=True)
class Example:
    """One labelled text of a task; ``label`` is True for the positive class; ``template`` names the
    task's entry in :data:`TEMPLATES`."""

    task: str
    row: int
    text: str
    label: bool
    template: str

    @property
    def question(self) -> Template:
        """The task's yes/no template."""
        return TEMPLATES[self.template]


def template_for(task: str) -> Template:
    """The template whose name is the task name or its first word (``hate_arabic`` -> ``hate``)."""
    first = re.split(r"[_\-.\s]", task.lower(), maxsplit=1)[0]
    for name in (task.lower(), first):
        if name in TEMPLATES:
            return TEMPLATES[name]
    raise UnknownNameError("moderation template", task, TEMPLATES)


def column_option(value: str | None) -> str | int | None:
    """A column given on the command line: a whole number is a 1-based column number, else a name."""
    if value is None:
        return None
    value = value.strip()
    return int(value) if value.isdigit() else value


def parse_label(value: Any, template: Template) -> bool | None:
    """True for the positive class, False for the negative one, None when not a known label."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        key = "_".join(value.strip().lower().replace("-", " ").split())
        if key in ("1", "true", "yes", template.positive):
            return True
        if key in ("0", "false", "no", template.negative, f"non_{template.positive}"):
            return False
    return None


def _jsonl_records(path: Path, fmt: TaskFormat) -> Iterator[tuple[int, Any, Any]]:
    if fmt.headerless:
        raise DataError(f"{path}: JSONL rows have fields, not column numbers; name the text and label fields")
    for number, record in read_jsonl_objects(path, f"an object with '{fmt.text_column}' and '{fmt.label_column}'"):
        yield number, record.get(fmt.text_column), record.get(fmt.label_column)


def _delimited_records(path: Path, fmt: TaskFormat, delimiter: str) -> Iterator[tuple[int, Any, Any]]:
    # TSV files (GermEval's) quote nothing: a quote character is part of the text
    rows = csv.reader(io.StringIO(read_text(path), newline=""), delimiter=delimiter,
                      quoting=csv.QUOTE_MINIMAL if delimiter == "," else csv.QUOTE_NONE)
    if fmt.headerless:
        text_at, label_at, first = fmt.text_column - 1, fmt.label_column - 1, 1  # type: ignore[operator]
    else:
        header = [h.strip() for h in next(rows, [])]
        missing = [c for c in (fmt.text_column, fmt.label_column) if c not in header]
        if missing:
            raise DataError(f"{path}: row 1 (header): no column named {', '.join(map(repr, missing))}; columns: "
                            f"{', '.join(header) or 'none'} (a file without a header needs column numbers)")
        text_at, label_at, first = header.index(fmt.text_column), header.index(fmt.label_column), 2
    for number, row in enumerate(rows, start=first):
        if not any(cell.strip() for cell in row):
            continue
        if max(text_at, label_at) >= len(row):
            raise DataError(f"{path}: row {number}: {len(row)} columns, but the text or label column is "
                            f"number {max(text_at, label_at) + 1}")
        yield number, row[text_at], row[label_at]


def load_task(path: Path, fmt: TaskFormat = TaskFormat()) -> list[Example]:
    """Read one task file; a row without text or with a missing or unknown label names the row."""
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise DataError(f"{path}: a task file is .jsonl, .csv, .tsv or .txt (tab-separated)")
    template = template_for(fmt.template or path.stem)
    records = _jsonl_records(path, fmt) if kind == "jsonl" else _delimited_records(path, fmt, "," if kind == "csv" else "\t")
    field = "field" if kind == "jsonl" else "column"
    examples = []
    for number, text, value in records:
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{path}: row {number}, {field} {fmt.text_column!r}: missing or empty")
        if value is None or (isinstance(value, str) and not value.strip()):
            raise DataError(f"{path}: row {number}, {field} {fmt.label_column!r}: missing")
        if fmt.positive_label is not None:
            label: bool | None = str(value).strip().lower() == fmt.positive_label.strip().lower()
        else:
            label = parse_label(value, template)
        if label is None:
            raise DataError(f"{path}: row {number}, {field} {fmt.label_column!r}: {value!r} is not one of 1/0, "
                            f"true/false, yes/no, {template.positive}/{template.negative} (or name the positive "
                            "label with --positive-label)")
        examples.append(Example(path.stem, number, text.strip(), label, template.positive))
    if not examples:
        raise DataError(f"{path}: row 1: the task has no examples")
    return examples


def load_tasks(spec: str | Path, limit: int | None = None, fmt: TaskFormat = TaskFormat()) -> dict[str, list[Example]]:
    """Tasks from ``bundled`` (the examples shipped for tests), a folder of task files, or one file.

    ``limit`` keeps the first N examples of each task.
    """
    root = BUNDLED_TASKS if str(spec) == "bundled" else Path(spec).expanduser()
    if root.is_dir():
        files = sorted({f for pattern in FOLDER_GLOBS for f in root.glob(pattern)})
        if not files:
            raise CulturaError(f"{root} holds no task files (*.jsonl, *.csv, *.tsv)")
    elif root.is_file():
        files = [root]
    else:
        raise CulturaError(f"task folder or file not found: {root}")
    tasks: dict[str, list[Example]] = {}
    for path in files:
        if path.stem in tasks:
            raise DataError(f"{path}: a second task named {path.stem!r} (one file per task name)")
        tasks[path.stem] = load_task(path, fmt)[:limit]
    return tasks


def dev_rows(examples: Sequence[Example], fraction: float) -> set[int]:
    """The rows of a task's dev split: of each label's examples, ``round(fraction * n)`` (at least one
    when the label has two or more), the first by a hash of the task name and row."""
    if not 0 < fraction < 1:
        raise CulturaError(f"the dev fraction must be between 0 and 1, got {fraction}")
    chosen: set[int] = set()
    for label in (True, False):
        members = sorted((e for e in examples if e.label == label),
                         key=lambda e: hashlib.sha256(f"{e.task}:{e.row}".encode()).hexdigest())
        take = min(len(members) - 1, max(1, math.floor(fraction * len(members) + 0.5))) if len(members) > 1 else 0
        chosen.update(e.row for e in members[:take])
    return chosen
