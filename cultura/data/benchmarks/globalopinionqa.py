"""GlobalOpinionQA (Durmus et al., 2023) in the benchmark schema: one distribution item per
(question, country), read with the parser of :mod:`cultura.data.goqa` (country spellings, best
sample per country, regions and unknown countries counted). The split is cultura's seed split (a
hash of the question's seed id), so items held out here are the ones generation never trains on.
"""

from __future__ import annotations

from pathlib import Path

from cultura.cards import DATA_LICENCES, PAPERS
from cultura.data.benchmarks.formats import published_files, read_rows
from cultura.data.benchmarks.schema import Benchmark, Item, Loaded, check_unique, no_items
from cultura.data.goqa import GOQA_COLUMNS, GOQA_NAME, HUB_REPO, download_goqa, load_goqa
from cultura.data.seeds import seed_split
from cultura.errors import CulturaError


def read(path: Path) -> Loaded:
    """Items of the GlobalOpinionQA CSV (``global_opinions.csv``, or a folder holding it)."""
    files = published_files(path, ("global_opinions.csv",))
    if not files:
        raise no_items(path, "global_opinions.csv")
    items, notes = [], []
    for file in files:
        pairs, skipped = load_goqa(file, read_rows(file, GOQA_COLUMNS, "the GlobalOpinionQA CSV"))
        for _, seed in pairs:
            for country, shares in seed.distributions.items():
                items.append(Item(id=f"{seed.id}:{country}", benchmark=GOQA_NAME, kind="distribution",
                                  question=seed.text, language="en", split=seed_split(seed.id),
                                  licence=DATA_LICENCES[GOQA_NAME], culture=country, country=country,
                                  options=seed.options, reference=shares, subset=seed.source, group=seed.id,
                                  meta={"provenance": seed.provenance[country]}))
        if skipped.unknown_countries or skipped.regions:
            notes.append(skipped.summary().split("; ", 1)[-1])  # what was left out, not the empty count
    return Loaded(check_unique(items, path), files, notes)


def download() -> Path:
    """The CSV into cultura's cache (where ``--questions globalopinionqa`` reads it)."""
    try:
        return download_goqa()
    except CulturaError as exc:
        raise CulturaError(f"{exc}; or pass it with `cultura data get {GOQA_NAME} --from FILE`") from None


BENCHMARK = Benchmark(
    name=GOQA_NAME, title="GlobalOpinionQA", measures="survey opinions: each country's answer distribution on "
    "Pew Global Attitudes and World Values Survey questions", size="2,556 questions",
    licence=DATA_LICENCES[GOQA_NAME], terms=("non-commercial", "share-alike"), paper=PAPERS[GOQA_NAME],
    source=f"https://huggingface.co/datasets/{HUB_REPO}", published="global_opinions.csv (hub: "
    "data/global_opinions.csv) or a folder holding it", read=read, download=download)
