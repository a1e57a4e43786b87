"""BLEnD (Myung et al., NeurIPS 2024): everyday cultural knowledge of 16 countries and regions in
13 languages; the same 500 questions asked of every country, answered by about five locals each.

Published on GitHub (``nlee0212/BLEnD``) as ``data/annotations/{Country}_data.json`` (one JSON object
keyed by question ID: the question in the local language and in English, the answer clusters with
their local and English synonyms and vote counts) beside ``data/questions/{Country}_questions.csv``
(a leftover unnamed pandas index column, then ``ID, Topic, Source, Question, Translation``, where
``Question`` is the **local-language** text and ``Translation`` the English one, the opposite of the
upstream README). The Hugging Face copy (``nayeon212/BLEnD``) keeps the annotations as a **list** of
objects with an ``ID`` field (``data/annotations_hf/``); both layouts are read. The multiple-choice
file (``evaluation/mc_data/mc_questions_file-*.csv``: ``MCQID, ID, country, prompt, choices,
choice_countries, answer_idx``, ``choices`` a JSON string of lettered options) is read too.

A short-answer question gives one item in the local language and, where that is not English, one in
English; every synonym of every cluster is an accepted answer, with the votes kept in ``meta`` for
the paper's vote-weighted variant. Questions no annotator answered (all idk / not applicable) have
no gold and are left out, counted in the notes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cultura.cards import DATA_LICENCES, PAPERS
from cultura.data.benchmarks.formats import (canonical_country, cell, header_of, published_files, read_json, read_rows,
                                             require_columns, required_cell, words_of_slug)
from cultura.data.benchmarks.hub import download_dataset
from cultura.data.benchmarks.schema import Benchmark, Item, Loaded, check_unique, no_items
from cultura.errors import DataError

NAME = "blend"
HUB_REPO = "nayeon212/BLEnD"
# the local language of each country or region, as its file names spell it (ISO 639-1)
LANGUAGES = {"Algeria": "ar", "Assam": "as", "Azerbaijan": "az", "China": "zh", "Ethiopia": "am", "Greece": "el",
             "Indonesia": "id", "Iran": "fa", "Mexico": "es", "North_Korea": "ko", "Northern_Nigeria": "ha",
             "South_Korea": "ko", "Spain": "es", "UK": "en", "US": "en", "West_Java": "su"}
QUESTION_COLUMNS = ("ID", "Topic", "Source", "Question", "Translation")
ANNOTATION_KEYS = ("question", "en_question", "annotations")
MCQ_COLUMNS = ("MCQID", "ID", "country", "prompt", "choices", "choice_countries", "answer_idx")
ANNOTATIONS, QUESTIONS, MCQ = "*_data.json", "*_questions.csv", "mc_questions_file*.csv"


def _country_of_file(path: Path, suffix: str) -> str:
    name = path.name[: -len(suffix)]
    if name not in LANGUAGES:
        raise DataError(f"{path}: {name!r} is not a BLEnD country or region (file names are "
                        f"{{Country}}{suffix} with one of {', '.join(LANGUAGES)})")
    return name


def _annotation_records(path: Path) -> dict[str, dict[str, Any]]:
    """Question ID -> record, from the GitHub dict keyed by ID or the hub's list with an ``ID`` field."""
    data = read_json(path)
    if isinstance(data, list):
        records = {}
        for row, record in enumerate(data, start=1):
            if not isinstance(record, dict):
                raise DataError(f"{path}: entry {row}: expected an object")
            require_columns(path, record, ("ID",), "a BLEnD annotation entry", row)
            records[str(record["ID"]).strip()] = record
        return records
    if isinstance(data, dict):
        return {str(k).strip(): v for k, v in data.items()}
    raise DataError(f"{path}: expected an object keyed by question ID or a list of entries")


def _answers(path: Path, qid: str, clusters: Any, key: str) -> tuple[list[str], list[dict[str, Any]]]:
    """Every synonym of every cluster under ``key`` (``answers`` or ``en_answers``), and the votes."""
    if not isinstance(clusters, list):
        raise DataError(f"{path}: {qid}: 'annotations' must be a list of answer clusters")
    answers: list[str] = []
    votes = []
    for cluster in clusters:
        if not isinstance(cluster, dict):
            raise DataError(f"{path}: {qid}: an answer cluster must be an object")
        require_columns(path, cluster, (key, "count"), f"a BLEnD answer cluster of {qid}")
        words = [str(w).strip() for w in cluster[key] if str(w).strip()]
        answers += [w for w in words if w not in answers]
        votes.append({"answers": words, "count": cluster["count"]})
    return answers, votes


def _topics(files: list[Path]) -> dict[str, dict[str, dict[str, str]]]:
    """Country -> question ID -> {topic, source} from the questions CSVs (their Question/Translation
    texts equal the annotations' question/en_question, which name their language unambiguously)."""
    found: dict[str, dict[str, dict[str, str]]] = {}
    for path in files:
        country = _country_of_file(path, "_questions.csv")
        for row, record in read_rows(path, QUESTION_COLUMNS, "a BLEnD questions CSV"):
            qid = required_cell(path, row, record, "ID")
            found.setdefault(country, {})[qid] = {"topic": cell(record, "Topic"), "source": cell(record, "Source")}
    return found


