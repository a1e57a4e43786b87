"""WorldValuesBench (Zhao et al., LREC-COLING 2024): World Values Survey wave 7 value questions asked
of a person described by their demographics; scored per question by the Wasserstein distance between
the model's answers and the people's.

Published on GitHub (``Demon702/WorldValuesBench``), with no hub dataset: the probe set
``WorldValuesBench/probe/samples.tsv`` (tab-separated: ``Question, Question Category, Continent,
Urban / Rural, Education, D_INTERVIEW``; the column ``Urban / Rural`` has spaces and a slash) and the
question texts ``value_questions.json``. Each question's scale is written **only inside its text**
("On a scale of 1 to 4, ..."), unless ``question_metadata.json`` is there. The people's answers are
not published (WVS terms): the user builds ``WorldValuesBench/full/full_value_qa.tsv`` from the WVS
download with the repository's ``dataset_construction/data_preparation.py``; when it is there each
item's gold is that person's answer, otherwise items have no gold.
"""

from __future__ import annotations

import re
from pathlib import Path

from cultura.cards import DATA_LICENCES, PAPERS
from cultura.data.benchmarks.formats import cell, published_files, read_json, read_rows, required_cell
from cultura.data.benchmarks.schema import Benchmark, Item, Loaded, check_unique
from cultura.errors import DataError

NAME = "worldvaluesbench"
REPO = "https://github.com/Demon702/WorldValuesBench"
SAMPLES = "samples.tsv"
COLUMNS = ("Question", "Question Category", "Continent", "Urban / Rural", "Education", "D_INTERVIEW")
QUESTIONS, METADATA, ANSWERS = "value_questions.json", "question_metadata.json", "full_value_qa.tsv"
_SCALE = re.compile(r"on a scale of (\d+) to (\d+)", re.IGNORECASE)


def _beside(samples: Path, name: str) -> Path | None:
    """The file ``name`` beside the samples, or anywhere in the repository clone they sit in
    (``<clone>/WorldValuesBench/probe/samples.tsv``); a loose samples file is looked beside only."""
    if (samples.parent / name).is_file():
        return samples.parent / name
    if samples.parent.parent.name != "WorldValuesBench":
        return None
    found = sorted(p for p in samples.parents[2].rglob(name) if p.is_file())
    return found[0] if found else None


def _scale(question_id: str, text: str, metadata: dict) -> tuple[int, int] | None:
    info = metadata.get(question_id) or {}
    if "answer_scale_min" in info and "answer_scale_max" in info:
        return int(info["answer_scale_min"]), int(info["answer_scale_max"])
    match = _SCALE.search(text)
    return (int(match[1]), int(match[2])) if match else None


def _answers(path: Path | None, wanted: set[str]) -> dict[tuple[str, str], str]:
    """(participant, question) -> answer from a locally built value-answers TSV, for ``wanted`` people."""
    if path is None:
        return {}
    found = {}
    for _, record in read_rows(path, ("D_INTERVIEW",), ANSWERS, delimiter="\t"):
        person = cell(record, "D_INTERVIEW")
        if person in wanted:
            found.update({(person, q): cell(record, q) for q in record if q != "D_INTERVIEW" and cell(record, q)})
    return found


def read(path: Path) -> Loaded:
    """Scale items of the probe set: a clone of the repository (or its ``WorldValuesBench`` folder),
    or ``samples.tsv`` inside one (``value_questions.json`` is looked up beside it)."""
    found = published_files(path, (SAMPLES,))
    if not found:
        raise DataError(f"{path}: no {SAMPLES} found there (the probe set is WorldValuesBench/probe/{SAMPLES} "
                        f"in {REPO})")
    samples = found[0]
    questions_file = _beside(samples, QUESTIONS)
    if questions_file is None:
        raise DataError(f"{samples}: {QUESTIONS} not found beside it (WorldValuesBench/probe/{QUESTIONS} in {REPO})")
    questions = read_json(questions_file)
    metadata_file = _beside(samples, METADATA)
    metadata = read_json(metadata_file) if metadata_file else {}
    rows = list(read_rows(samples, COLUMNS, f"the WorldValuesBench {SAMPLES}", delimiter="\t"))
    answers_file = _beside(samples, ANSWERS)
    answers = _answers(answers_file, {cell(r, "D_INTERVIEW") for _, r in rows})
    items = []
    for row, record in rows:
        qid = required_cell(samples, row, record, "Question")
        person = required_cell(samples, row, record, "D_INTERVIEW")
        text = str(questions.get(qid) or "").strip()
        if not text:
            raise DataError(f"{samples}: row {row}, column 'Question': {qid!r} is not in {questions_file}")
        scale = _scale(qid, text, metadata)
        if scale is None:
            raise DataError(f"{questions_file}: {qid}: no 'On a scale of A to B' in its text and no {METADATA}")
        options = tuple(str(v) for v in range(scale[0], scale[1] + 1))
        gold = answers.get((person, qid))
        if gold is not None and gold not in options:
            raise DataError(f"{answers_file}: participant {person}, {qid}: answer {gold!r} is off the scale "
                            f"{scale[0]}..{scale[1]}")
        items.append(Item(id=f"{qid}-{person}", benchmark=NAME, kind="scale", question=text, language="en",
                          split="eval", licence=DATA_LICENCES[NAME],
                          culture=required_cell(samples, row, record, "Continent"),
                          options=options, gold=(gold,) if gold is not None else None, subset="probe", group=qid,
                          meta={"category": cell(record, "Question Category"),
                                "urban_rural": cell(record, "Urban / Rural"),
                                "education": cell(record, "Education"), "participant": person}))
    files = [f for f in (samples, questions_file, metadata_file, answers_file) if f is not None]
    notes = [] if answers_file else [f"no {ANSWERS} (built from the WVS download): the items have no gold answers"]
    return Loaded(check_unique(items, path), files, notes)


BENCHMARK = Benchmark(
    name=NAME, title="WorldValuesBench", measures="a person's answer to a WVS value question given their "
    "demographics (Wasserstein distance per question)", size="probe set 8,280 rows / 36 questions "
    "(full: 93,278 participants x 240 questions)", licence=DATA_LICENCES[NAME],
    terms=("no-redistribution",), paper=PAPERS[NAME], source=REPO,
    published="a clone of the repository (WorldValuesBench/probe/samples.tsv, value_questions.json; "
    "WorldValuesBench/full/full_value_qa.tsv built locally for gold answers) or its samples.tsv",
    read=read)
