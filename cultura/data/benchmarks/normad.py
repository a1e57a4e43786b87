"""NormAd (Rao et al., 2024): social-etiquette stories from 75 countries; is what the person did
acceptable given the country, its value or its rule of thumb? (``yes`` / ``no`` / ``neutral``).

Published on the Hugging Face hub as ``akhilayerukola/NormAd`` (one CSV, split ``train``, used as a
test set; upstream ``normad_etiquette_final_data.csv``). ``Gold Label`` is a **lower-case word** and
``Country`` a **snake_case** slug (shown title-cased). Rows come in blocks by label, so never take
the first N as a sample. For ``neutral`` rows the norm (``Country``, ``Background``, ``Value``,
``Rule-of-Thumb``) comes from another culture than the story, so ``Country`` is not the story's
setting there: ``meta.country_is_story_setting`` says so.
"""

from __future__ import annotations

from pathlib import Path

from cultura.cards import DATA_LICENCES, PAPERS
from cultura.data.benchmarks.formats import (canonical_country, cell, published_files, read_rows, required_cell,
                                             words_of_slug)
from cultura.data.benchmarks.hub import download_dataset
from cultura.data.benchmarks.schema import Benchmark, Item, Loaded, check_unique, no_items
from cultura.errors import DataError

NAME = "normad"
HUB_REPO = "akhilayerukola/NormAd"
COLUMNS = ("ID", "Country", "Background", "Axis", "Subaxis", "Value", "Rule-of-Thumb", "Story", "Explanation",
           "Gold Label")
LABELS = ("yes", "no", "neutral")


def read_file(path: Path) -> list[Item]:
    """Three-way multiple-choice items of one NormAd CSV."""
    items = []
    for row, record in read_rows(path, COLUMNS, "the NormAd CSV"):
        label = cell(record, "Gold Label")
        if label not in LABELS:
            raise DataError(f"{path}: row {row}, column 'Gold Label': {label!r} is not one of {', '.join(LABELS)}")
        culture = words_of_slug(required_cell(path, row, record, "Country"))
        meta = {"background": cell(record, "Background"), "value": cell(record, "Value"),
                "rule_of_thumb": cell(record, "Rule-of-Thumb"), "axis": cell(record, "Axis"),
                "subaxis": cell(record, "Subaxis"), "explanation": cell(record, "Explanation"),
                "country_is_story_setting": label != "neutral"}
        if cell(record, "Other Country"):  # the upstream CSV, not the hub's, names the other culture
            meta["other_country"] = words_of_slug(cell(record, "Other Country"))
        items.append(Item(id=f"normad-{required_cell(path, row, record, 'ID')}", benchmark=NAME,
                          kind="multiple_choice", question=required_cell(path, row, record, "Story"), language="en",
                          split="eval", licence=DATA_LICENCES[NAME], culture=culture,
                          country=canonical_country(culture), options=LABELS, gold=(label,), subset="etiquette",
                          meta=meta))
    return items


def read(path: Path) -> Loaded:
    """NormAd items from its CSV or a folder holding it."""
    files = published_files(path, ("*.csv",))
    if not files:
        raise no_items(path, "NormAd CSV")
    items = [item for file in files for item in read_file(file)]
    return Loaded(check_unique(items, path), files)


def download() -> Path:
    """The CSV from the hub (the snapshot folder)."""
    return download_dataset(NAME, HUB_REPO, ["*.csv", "**/*.csv"])


BENCHMARK = Benchmark(
    name=NAME, title="NormAd", measures="social-norm reasoning: is an action acceptable given a country's "
    "etiquette (yes / no / neutral)", size="2,633 stories, 75 countries (hub copy about 2,615)",
    licence=DATA_LICENCES[NAME], terms=("kept out of web crawls by its authors: do not republish the rows",),
    paper=PAPERS[NAME], source=f"https://huggingface.co/datasets/{HUB_REPO}",
    published="normad_etiquette_final_data.csv (hub: the dataset's CSV) or a folder holding it", read=read,
    download=download)