def read_annotations(path: Path, topics: dict[str, dict[str, str]]) -> tuple[list[Item], int]:
    """Short-answer items of one ``{Country}_data.json`` and how many questions had no answer."""
    country = _country_of_file(path, "_data.json")
    language, culture = LANGUAGES[country], words_of_slug(country)
    items, unanswered = [], 0
    for qid, record in _annotation_records(path).items():
        if not isinstance(record, dict):
            raise DataError(f"{path}: {qid}: expected an object")
        require_columns(path, record, ANNOTATION_KEYS, f"a BLEnD annotation ({qid})")
        meta = dict(topics.get(qid, {}), idks=record.get("idks") or {})
        variants = [(language, "question", "answers")]
        if language != "en":
            variants.append(("en", "en_question", "en_answers"))
        answered = False
        for lang, question_key, answer_key in variants:
            answers, votes = _answers(path, qid, record["annotations"], answer_key)
            if not answers:
                continue
            answered = True
            question = str(record[question_key] or "").strip()
            if not question:
                raise DataError(f"{path}: {qid}: {question_key!r} must not be empty")
            items.append(Item(id=f"{qid}:{country}:{lang}", benchmark=NAME, kind="short_answer", question=question,
                              language=lang, split="eval", licence=DATA_LICENCES[NAME], culture=culture,
                              country=canonical_country(culture), gold=tuple(answers), subset="saq", group=qid,
                              meta=dict(meta, votes=votes)))
        unanswered += not answered
    return items, unanswered


def read_mcq(path: Path) -> list[Item]:
    """Multiple-choice items of an MCQ CSV: ``choices`` is a JSON string of lettered options and
    ``answer_idx`` the right letter; ``prompt`` is the published prompt text (it lists the options)."""
    items = []
    for row, record in read_rows(path, MCQ_COLUMNS, "a BLEnD multiple-choice CSV"):
        try:
            choices = json.loads(cell(record, "choices"))
            origins = json.loads(cell(record, "choice_countries") or "{}")
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: row {row}, column 'choices' or 'choice_countries': not valid JSON "
                            f"({exc.msg})") from None
        if not isinstance(choices, dict) or len(choices) < 2:
            raise DataError(f"{path}: row {row}, column 'choices': must be a JSON object letter -> option")
        letters = sorted(choices)
        letter = cell(record, "answer_idx").upper()
        if letter not in choices:
            raise DataError(f"{path}: row {row}, column 'answer_idx': {letter!r} is not one of {', '.join(letters)}")
        culture = words_of_slug(required_cell(path, row, record, "country"))
        items.append(Item(id=f"mcq-{required_cell(path, row, record, 'MCQID')}", benchmark=NAME, kind="multiple_choice",
                          question=required_cell(path, row, record, "prompt"), language="en", split="eval",
                          licence=DATA_LICENCES[NAME], culture=culture, country=canonical_country(culture),
                          options=tuple(str(choices[k]).strip() for k in letters), gold=(str(choices[letter]).strip(),),
                          subset="mcq", group=required_cell(path, row, record, "ID"),
                          meta={"letters": letters, "choice_countries": origins}))
    return items


def read(path: Path) -> Loaded:
    """BLEnD items from a folder laid out as GitHub or the hub publishes it, or from one annotations
    JSON, questions CSV (for topics, beside its annotations) or multiple-choice CSV."""
    if path.is_file() and path.name.endswith("_questions.csv") and "MCQID" not in header_of(path):
        raise DataError(f"{path}: a questions CSV holds no answers; pass the folder with "
                        f"data/annotations/{{Country}}_data.json (or that JSON file)")
    files = published_files(path, (ANNOTATIONS, QUESTIONS, MCQ) if path.is_dir() else ("*",))
    annotation_files = [f for f in files if f.name.endswith("_data.json")]
    mcq_files = [f for f in files if f.suffix == ".csv" and "MCQID" in header_of(f)]
    if not annotation_files and not mcq_files:
        raise no_items(path, f"BLEnD annotations ({ANNOTATIONS}) or multiple-choice CSV ({MCQ})")
    topics = _topics([f for f in files if f.name.endswith("_questions.csv")])
    items: list[Item] = []
    notes, seen = [], set()
    for file in sorted(annotation_files, key=lambda f: (f.parent.name != "annotations", str(f))):
        country = _country_of_file(file, "_data.json")
        if country in seen:  # the hub holds both layouts of one country: the GitHub one (sorted first) wins
            continue
        seen.add(country)
        found, unanswered = read_annotations(file, topics.get(country, {}))
        items += found
        if unanswered:
            notes.append(f"{words_of_slug(country)}: {unanswered} questions left out (no annotator gave an answer)")
    for file in mcq_files:
        items += read_mcq(file)
    used = [f for f in files if f in annotation_files or f in mcq_files or f.name.endswith("_questions.csv")]
    return Loaded(check_unique(items, path), used, notes)


def download() -> Path:
    """The annotations (both layouts) and questions CSVs from the hub (the snapshot folder)."""
    return download_dataset(NAME, HUB_REPO, ["data/annotations/*_data.json", "data/annotations_hf/*_data.json",
                                             "data/questions/*_questions.csv"])


BENCHMARK = Benchmark(
    name=NAME, title="BLEnD", measures="everyday cultural knowledge of 16 countries/regions in 13 languages "
    "(short answers matched against locals' answers; multiple choice)",
    size="500 questions x 16 countries, about 52.6k question-answer pairs", licence=DATA_LICENCES[NAME],
    terms=("share-alike",), paper=PAPERS[NAME], source=f"https://huggingface.co/datasets/{HUB_REPO} "
    "(GitHub nlee0212/BLEnD)", published="the repository folder (data/annotations/{Country}_data.json, "
    "data/questions/{Country}_questions.csv, evaluation/mc_data/mc_questions_file-*.csv) or one of those files",
    read=read, download=download)
