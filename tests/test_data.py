"""Bundled data files and their loaders: Hofstede table, cultures, seeds, prompts."""

from __future__ import annotations

import json

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
from cultura.data.seeds import Seed, load_seeds
from cultura.errors import CulturaError, DataError, UnknownNameError

# --- Hofstede table ---------------------------------------------------------------------------


def test_table_has_118_countries_on_five_continents():
    table = load_table()
    assert len(table) == 118
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


def test_bundled_seeds_load_and_are_consistent():
    seeds = load_seeds()
    wvs = [s for s in seeds if s.source == "wvs"]
    pew = [s for s in seeds if s.source == "pew"]
    assert len(wvs) >= 50 and len(pew) >= 30
    assert len({s.id for s in seeds}) == len(seeds)
    for seed in seeds:
        assert seed.attitudes, seed.id
        for key, answer in seed.attitudes.items():
            assert key in CULTUREPARK_CULTURES and answer in seed.options
    differing = [s for s in seeds if len(set(s.attitudes.values())) > 1]
    assert len(differing) >= 40
    assert load_seeds(sources=["pew"]) == pew


def test_seed_texts():
    seeds = {s.id: s for s in load_seeds()}
    family = seeds["wvs-001"]
    assert family.attitude_text("german") == (
        'When asked "How important is family in your life?", most people in Germany answered "Very important".')
    assert "Very important / Rather important" in family.prompt_text()
    accepted = seeds["pew-001"]
    assert accepted.attitude_text("german") == "Most people in Germany agree that homosexuality should be accepted by society."
    assert accepted.attitude_text("turkish").startswith("Most people in Turkey disagree that homosexuality")
    assert accepted.prompt_text().startswith("Do you agree or disagree")
    partial = next(s for s in seeds.values() if "bengali" not in s.attitudes)
    assert partial.attitude("bengali") is None
    with pytest.raises(CulturaError, match="no known attitude"):
        partial.attitude_text("bengali")


def test_culture_filter():
    seeds = load_seeds(cultures=["Bengali"])
    assert seeds and all("bengali" in s.attitudes for s in seeds)


def _seed(**overrides):
    record = {"id": "x-1", "source": "wvs", "topic": "family", "kind": "question", "text": "Is family important?",
              "options": ["Yes", "No"], "attitudes": {"german": "Yes"}}
    record.update(overrides)
    return json.dumps(record)


@pytest.mark.parametrize("second_line,pattern", [
    ("{not json", r"row 2: not valid JSON"),
    (json.dumps({"id": "x-2", "source": "wvs", "kind": "question", "text": "Q?", "options": ["a", "b"],
                 "attitudes": {}}), r"row 2, field 'topic': missing"),
    (_seed(id="x-2", attitudes={"german": "Maybe"}), r"row 2, field 'attitudes'.*'Maybe' is not among"),
    (_seed(id="x-2", attitudes={"klingon": "Yes"}), r"row 2, field 'attitudes'.*unknown culture key"),
    (_seed(id="x-2", distributions={"german": [1.0]}), r"row 2, field 'distributions'"),
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
                    'c-1,wvs,family,question,Is family important?,"[""Yes"", ""No""]","{""korean"": ""Yes""}"\n'
                    'c-2,wvs,family,question,Is work important?,"[""Yes"", ""No""]","{""korean"": ""Sure""}"\n')
    with pytest.raises(DataError, match=r"row 3, field 'attitudes'"):
        load_seeds(path)


GOQA = '''question,selections,options,source
"Do you think homosexuality should be accepted?","defaultdict(<class 'list'>, {'Germany': [0.86, 0.11, 0.03], 'Mexico': [0.69, 0.28, 0.03], 'Spain': [0.89, 0.09, 0.02], 'Japan': [0.68, 0.22, 0.10], 'Palestinian Ter.': [0.05, 0.93, 0.02]})","['Should be accepted', 'Should not be accepted', 'DK/Refused']",GAS
'''


def test_globalopinionqa_csv(tmp_path):
    path = tmp_path / "goqa.csv"
    path.write_text(GOQA)
    (seed,) = load_seeds(path)
    assert isinstance(seed, Seed) and seed.id.startswith("goqa-") and seed.source == "pew"
    assert seed.attitudes == {"german": "Should be accepted", "spanish": "Should be accepted",
                              "japan": "Should be accepted"}
    assert seed.distributions["spanish"] == (0.89, 0.09, 0.02)  # Spain, the primary, wins over Mexico
    assert load_seeds(path)[0].id == seed.id  # deterministic
    path.write_text(GOQA.replace("[0.86, 0.11, 0.03]", "[0.86, 0.11]"))
    with pytest.raises(DataError, match=r"row 2, field 'selections'"):
        load_seeds(path)


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
