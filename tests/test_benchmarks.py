"""Benchmark loaders on fixtures in each benchmark's published format, malformed copies, and
`cultura data get` (with --from, and offline without it). No model, no Ray."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from cultura.data.benchmarks.registry import BENCHMARKS, get_benchmark
from cultura.data.benchmarks.schema import read_items, to_table, write_items
from cultura.errors import DataError, UnknownNameError

DATA = Path(__file__).parent / "data"
FIXTURES = DATA / "benchmarks"
GOQA = DATA / "globalopinionqa_sample.csv"


def fixture(name: str) -> Path:
    return GOQA if name == "globalopinionqa" else FIXTURES / name


def load(name: str, path: Path | None = None):
    return get_benchmark(name).read(path or fixture(name))


def test_registry_names_every_benchmark_and_refuses_an_unknown_one():
    assert set(BENCHMARKS) == {"globalopinionqa", "culturalbench", "blend", "normad", "cdeval", "worldvaluesbench",
                               "culturebank"}
    with pytest.raises(UnknownNameError, match="did you mean: normad"):
        get_benchmark("normadd")


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_every_loader_reads_its_fixture_into_the_schema(name, tmp_path):
    loaded = load(name)
    assert loaded.items and all(i.benchmark == name for i in loaded.items)
    assert len({i.id for i in loaded.items}) == len(loaded.items)
    table = to_table(loaded.items)
    assert table.num_rows == len(loaded.items)
    assert read_items(write_items(loaded.items, tmp_path)) == loaded.items  # Parquet round trip


def test_culturalbench_easy_letters_and_hard_booleans_grouped_by_question():
    items = load("culturalbench").items
    easy = [i for i in items if i.subset == "easy"]
    hard = [i for i in items if i.subset == "hard"]
    assert len(easy) == 3 and len(hard) == 8
    first = easy[0]
    assert first.question == "In Japan, what is usually said before starting a meal?"  # stray spaces stripped
    assert first.gold == ("Itadakimasu",) and first.options[0] == "Itadakimasu"
    assert [i.gold[0] for i in easy] == ["Itadakimasu", "Shona", "Dia de los Muertos"]
    assert easy[1].culture == "Zimbabwe" and easy[1].country == "Zimbabwe"  # known, without Hofstede scores
    groups = Counter(i.group for i in hard)
    assert groups == {"hard-0": 4, "hard-1": 4}
    right = [i.meta["option"] for i in hard if i.gold == ("yes",)]
    assert right == ["Itadakimasu", "Dia de los Muertos"] and all(i.options == ("yes", "no") for i in hard)


def test_blend_local_and_english_items_and_both_annotation_layouts(tmp_path):
    loaded = load("blend")
    saq = {i.id: i for i in loaded.items if i.subset == "saq"}
    korean, english = saq["An-ar-02:South_Korea:ko"], saq["An-ar-02:South_Korea:en"]
    questions = {r["ID"]: r for r in csv.DictReader(
        (FIXTURES / "blend/data/questions/South_Korea_questions.csv").open(encoding="utf-8"))}
    # Question is the local-language text, Translation the English one (the upstream README says the opposite)
    assert korean.question == questions["An-ar-02"]["Question"] and korean.language == "ko"
    assert english.question == questions["An-ar-02"]["Translation"] and english.language == "en"
    assert "school cafeteria" in english.gold and "학식" in korean.gold
    assert korean.meta["topic"] == "Education" and sum(v["count"] for v in korean.meta["votes"]) == 8
    assert not any(i.id.startswith("An-ar-02:UK:ko") for i in loaded.items)  # English country: one item
    assert saq["An-ar-02:UK:en"].country == "United Kingdom"
    assert "UK: 1 questions left out" in " ".join(loaded.notes) and "New-spme-65:UK:en" not in saq
    mcq = [i for i in loaded.items if i.subset == "mcq"]
    assert [i.gold for i in mcq] == [("breakfast",), ("carnation",)] and mcq[1].culture == "South Korea"
    # the hub's layout: a list of entries with an ID field
    hub = tmp_path / "data" / "annotations_hf"
    hub.mkdir(parents=True)
    for country in ("UK", "South_Korea"):
        data = json.loads((FIXTURES / f"blend/data/annotations/{country}_data.json").read_text(encoding="utf-8"))
        (hub / f"{country}_data.json").write_text(json.dumps([{"ID": k, **v} for k, v in data.items()]),
                                                  encoding="utf-8")
    from_hub = {i.id: i for i in load("blend", tmp_path).items}
    assert {k: (v.question, v.gold) for k, v in from_hub.items()} == {k: (v.question, v.gold) for k, v in saq.items()}


def test_blend_questions_csv_alone_says_the_answers_are_elsewhere():
    with pytest.raises(DataError, match="holds no answers"):
        load("blend", FIXTURES / "blend/data/questions/UK_questions.csv")


def test_normad_label_words_and_snake_case_countries():
    items = load("normad").items
    assert [i.gold[0] for i in items] == ["yes", "yes", "no", "no", "neutral"]
    assert items[1].culture == "South Sudan" and items[3].culture == "Bosnia and Herzegovina"
    assert items[3].country == "Bosnia and Herzegovina" and items[0].country == "Japan"
    assert items[4].meta["country_is_story_setting"] is False and items[0].meta["country_is_story_setting"]


def test_cdeval_reads_dimension_not_position_and_keeps_poles(tmp_path):
    items = load("cdeval").items
    assert [i.subset for i in items] == ["PDI", "IDV", "UAI", "LTO"]
    assert items[0].options == ("The manager decides alone.", "The team discusses and decides.")
    assert items[0].meta["poles"] == ["high power distance", "low power distance"] and items[0].gold is None
    records = json.loads((FIXTURES / "cdeval/CDEval.json").read_text())
    (tmp_path / "CDEval.json").write_text(json.dumps(list(reversed(records))))  # order does not decide
    assert sorted(i.subset for i in load("cdeval", tmp_path).items) == sorted(i.subset for i in items)
    for record in records:  # a per-dimension file of an earlier revision names its dimension by file name
        record.pop("Dimension")
    (tmp_path / "PDI.json").write_text(json.dumps(records[:1]))
    assert [i.subset for i in load("cdeval", tmp_path / "PDI.json").items] == ["PDI"]


def test_culturebank_agreement_bins_and_time_range_literal():
    items = {i.id: i for i in load("culturebank").items}
    japanese = items["tiktok-101"]
    assert japanese.culture == "Japanese" and japanese.reference == (0.9, 0.1)
    assert japanese.question.startswith("In Japan, people in restaurants")  # eval_whole_desc when given
    assert japanese.meta["time_range"] == {"2021": "[0, 10)", "2022": "[10, 20)"}
    assert japanese.meta["num_support_bin"] == "[20, 30)"
    assert "tip around 15 to 20 percent" in items["tiktok-102"].question  # composed when eval_whole_desc is empty
    assert items["reddit-7"].subset == "reddit"


def test_worldvaluesbench_scale_from_text_and_gold_from_local_answers(tmp_path):
    loaded = load("worldvaluesbench")
    first, trust = loaded.items[0], loaded.items[2]
    assert first.options == ("1", "2", "3", "4") and trust.options == ("1", "2")
    assert [i.gold for i in loaded.items[:3]] == [("1",), ("2",), ("2",)]
    assert first.culture == "Asia" and first.meta["urban_rural"] == "Urban" and first.group == "Q1"
    assert len(loaded.items) == 19 and {i.group for i in loaded.items} == {"Q1", "Q57", "Q48"}
    life = next(i for i in loaded.items if i.group == "Q48" and i.meta["participant"] == "100000007")
    assert life.options == tuple(str(v) for v in range(1, 11)) and life.gold == ("10",)  # a two-digit answer
    assert life.meta["education"] == "Upper to Post Secondary" and life.culture == "Europe"
    copy = tmp_path / "repo"
    shutil.copytree(fixture("worldvaluesbench"), copy)
    (copy / "WorldValuesBench/full/full_value_qa.tsv").unlink()
    bare = load("worldvaluesbench", copy)
    assert all(i.gold is None for i in bare.items) and "no full_value_qa.tsv" in bare.notes[0]


def test_worldvaluesbench_loose_samples_need_their_questions(tmp_path):
    loose = tmp_path / "samples.tsv"
    shutil.copyfile(fixture("worldvaluesbench") / "WorldValuesBench/probe/samples.tsv", loose)
    with pytest.raises(DataError, match="value_questions.json not found beside it"):
        load("worldvaluesbench", loose)
    shutil.copyfile(fixture("worldvaluesbench") / "WorldValuesBench/probe/value_questions.json",
                    tmp_path / "value_questions.json")
    assert {i.gold for i in load("worldvaluesbench", loose).items} == {None}


def _drop_column(source: Path, target: Path, column: str, delimiter: str = ",") -> None:
    with source.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter=delimiter))
    names = [n for n in rows[0] if n != column]
    with target.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, names, delimiter=delimiter, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


# benchmark -> (fixture file relative to its folder, the column to drop, delimiter)
MALFORMED = {
    "globalopinionqa": (None, "selections", ","),
    "culturalbench": ("CulturalBench-Hard.csv", "question_idx", ","),
    "blend": ("data/questions/UK_questions.csv", "Translation", ","),
    "normad": ("normad_etiquette_final_data.csv", "Gold Label", ","),
    "worldvaluesbench": ("WorldValuesBench/probe/samples.tsv", "Urban / Rural", "\t"),
    "culturebank": ("tiktok/culturebank_tiktok.csv", "cultural group", ","),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_a_missing_column_is_named(name, tmp_path):
    relative, column, delimiter = MALFORMED[name]
    if relative is None:
        target = tmp_path / GOQA.name
        _drop_column(GOQA, target, column)
    else:
        shutil.copytree(fixture(name), tmp_path / name)
        target = tmp_path / name / relative
        _drop_column(fixture(name) / relative, target, column, delimiter)
    with pytest.raises(DataError, match=f"missing column '{column}'") as error:
        load(name, tmp_path / name if relative else target)  # the folder laid out as published
    assert target.name in str(error.value)


@pytest.mark.parametrize("name, key", [("cdeval", "Option 2"), ("blend", "en_question")])
def test_a_missing_json_key_is_named(name, key, tmp_path):
    if name == "cdeval":
        records = json.loads((FIXTURES / "cdeval/CDEval.json").read_text())
        records[1].pop(key)
        path = tmp_path / "CDEval.json"
        path.write_text(json.dumps(records))
    else:
        data = json.loads((FIXTURES / "blend/data/annotations/UK_data.json").read_text(encoding="utf-8"))
        data["An-ar-08"].pop(key)
        path = tmp_path / "UK_data.json"
        path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(DataError, match=f"missing column '{key}'"):
        load(name, path)


def test_bad_label_words_are_refused(tmp_path):
    text = (FIXTURES / "culturalbench/CulturalBench-Easy.csv").read_text(encoding="utf-8")
    path = tmp_path / "CulturalBench-Easy.csv"
    path.write_text(text.replace(",A,Japan", ",E,Japan"), encoding="utf-8")
    with pytest.raises(DataError, match=r"column 'answer': 'E' is not one of the letters A, B, C, D"):
        load("culturalbench", path)
    text = (FIXTURES / "normad/normad_etiquette_final_data.csv").read_text(encoding="utf-8")
    path = tmp_path / "normad.csv"
    path.write_text(text.replace(",neutral\n", ",Neutral-ish\n"), encoding="utf-8")
    with pytest.raises(DataError, match="'Gold Label': 'Neutral-ish' is not one of yes, no, neutral"):
        load("normad", path)


def _cli(*args: str, home: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).with_name("cultura")), *args], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, HF_HUB_OFFLINE="1", CULTURA_HOME=str(home)))


def test_data_get_from_a_fixture_folder_writes_items_and_a_card(tmp_path):
    from cultura.cards import read_card

    out = tmp_path / "blend-items"
    result = _cli("data", "get", "blend", "--from", str(FIXTURES / "blend"), "--out", str(out), home=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("BLEnD licence: CC-BY-SA-4.0 (share-alike") and lines[1].startswith("Reading")
    items = read_items(out)
    assert items == load("blend").items
    card, body = read_card(out)
    assert card["paper"]["arxiv"] == "2406.09948" and card["licence"] == "CC-BY-SA-4.0"
    assert card["rows"] == len(items) and card["rows_per_country"] == dict(Counter(i.culture for i in items))
    assert "| South Korea |" in body and "share-alike" in body
    default = _cli("data", "get", "globalopinionqa", "--from", str(GOQA), home=tmp_path)
    assert default.returncode == 0, default.stderr
    assert "non-commercial use only; share-alike" in default.stdout
    assert len(read_items(tmp_path / "benchmarks" / "globalopinionqa")) == len(load("globalopinionqa").items)


@pytest.mark.parametrize("name", ["culturalbench", "worldvaluesbench", "globalopinionqa"])
def test_data_get_offline_without_from_says_to_pass_it(name, tmp_path):
    result = _cli("data", "get", name, home=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--from" in result.stderr and result.stderr.startswith("error: ")
    assert not (tmp_path / "benchmarks" / name).exists()


def test_data_get_malformed_file_is_one_line_without_traceback(tmp_path):
    target = tmp_path / "normad.csv"
    _drop_column(FIXTURES / "normad/normad_etiquette_final_data.csv", target, "Story")
    result = _cli("data", "get", "normad", "--from", str(target), home=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "missing column 'Story'" in result.stderr
