"""CultureBank (Shi et al., EMNLP Findings 2024): cultural descriptors (group, context, behaviour,
agreement) mined from TikTok and Reddit.

Published on the Hugging Face hub as ``SALT-NLP/CultureBank``, splits ``tiktok`` and ``reddit``
(``tiktok/culturebank_tiktok.csv``, ``reddit/culturebank_reddit.csv``). ``cultural group`` has a
**space** while the other columns use underscores; ``agreement`` is a share rounded to one decimal;
``num_support_bin`` is a **string bin** (``[5, 20)``); ``time_range`` a **Python-literal dict** of
year -> bin (read with ``ast.literal_eval``, not JSON). Each descriptor becomes an agreement item (the
paper's direct evaluation: does the model agree with it?) with the cluster's share agreeing as the
reference; its text is ``eval_whole_desc`` when the file has it, else the descriptor's fields joined.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from cultura.cards import DATA_LICENCES, PAPERS
from cultura.data.benchmarks.formats import canonical_country, cell, published_files, read_rows, required_cell
from cultura.data.benchmarks.hub import download_dataset
from cultura.data.benchmarks.schema import AGREE_DISAGREE, Benchmark, Item, Loaded, check_unique, no_items, unique_id
from cultura.errors import DataError

NAME = "culturebank"
HUB_REPO = "SALT-NLP/CultureBank"
FIELDS = ("context", "goal", "relation", "actor", "actor_behavior", "recipient", "recipient_behavior",
          "other_descriptions")
COLUMNS = ("cluster_id", "cultural group", *FIELDS, "topic", "agreement", "num_support_bin", "time_range")
_BIN = re.compile(r"^\[\s*(\d+)\s*,\s*(\d+|inf)?\s*\)$")


def descriptor(record: dict[str, str]) -> str:
    """The descriptor as one text: ``eval_whole_desc`` when given, else its fields in order."""
    whole = cell(record, "eval_whole_desc")
    if whole and whole.lower() != "nan":
        return whole
    parts = [f"cultural group: {cell(record, 'cultural group')}"] + [
        f"{name.replace('_', ' ')}: {cell(record, name)}" for name in FIELDS
        if cell(record, name) and cell(record, name).lower() != "nan"]
    return "; ".join(parts) + "."


def _time_range(path: Path, row: int, raw: str) -> dict[str, str]:
    if not raw:
        return {}
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        raise DataError(f"{path}: row {row}, column 'time_range': not a Python dict literal") from None
    if not isinstance(value, dict):
        raise DataError(f"{path}: row {row}, column 'time_range': not a dict of year -> bin")
    return {str(k): str(v) for k, v in value.items()}


def read_file(path: Path, subset: str) -> list[Item]:
    """Agreement items of one CultureBank CSV."""
    items, seen = [], {}
    for row, record in read_rows(path, COLUMNS, "a CultureBank CSV"):
        try:
            agreement = float(cell(record, "agreement"))
        except ValueError:
            agreement = -1.0
        if not 0 <= agreement <= 1:
            raise DataError(f"{path}: row {row}, column 'agreement': {cell(record, 'agreement')!r} "
                            "is not a share in 0..1")
        support = cell(record, "num_support_bin")
        if support and not _BIN.match(support):
            raise DataError(f"{path}: row {row}, column 'num_support_bin': {support!r} is not a bin like '[5, 20)'")
        culture = required_cell(path, row, record, "cultural group")
        meta = {name: cell(record, name) or None for name in (*FIELDS, "topic", "eval_persona", "eval_question")}
        meta.update(num_support_bin=support, time_range=_time_range(path, row, cell(record, "time_range")),
                    cluster_id=cell(record, "cluster_id"))
        items.append(Item(id=unique_id(f"{subset}-{required_cell(path, row, record, 'cluster_id')}", seen),
                          benchmark=NAME, kind="agreement", question=descriptor(record), language="en", split="eval",
                          licence=DATA_LICENCES[NAME], culture=culture, country=canonical_country(culture),
                          options=AGREE_DISAGREE, reference=(agreement, round(1 - agreement, 6)), subset=subset,
                          meta=meta))
    return items


def read(path: Path) -> Loaded:
    """CultureBank items from ``culturebank_tiktok.csv`` / ``culturebank_reddit.csv`` or a folder holding them."""
    files = published_files(path, ("culturebank_*.csv",))
    if not files:
        raise no_items(path, "culturebank_tiktok.csv or culturebank_reddit.csv")
    items = []
    for file in files:
        subset = next((s for s in ("tiktok", "reddit") if s in file.name.lower()), file.stem)
        items += read_file(file, subset)
    return Loaded(check_unique(items, path), files)


def download() -> Path:
    """Both CSVs from the hub (the snapshot folder)."""
    return download_dataset(NAME, HUB_REPO, ["*.csv", "**/*.csv"])


BENCHMARK = Benchmark(
    name=NAME, title="CultureBank", measures="agreement with cultural descriptors (group, context, behaviour) "
    "mined from TikTok and Reddit", size="about 23k descriptors (tiktok 11.8k, reddit 11.2k)",
    licence=DATA_LICENCES[NAME], terms=(), paper=PAPERS[NAME], source=f"https://huggingface.co/datasets/{HUB_REPO}",
    published="tiktok/culturebank_tiktok.csv, reddit/culturebank_reddit.csv or one of them", read=read,
    download=download)
