"""CDEval (Wang et al., C3NLP 2024): a model's orientation on Hofstede's six dimensions across seven
domains; two-option questions with no gold answer.

Published on the Hugging Face hub as ``Rykeryuhang/CDEval``: one ``CDEval.json`` (earlier revisions:
one file per dimension, ``PDI.json`` ...). The keys have spaces (``Option 1``, ``Option 2``) and capital
letters; ``Option 1`` points to the first pole of the dimension. The rows are ordered by dimension, and
one third-party loader slices them by position; this one reads ``Dimension`` (or, in a per-dimension
file without it, the file name). The score is the orientation likelihood: the share of a dimension's
questions where the model picks ``Option 1``.
"""

from __future__ import annotations

from pathlib import Path

from cultura.cards import DATA_LICENCES, PAPERS
from cultura.data.benchmarks.formats import cell, published_files, read_json, require_columns
from cultura.data.benchmarks.hub import download_dataset
from cultura.data.benchmarks.schema import Benchmark, Item, Loaded, check_unique, no_items, text_id, unique_id
from cultura.errors import DataError

NAME = "cdeval"
HUB_REPO = "Rykeryuhang/CDEval"
KEYS = ("Question", "Option 1", "Option 2")
# dimension -> (the pole Option 1 points to, the pole of Option 2)
POLES = {"PDI": ("high power distance", "low power distance"), "IDV": ("individualism", "collectivism"),
         "UAI": ("high uncertainty avoidance", "low uncertainty avoidance"), "MAS": ("masculinity", "femininity"),
         "LTO": ("long-term orientation", "short-term orientation"), "IVR": ("indulgence", "restraint")}


def read_file(path: Path, seen: dict[str, int]) -> list[Item]:
    """Orientation items of one CDEval JSON file (a list of records, or JSON lines)."""
    records = read_json(path)
    if isinstance(records, dict):
        records = [records]
    if not isinstance(records, list):
        raise DataError(f"{path}: expected a list of question records")
    named = path.stem.upper() if path.stem.upper() in POLES else None
    items = []
    for row, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            raise DataError(f"{path}: record {row}: expected an object")
        require_columns(path, record, KEYS + (() if named else ("Dimension",)), "a CDEval record", row)
        dimension = cell(record, "Dimension").upper() or named
        if dimension not in POLES:
            raise DataError(f"{path}: record {row}, key 'Dimension': {dimension!r} is not one of {', '.join(POLES)}")
        question, options = cell(record, "Question"), (cell(record, "Option 1"), cell(record, "Option 2"))
        if not question or not all(options):
            raise DataError(f"{path}: record {row}: 'Question', 'Option 1' and 'Option 2' must not be empty")
        items.append(Item(id=unique_id(text_id(f"cdeval-{dimension}", question), seen), benchmark=NAME,
                          kind="orientation", question=question, language="en", split="eval",
                          licence=DATA_LICENCES[NAME], options=options, subset=dimension, group=dimension,
                          meta={"dimension": dimension, "domain": cell(record, "Domain") or None,
                                "poles": list(POLES[dimension])}))
    return items


def read(path: Path) -> Loaded:
    """CDEval items from ``CDEval.json``, a per-dimension file, or a folder holding them."""
    files = published_files(path, ("CDEval.json", *(f"{d}.json" for d in POLES)))
    if not files:
        raise no_items(path, "CDEval.json")
    seen: dict[str, int] = {}
    items = [item for file in files for item in read_file(file, seen)]
    return Loaded(check_unique(items, path), files)


def download() -> Path:
    """``CDEval.json`` from the hub (the snapshot folder)."""
    return download_dataset(NAME, HUB_REPO, ["CDEval.json", "**/CDEval.json"])


BENCHMARK = Benchmark(
    name=NAME, title="CDEval", measures="a model's orientation on 6 Hofstede dimensions x 7 domains "
    "(two options, no gold: the share choosing the first pole)", size="2,953 questions",
    licence=DATA_LICENCES[NAME], terms=("unstated",), paper=PAPERS[NAME],
    source=f"https://huggingface.co/datasets/{HUB_REPO}", published="CDEval.json or a folder holding it",
    read=read, download=download)
