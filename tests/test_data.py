"""Bundled data files and their loaders: Hofstede table, cultures, seeds, prompts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cultura.data import hofstede
from cultura.data.cultures import CULTUREPARK_CULTURES, culture_of_country, get_culture, known_cultures
from cultura.data.hofstede import (
    CONTINENTS,
    DIMENSIONS,
    continent_centroid,
    continent_of,
    countries,
    country_scores,
    find_countries_in_text,
    load_table,
    resolve_country,
)
from cultura.data.prompts import load_prompts
from cultura.data.goqa import substantive
from cultura.data.seed_files import load_seeds, read_seeds
from cultura.data.seeds import Seed, seed_split
from cultura.errors import CulturaError, DataError, UnknownNameError

# --- Hofstede table ---------------------------------------------------------------------------


def test_table_has_118_countries_on_five_continents():
    table = load_table()
    scored = [n for n, e in table.items() if any(v is not None for v in e.scores.values())]
    assert len(scored) == 118 and len(load_table(hofstede.BUNDLED)) == len(table)
    # countries surveys cover without Hofstede scores are known too (GlobalOpinionQA's spellings resolve)
    unscored = sorted(set(table) - set(scored))
    assert len(unscored) == 15 and "Mali" in unscored and not hofstede.has_scores("Palest. ter.")
    assert resolve_country("Palest. ter.") == "Palestinian territories" and resolve_country("Macau SAR") == "Macau"
    assert continent_of("Kyrgyzstan") == "Asia" and hofstede.has_scores("Germany")
    assert {e.continent for e in table.values()} == set(CONTINENTS)
    assert all(e.demonym for e in table.values())
    assert table["Albania"].estimated and not table["Germany"].estimated


def test_germany_scores():
    assert country_scores("Germany") == {"PDI": 35, "IDV": 67, "MAS": 66, "UAI": 65, "LTO": 83, "IVR": 40}
    assert continent_of("germany") == "Europe"


def test_missing_scores_are_none():
    assert country_scores("Bhutan")["LTO"] is None and country_scores("Bhutan")["IVR"] is None
    assert country_scores("Qatar")["IVR"] is None


@pytest.mark.parametrize("name,expected", [
    ("GERMANY", "Germany"), ("usa", "United States"), ("US", "United States"),
    ("United States of America", "United States"), ("America", "United States"), ("UK", "United Kingdom"),
    ("Britain", "United Kingdom"), ("England", "United Kingdom"), ("Korea", "South Korea"),
    ("south korea", "South Korea"), ("Brazilian", "Brazil"), ("the netherlands", "Netherlands"),
    ("Sao Tome and Principe", "São Tomé and Príncipe"), ("czechia", "Czech Republic"), ("Türkiye", "Turkey"),
])
def test_resolve_country_aliases(name, expected):
    assert resolve_country(name) == expected


def test_unknown_country_suggests_close_match():
    with pytest.raises(UnknownNameError) as info:
        resolve_country("Germny")
    assert "Germany" in str(info.value)
    assert isinstance(info.value, CulturaError)


@pytest.mark.parametrize("text,expected", [
    ("We had dinner in Japan last week.", ["Japan"]),
    ("Speaking as a Brazilian, I think so.", ["Brazil"]),
    ("My friends from Germany and the USA, and some Koreans.", ["Germany", "United States", "South Korea"]),
    ("Let us cook turkey and buy china plates.", []),
    ("Is Turkey closer to Europe or Asia?", ["Turkey"]),
    ("North Korea borders China.", ["China"]),
    ("Latin American music is popular in Spain.", ["Spain"]),
    ("Please answer in English.", []),
    ("Germany, then germany again, then the Germans.", ["Germany"]),
    ("A trip to São Tomé", ["São Tomé and Príncipe"]),
])
def test_find_countries_in_text(text, expected):
    assert find_countries_in_text(text) == expected


def test_continent_centroid_is_mean_of_available_scores():
    oceania = continent_centroid("oceania")
    assert oceania["PDI"] == pytest.approx((38 + 78 + 22) / 3)
    assert oceania["LTO"] == pytest.approx((21 + 33) / 2)  # Fiji has no LTO score
    assert set(continent_centroid("Europe")) == set(DIMENSIONS)
    assert countries("Oceania") == ["Australia", "Fiji", "New Zealand"]
    with pytest.raises(UnknownNameError):
        countries("Atlantis")


def test_table_loader_names_row_and_field(tmp_path):
    bad = tmp_path / "h.csv"
    bad.write_text("# comment\ncountry,continent,estimated,demonym,PDI,IDV,MAS,UAI,LTO,IVR\n"
                   "Narnia,Europe,false,Narnian,10,20,30,40,50,60\n"
                   "Oz,Mars,false,Ozian,10,20,30,40,50,60\n")
    with pytest.raises(DataError, match=r"h\.csv: row 4, field 'continent'"):
        load_table(bad)
    bad.write_text("country,continent,estimated,demonym,PDI,IDV,MAS,UAI,LTO,IVR\nOz,Asia,false,Ozian,x,20,30,40,50,\n")
    with pytest.raises(DataError, match=r"row 2, field 'PDI'"):
        load_table(bad)


def test_load_table_returns_a_copy():
    load_table().pop("Germany")
    assert "Germany" in load_table()


# --- cultures ---------------------------------------------------------------------------------


def test_eight_culturepark_cultures():
    assert len(CULTUREPARK_CULTURES) == 8
    for key in CULTUREPARK_CULTURES:
        culture = get_culture(key)
        assert culture.key == key and len(culture.names) >= 4
        assert culture.primary_country == culture.countries[0]
        assert culture.continent == continent_of(culture.primary_country)
        assert all(resolve_country(c) == c for c in culture.countries)
    assert get_culture("Arabic").key == "arabic" and get_culture("TURKISH").key == "turkish"


def test_every_country_is_a_culture_with_names():
    for country in load_table():
        culture = get_culture(country)
        assert culture.countries == (country,) and len(culture.names) >= 2
    japan = get_culture("japanese")
    assert (japan.key, japan.display, japan.language) == ("japan", "Japanese", "Japanese")
    assert get_culture("south_korea").primary_country == "South Korea"
    assert "german" in known_cultures() and "united_states" in known_cultures()


def test_culture_of_country():
    assert culture_of_country("Mexico").key == "spanish"
    assert culture_of_country("Bangladesh").key == "bengali"
    assert culture_of_country("Japan").key == "japan"


def test_unknown_culture_suggests():
    with pytest.raises(UnknownNameError, match="german"):
        get_culture("germna")


# --- seeds ------------------------------------------------------------------------------------


PRIMARY = {"arabic": "Egypt", "bengali": "Bangladesh", "chinese": "China", "german": "Germany",
           "korean": "South Korea", "portuguese": "Brazil", "spanish": "Spain", "turkish": "Turkey"}
FIXTURE = Path(__file__).parent / "data" / "globalopinionqa_sample.csv"


def test_bundled_seeds_are_keyed_by_country_with_provenance():
    seeds = load_seeds()
    wvs = [s for s in seeds if s.source == "wvs"]
    pew = [s for s in seeds if s.source == "pew"]
    assert len(wvs) >= 50 and len(pew) >= 30
    assert len({s.id for s in seeds}) == len(seeds)
    for seed in seeds:
        assert seed.attitudes, seed.id
        assert set(seed.provenance) == set(seed.attitudes), seed.id
        for country, answer in seed.attitudes.items():
            assert resolve_country(country) == country and answer in seed.options
            source = seed.provenance[country]
            assert source == "approximate" or (("Pew" in source or "World Values Survey" in source)
                                                and any(ch.isdigit() for ch in source)), (seed.id, source)
    cited = [(s.id, c) for s in seeds for c, p in s.provenance.items() if p != "approximate"]
    assert 0 < len(cited) < sum(len(s.attitudes) for s in seeds)
    differing = [s for s in seeds if len(set(s.attitudes.values())) > 1]
    assert len(differing) >= 40
    assert load_seeds(sources=["pew"]) == pew
    by_id = {s.id: s for s in seeds}
    # questions the survey never asked there keep no attitude
    assert "Germany" not in by_id["pew-020"].attitudes and "Egypt" not in by_id["pew-023"].attitudes


def test_seed_texts_and_culture_attitudes():
    seeds = {s.id: s for s in load_seeds()}
    family = seeds["wvs-001"]
    expected = 'When asked "How important is family in your life?", most people in Germany answered "Very important".'
    assert family.attitude_text("german") == family.attitude_text("Germany") == expected
    assert "Very important / Rather important" in family.prompt_text()
    accepted = seeds["pew-001"]
    assert accepted.attitude_text("german") == "Most people in Germany agree that homosexuality should be accepted by society."
    assert accepted.attitude_text("turkish").startswith("Most people in Turkey disagree that homosexuality")
    assert accepted.prompt_text().startswith("Do you agree or disagree")
    assert accepted.attitude("Austria") is None  # Austria has no data of its own; german's is Germany's
    partial = next(s for s in seeds.values() if "Bangladesh" not in s.attitudes)
    assert partial.attitude("bengali") is None
    with pytest.raises(CulturaError, match="no known attitude"):
        partial.attitude_text("bengali")


def test_pooled_culture_attitude():
    seed = Seed("p1", "pew", "t", "question", "Q?", ("Yes", "No"), {"Spain": "Yes", "Mexico": "No", "Chile": "No"},
                {"Spain": (0.6, 0.4), "Mexico": (0.2, 0.8)}, {"Spain": "a", "Mexico": "b", "Chile": "c"})
    assert seed.culture_attitude("spanish").source == "Spain" and seed.attitude("spanish") == "Yes"
    pooled = seed.culture_attitude("spanish", pooled=True)
    assert pooled.answer == "No" and pooled.countries == ("Spain", "Mexico", "Chile")
    assert pooled.source == "pooled: Spain, Mexico, Chile" and "Mexico: b" in pooled.provenance
    assert seed.attitude_text("spanish", pooled=True).endswith('most people in Spain, Mexico and Chile answered "No".')


def test_culture_filter():
    seeds = load_seeds(cultures=["Bengali"])
    assert seeds and all("Bangladesh" in s.attitudes for s in seeds)


def test_seed_split_is_deterministic_disjoint_and_configurable():
    seeds = load_seeds()
    train, held_out = load_seeds(split="train"), load_seeds(split="eval")
    assert {s.id for s in train} | {s.id for s in held_out} == {s.id for s in seeds}
    assert not {s.id for s in train} & {s.id for s in held_out}
    assert 0.1 < len(held_out) / len(seeds) < 0.3  # about the default 20%
    assert len(load_seeds(split="eval", eval_fraction=0.5)) > len(held_out)
    assert all(seed_split(s.id) == "eval" for s in held_out)
    assert seed_split("any-new-seed") == seed_split("any-new-seed")
    with pytest.raises(UnknownNameError, match="seed split"):
        load_seeds(split="test")


def _seed(**overrides):
    record = {"id": "x-1", "source": "wvs", "topic": "family", "kind": "question", "text": "Is family important?",
              "options": ["Yes", "No"], "attitudes": {"Germany": "Yes"}}
    record.update(overrides)
    return json.dumps(record)


@pytest.mark.parametrize("second_line,pattern", [
    ("{not json", r"row 2: not valid JSON"),
    (json.dumps({"id": "x-2", "source": "wvs", "kind": "question", "text": "Q?", "options": ["a", "b"],
                 "attitudes": {}}), r"row 2, field 'topic': missing"),
    (_seed(id="x-2", attitudes={"Germany": "Maybe"}), r"row 2, field 'attitudes'.*'Maybe' is not among"),
    (_seed(id="x-2", attitudes={"Klingon": "Yes"}), r"row 2, field 'attitudes'.*unknown country"),
    (_seed(id="x-2", attitudes={"german": "Yes"}), r"row 2, field 'attitudes'.*'german' is a culture.*'Germany'"),
    (_seed(id="x-2", attitudes={"UK": "Yes", "Britain": "No"}), r"row 2, field 'attitudes'.*United Kingdom.*twice"),
    (_seed(id="x-2", distributions={"Germany": [1.0]}), r"row 2, field 'distributions'"),
    (_seed(id="x-2", distributions={"Germany": [0.2, 0.8]}), r"row 2, field 'attitudes'.*not the top option"),
    (_seed(id="x-2", provenance={"Japan": "WVS 7"}), r"row 2, field 'provenance'.*Japan: no attitude"),
    (_seed(id="x-2", kind="poem"), r"row 2, field 'kind'"),
    (_seed(), r"row 2, field 'id': duplicate id 'x-1'"),
])
def test_malformed_seed_files(tmp_path, second_line, pattern):
    path = tmp_path / "seeds.jsonl"
    path.write_text(_seed() + "\n" + second_line + "\n")
    with pytest.raises(DataError, match=pattern) as info:
        load_seeds(path)
    assert str(path) in str(info.value)


def test_project_csv_seeds(tmp_path):
    path = tmp_path / "seeds.csv"
    path.write_text('id,source,topic,kind,text,options,attitudes\n'
                    'c-1,wvs,family,question,Is family important?,"[""Yes"", ""No""]","{""S. Korea"": ""Yes""}"\n'
                    'c-2,wvs,family,question,Is work important?,"[""Yes"", ""No""]","{""South Korea"": ""Sure""}"\n')
    with pytest.raises(DataError, match=r"row 3, field 'attitudes'"):
        load_seeds(path)
    path.write_text(path.read_text().replace("Sure", "No"))
    first = load_seeds(path)[0]
    assert first.attitudes == {"South Korea": "Yes"} and first.provenance == {"South Korea": "seeds.csv"}


def _fixture_rows() -> list[dict]:
    import ast
    import csv

    with FIXTURE.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        raw = row["selections"]
        row["selections"] = ast.literal_eval(raw[raw.index("{"):raw.rindex("}") + 1])
        row["options"] = ast.literal_eval(row["options"])
    return rows


def test_globalopinionqa_keeps_every_country_and_its_spellings():
    loaded = read_seeds(FIXTURE)
    rows = _fixture_rows()
    assert len(loaded.seeds) == len(rows)
    spelled = {"Spain": "Spain", "Mexico": "Mexico", "S. Korea": "South Korea", "Britain": "United Kingdom",
               "S. Africa": "South Africa", "Czech Rep.": "Czech Republic", "Germany": "Germany", "Japan": "Japan"}
    def substantive_shares(shares, kept):  # "DK/Refused" and the like are left out and the rest renormalised
        shares = [shares[i] for i in kept]
        return pytest.approx(tuple(s / sum(shares) for s in shares))

    for seed, row in zip(loaded.seeds, rows):
        kept = substantive(row["options"])
        assert seed.id.startswith("goqa-") and seed.source == ("pew" if row["source"] == "GAS" else "wvs")
        assert seed.text == row["question"] and list(seed.options) == [row["options"][i] for i in kept]
        for written, country in spelled.items():
            if written in row["selections"]:  # Spain and Mexico (one culture) both keep their own data
                assert seed.distributions[country] == substantive_shares(row["selections"][written], kept)
                assert seed.reference(country).probs == substantive_shares(row["selections"][written], kept)
        current = row["selections"].get("India (Current national sample)")
        if current:  # the national sample wins over the non-national one
            assert seed.distributions["India"] == substantive_shares(current, kept)
            assert "Current national sample" in seed.provenance["India"]
        assert "Northern Ireland" not in str(seed.attitudes)
    # "Palest. ter." has no Hofstede scores but is a known country: its answers are kept, not dropped
    assert not loaded.unknown_countries and loaded.regions == {"Northern Ireland": 7}
    assert sum("Palestinian territories" in s.distributions for s in loaded.seeds) == 8
    assert "not in the country table" not in loaded.summary()
    assert read_seeds(FIXTURE).seeds[0].id == loaded.seeds[0].id  # deterministic


def test_globalopinionqa_malformed_row(tmp_path):
    path = tmp_path / "goqa.csv"
    text = FIXTURE.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join(text[:2]).replace("'Spain': [", "'Spain': [0.5, ", 1) + "\n")
    with pytest.raises(DataError, match=r"row 2, field 'selections': Spain: needs one number per option"):
        load_seeds(path)


def test_country_sample_qualifiers():
    from cultura.data.goqa import country_sample

    assert country_sample("India (Current national sample)") == ("India", "Current national sample", 0)
    assert country_sample("Brazil") == ("Brazil", "", 1)
    assert country_sample("Nigeria (Non-national sample)")[2] == 3


def _cli(*args: str, home: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).with_name("cultura")), *args], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, HF_HUB_OFFLINE="1", CULTURA_HOME=str(home)))


def test_get_globalopinionqa_offline_says_where_to_put_the_file(tmp_path, monkeypatch):
    result = _cli("data", "get", "globalopinionqa", home=tmp_path)
    target = tmp_path / "data" / "global_opinions.csv"
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"put it at {target}" in result.stderr and "Anthropic/llm_global_opinions" in result.stderr
    assert not target.exists()
    result = _cli("eval", "opinions", "--questions", "globalopinionqa", "--countries", "Japan", home=tmp_path)
    assert result.returncode == 2 and "cultura data get globalopinionqa" in result.stderr
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(FIXTURE, target)  # a copy put where the message says is what --questions reads
    monkeypatch.setenv("CULTURA_HOME", str(tmp_path))
    assert [s.id for s in load_seeds("globalopinionqa")] == [s.id for s in load_seeds(FIXTURE)]


def test_data_seeds_splits_are_disjoint():
    from click.testing import CliRunner

    from cultura.cli import cli

    ids = {}
    for split in ("train", "eval"):
        result = CliRunner().invoke(cli, ["data", "seeds", "--split", split])
        assert result.exit_code == 0, result.output
        rows = [line.split() for line in result.output.splitlines()[1:] if line[:4] in ("wvs-", "pew-")]
        assert rows and all(r[1] == split for r in rows)
        ids[split] = {r[0] for r in rows}
    assert not ids["train"] & ids["eval"] and len(ids["train"]) + len(ids["eval"]) == len(load_seeds())


# --- prompts ----------------------------------------------------------------------------------


def test_bundled_prompts():
    prompts = load_prompts()
    assert len(prompts) >= 60
    assert len({p.id for p in prompts}) == len(prompts)
    assert all(p.text.strip() and p.topic for p in prompts)


def test_prism_conversations_jsonl(tmp_path):
    path = tmp_path / "conversations.jsonl"
    path.write_text(json.dumps({"conversation_id": "c0", "opening_prompt": "Should I tip in Japan?"}) + "\n")
    assert load_prompts(path)[0].id == "c0" and load_prompts(path)[0].text == "Should I tip in Japan?"


def test_csv_prompts_and_empty_text(tmp_path):
    path = tmp_path / "prompts.csv"
    path.write_text("prompt,topic\nIs gift giving rude?,etiquette\n   ,etiquette\n")
    with pytest.raises(DataError, match=r"row 3, field 'prompt': the prompt text is empty"):
        load_prompts(path)
    path.write_text("prompt,topic\nIs gift giving rude?,etiquette\n")
    assert load_prompts(path)[0].id == "prompts-00002"


def test_bundled_table_is_cached():
    assert hofstede._bundled() is hofstede._bundled()
