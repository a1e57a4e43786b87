"""CulturalBench (Chiu et al., 2024): 1,227 human-written questions on the cultures of 45 regions.

Published on the Hugging Face hub as ``kellycyy/CulturalBench``: ``CulturalBench-Easy.csv`` (one row
per question: ``prompt_option_a`` .. ``prompt_option_d`` and the right **letter** in ``answer``) and
``CulturalBench-Hard.csv`` (four rows per question, one per option: ``prompt_option`` and a
**True/False** ``answer``). Easy rows become multiple-choice items; Hard rows become binary (yes/no)
items grouped by ``question_idx``, since the paper counts a Hard question right only when all four of
its rows are (lm-eval scores each row on its own, which is easier and not the paper's figure).
"""

from __future__ import annotations

from pathlib import Path

from cultura.cards import DATA_LICENCES, PAPERS
from cultura.data.benchmarks.formats import (canonical_country, cell, header_of, published_files, read_rows,
                                             required_cell)
from cultura.data.benchmarks.hub import download_dataset
from cultura.data.benchmarks.schema import YES_NO, Benchmark, Item, Loaded, check_unique, no_items
from cultura.errors import DataError

NAME = "culturalbench"
HUB_REPO = "kellycyy/CulturalBench"
EASY_FILE, HARD_FILE = "CulturalBench-Easy.csv", "CulturalBench-Hard.csv"
LETTERS = ("A", "B", "C", "D")
EASY_COLUMNS = ("prompt_question", *(f"prompt_option_{x.lower()}" for x in LETTERS), "answer", "country")
HARD_COLUMNS = ("data_idx", "question_idx", "prompt_question", "prompt_option", "answer", "country")
_BOOLEANS = {"true": True, "false": False}


def _item(path: Path, row: int, record: dict[str, str], **fields) -> Item:
    culture = required_cell(path, row, record, "country")
    question = required_cell(path, row, record, "prompt_question")  # may carry stray whitespace upstream
    return Item(benchmark=NAME, question=question, language="en", split="eval", licence=DATA_LICENCES[NAME],
                culture=culture, country=canonical_country(culture), **fields)


def read_easy(path: Path) -> list[Item]:
    """Items of ``CulturalBench-Easy.csv``: four options in their own columns, the right one as a letter."""
    header = header_of(path)
    id_column = "data_idx" if "data_idx" in header and "question_idx" not in header else "question_idx"
    rows = read_rows(path, (id_column, *EASY_COLUMNS), EASY_FILE)  # some copies carry only data_idx
    items = []
    for row, record in rows:
        options = tuple(required_cell(path, row, record, f"prompt_option_{x.lower()}") for x in LETTERS)
        letter = cell(record, "answer").upper()
        if letter not in LETTERS:
            raise DataError(f"{path}: row {row}, column 'answer': {cell(record, 'answer')!r} is not one of the "
                            f"letters {', '.join(LETTERS)}")
        qid = required_cell(path, row, record, id_column)
        items.append(_item(path, row, record, id=f"easy-{qid}", kind="multiple_choice", options=options,
                           gold=(options[LETTERS.index(letter)],), subset="easy", group=f"easy-{qid}"))
    return items


def read_hard(path: Path) -> list[Item]:
    """Items of ``CulturalBench-Hard.csv``: one yes/no item per (question, option) row, grouped by question."""
    items = []
    for row, record in read_rows(path, HARD_COLUMNS, HARD_FILE):
        answer = _BOOLEANS.get(cell(record, "answer").lower())
        if answer is None:
            raise DataError(f"{path}: row {row}, column 'answer': {cell(record, 'answer')!r} is not True or False")
        option = required_cell(path, row, record, "prompt_option")
        qid = required_cell(path, row, record, "question_idx")
        items.append(_item(path, row, record, id=f"hard-{required_cell(path, row, record, 'data_idx')}",
                           kind="binary", options=YES_NO, gold=("yes" if answer else "no",), subset="hard",
                           group=f"hard-{qid}", meta={"option": option}))
    return items


def read(path: Path) -> Loaded:
    """CulturalBench items from one of its CSVs (told apart by header) or a folder holding them."""
    files = published_files(path, (EASY_FILE, HARD_FILE))
    if not files:
        raise no_items(path, f"{EASY_FILE} or {HARD_FILE}")
    items: list[Item] = []
    for file in files:
        header = header_of(file)
        hard = file.name == HARD_FILE or ("prompt_option" in header and "prompt_option_a" not in header)
        items += read_hard(file) if hard else read_easy(file)
    notes = []
    sizes: dict[str, int] = {}
    for item in items:
        if item.subset == "hard":
            sizes[item.group] = sizes.get(item.group, 0) + 1
    odd = sorted(g for g, n in sizes.items() if n != len(LETTERS))
    if odd:
        notes.append(f"{len(odd)} Hard questions do not have {len(LETTERS)} option rows "
                     f"(first: {odd[0]}); the paper's all-rows-right score counts the rows there are")
    return Loaded(check_unique(items, path), files, notes)


def download() -> Path:
    """Both CSVs from the hub (the snapshot folder)."""
    return download_dataset(NAME, HUB_REPO, ["*.csv"])


BENCHMARK = Benchmark(
    name=NAME, title="CulturalBench", measures="cultural knowledge of 45 regions (Easy: 4-option choice; "
    "Hard: true/false per option, a question right only when all four are)",
    size="1,227 questions (Easy 1,227 rows, Hard 4,908 rows)", licence=DATA_LICENCES[NAME], terms=(),
    paper=PAPERS[NAME], source=f"https://huggingface.co/datasets/{HUB_REPO}",
    published=f"{EASY_FILE} and/or {HARD_FILE}, or a folder holding them", read=read, download=download)
