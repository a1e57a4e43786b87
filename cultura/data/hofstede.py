"""Hofstede's six-dimension country scores, and country names: lookup, aliases, mentions in text.

The bundled table (``files/hofstede.csv``) holds Hofstede's published scores for 118 countries, each
with a continent (one of the five Cultural Palette continents) and a demonym. The country table adds the
countries surveys cover but Hofstede does not (``files/countries_without_scores.csv``: every score
empty), so their survey answers can be scored; :func:`has_scores` tells the two apart.
"""

from __future__ import annotations

import csv
import functools
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from cultura.data import FILES
from cultura.errors import DataError, UnknownNameError

DIMENSIONS = ("PDI", "IDV", "MAS", "UAI", "LTO", "IVR")
CONTINENTS = ("Africa", "America", "Asia", "Europe", "Oceania")
HEADER = ("country", "continent", "estimated", "demonym", *DIMENSIONS)
BUNDLED = FILES / "hofstede.csv"
WITHOUT_SCORES = FILES / "countries_without_scores.csv"

# Extra names for countries, beyond the canonical name and the demonym (including the abbreviated
# spellings of GlobalOpinionQA and the Pew and WVS files: "S. Korea", "Britain", "Czech Rep.").
ALIASES: dict[str, tuple[str, ...]] = {
    "United States": ("USA", "US", "U.S.", "U.S.A.", "United States of America", "America",
                      "Americans"),
    "United Kingdom": ("UK", "U.K.", "Britain", "Great Britain", "England", "Scotland", "Wales",
                       "Northern Ireland", "English", "Scottish", "Welsh", "Briton", "Britons",
                       "Brits"),
    "South Korea": ("Korea", "Republic of Korea", "ROK", "S. Korea", "Korean", "Koreans"),
    "Netherlands": ("Holland",),
    "Czech Republic": ("Czechia", "Czech Rep.", "Czechs"),
    "Russia": ("Russian Federation",),
    "China": ("PRC", "People's Republic of China", "Mainland China"),
    "Iran": ("Persia", "Persian", "Islamic Republic of Iran"),
    "United Arab Emirates": ("UAE", "U.A.E.", "Emirates"),
    "Philippines": ("Filipina", "Filipinos", "Philippine"),
    "Vietnam": ("Viet Nam",),
    "Syria": ("Syrian Arab Republic",),
    "Cape Verde": ("Cabo Verde",),
    "Bosnia and Herzegovina": ("Bosnia", "Bosnia Herzegovina", "Bosnia-Herzegovina", "Bosnia Herz."),
    "North Macedonia": ("Macedonia",),
    "Trinidad and Tobago": ("Trinidad", "Trinidad & Tobago", "Trinbagonian"),
    "São Tomé and Príncipe": ("Sao Tome", "São Tomé"),
    "Hong Kong": ("Hong Kong SAR", "Hongkongese"),
    "Tanzania": ("United Republic of Tanzania",),
    "Moldova": ("Republic of Moldova",),
    "Slovakia": ("Slovak Republic", "Slovak Rep."),
    "South Africa": ("S. Africa",),
    "Taiwan": ("Taiwan ROC",),
    "Kazakhstan": ("Kazakh",),
    "Argentina": ("Argentinian", "Argentinean"),
    "Nepal": ("Nepalese",),
    "Azerbaijan": ("Azeri",),
    "Luxembourg": ("Luxembourger",),
    "Saudi Arabia": ("Saudi Arabian", "KSA"),
    "Turkey": ("Türkiye", "Turk", "Turks"),
    "Sweden": ("Swede", "Swedes"),
    "Denmark": ("Dane", "Danes"),
    "Finland": ("Finn", "Finns"),
    "Poland": ("Pole", "Poles"),
    "Switzerland": ("Swiss",),
    "Dominican Republic": ("Dominican Rep.",),
    "El Salvador": ("Salvadorean",),
    "Ivory Coast": ("Côte d'Ivoire", "Cote d'Ivoire"),
    "Kyrgyzstan": ("Kyrgyz Republic",),
    "Macau": ("Macau SAR", "Macao"),
    "Myanmar": ("Burma",),
    "Palestinian territories": ("Palest. ter.", "Palestine", "Palestinian Territories", "State of Palestine"),
}

# Aliases that are ordinary English words (or very short) only count in free text with their exact
# capitalisation or in upper case: "us" is a pronoun, "turkey" a bird, "china" porcelain.
_CASE_SENSITIVE = {"turkey", "chile", "china", "jordan", "polish", "pole", "poles", "turk",
                   "dane", "finn", "swede", "guinea", "america"}
# Names never matched in free text: a language name and demonym at once, where the language reading
# dominates ("answer in English").
_NOT_IN_TEXT = {"english"}
# Phrases whose words would otherwise match a country they do not mean.
_BLOCKED = ("North Korea", "North Korean", "North Koreans", "Latin America", "Latin American",
            "Latin Americans", "South America", "South American", "North America", "North American",
            "Central America", "Central American", "the Americas", "Native American", "New Mexico",
            "New England", "New South Wales", "Americas")


@dataclass(frozen=True)
class CountryScores:
    """One country's row: canonical name, continent, whether estimated, demonym, and its scores."""

    name: str
    continent: str
    estimated: bool
    demonym: str
    scores: dict[str, float | None]


def fold(text: str) -> str:
    """Return ``text`` without accents (``São Tomé`` -> ``Sao Tome``), case kept."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _key(name: str) -> str:
    """Normalise a name for lookup: no accents, lower case, single spaces, no leading 'the'."""
    key = " ".join(fold(name).lower().replace("_", " ").split()).strip()
    return key[4:] if key.startswith("the ") else key


def _read_rows(path: Path) -> list[tuple[int, list[str]]]:
    """Read a CSV that may have ``#`` comment lines; return (1-based line number, cells) pairs."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the file ({exc})") from exc
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        rows.append((number, next(csv.reader([line]))))
    return rows


def _parse_row(path: Path, number: int, cells: list[str]) -> CountryScores:
    """Validate one data row of the Hofstede table."""
    where = f"{path}: row {number}"
    if len(cells) != len(HEADER):
        raise DataError(f"{where}: expected {len(HEADER)} fields ({', '.join(HEADER)}), got {len(cells)}")
    row = dict(zip(HEADER, (c.strip() for c in cells)))
    for field in ("country", "demonym"):
        if not row[field]:
            raise DataError(f"{where}, field {field!r}: must not be empty")
    if row["continent"] not in CONTINENTS:
        raise DataError(f"{where}, field 'continent': {row['continent']!r} is not one of {', '.join(CONTINENTS)}")
    if row["estimated"].lower() not in ("true", "false"):
        raise DataError(f"{where}, field 'estimated': {row['estimated']!r} is not true or false")
    scores: dict[str, float | None] = {}
    for dim in DIMENSIONS:
        raw = row[dim]
        if raw == "":
            scores[dim] = None
            continue
        try:
            value = float(raw)
        except ValueError:
            raise DataError(f"{where}, field {dim!r}: {raw!r} is not a number (leave it empty when missing)") from None
        if not 0 <= value <= 150:
            raise DataError(f"{where}, field {dim!r}: {value} is outside 0..150")
        scores[dim] = value
    return CountryScores(row["country"], row["continent"], row["estimated"].lower() == "true",
                         row["demonym"], scores)


def _load(path: Path) -> dict[str, CountryScores]:
    rows = _read_rows(path)
    if not rows:
        raise DataError(f"{path}: row 1: the file has no header and no rows")
    number, header = rows[0]
    if tuple(h.strip() for h in header) != HEADER:
        raise DataError(f"{path}: row {number}, field 'header': expected {','.join(HEADER)}, got {','.join(header)}")
    table: dict[str, CountryScores] = {}
    for number, cells in rows[1:]:
        entry = _parse_row(path, number, cells)
        if entry.name in table:
            raise DataError(f"{path}: row {number}, field 'country': duplicate country {entry.name!r}")
        table[entry.name] = entry
    if not table:
        raise DataError(f"{path}: row {number}: the file has a header but no rows")
    return table


@functools.lru_cache(maxsize=1)
def _bundled() -> dict[str, CountryScores]:
    """Every known country: Hofstede's table, then the countries without scores."""
    table = _load(BUNDLED)
    for name, entry in _load(WITHOUT_SCORES).items():
        if name in table or any(v is not None for v in entry.scores.values()):
            raise DataError(f"{WITHOUT_SCORES}: {name!r} is in hofstede.csv or has a score; it belongs in one file")
        table[name] = entry
    return table


def load_table(path: str | Path | None = None) -> dict[str, CountryScores]:
    """Load a Hofstede table (the bundled one by default, cached) as {country name: CountryScores}.

    Raises DataError naming the file, row and field when the file is malformed.
    """
    if path is None or Path(path).resolve() == BUNDLED:
        return dict(_bundled())  # with the countries without scores
    return _load(Path(path))


@functools.lru_cache(maxsize=1)
def _index() -> dict[str, str]:
    """Normalised name/alias/demonym -> canonical country name, for the bundled table."""
    index: dict[str, str] = {}
    for name in _bundled():
        index.setdefault(_key(name), name)
    for name, entry in _bundled().items():
        for alias in (entry.demonym, *ALIASES.get(name, ())):
            index.setdefault(_key(alias), name)
    return index


def resolve_country(name: str) -> str:
    """Return the canonical country name for a name, alias or demonym (case- and accent-insensitive).

    ``"usa"`` -> ``"United States"``, ``"Brazilian"`` -> ``"Brazil"``. Unknown names raise
    UnknownNameError listing close matches.
    """
    found = _index().get(_key(str(name)))
    if found is None:
        raise UnknownNameError("country", str(name), _bundled().keys())
    return found


def country_scores(name: str) -> dict[str, float | None]:
    """Return a country's six dimension scores (None where Hofstede publishes none)."""
    return dict(_bundled()[resolve_country(name)].scores)


def has_scores(name: str) -> bool:
    """True when Hofstede publishes at least one score for the country (name, alias or demonym)."""
    return any(v is not None for v in _bundled()[resolve_country(name)].scores.values())


def continent_of(name: str) -> str:
    """Return the continent (one of CONTINENTS) of a country given by name, alias or demonym."""
    return _bundled()[resolve_country(name)].continent


def _continent(name: str) -> str:
    for continent in CONTINENTS:
        if continent.lower() == str(name).strip().lower():
            return continent
    raise UnknownNameError("continent", str(name), CONTINENTS)


def countries(continent: str | None = None) -> list[str]:
    """Return the canonical country names, sorted, optionally only those of one continent."""
    if continent is None:
        return sorted(_bundled())
    wanted = _continent(continent)
    return sorted(n for n, e in _bundled().items() if e.continent == wanted)


def continent_centroid(continent: str | None, exclude: str | None = None) -> dict[str, float]:
    """Return the mean score per dimension over a continent's countries (every country's with ``None``)
    that have that dimension, leaving out the country ``exclude`` (when a country is being scored
    against its own scores)."""
    left_out = resolve_country(exclude) if exclude else None
    entries = [_bundled()[n] for n in countries(continent) if n != left_out]
    centroid = {}
    for dim in DIMENSIONS:
        values = [e.scores[dim] for e in entries if e.scores[dim] is not None]
        if values:
            centroid[dim] = sum(values) / len(values)
    return centroid


@functools.lru_cache(maxsize=1)
def _text_patterns() -> tuple[re.Pattern, re.Pattern, re.Pattern, dict[str, str]]:
    """Regexes for country mentions: (case-insensitive, case-sensitive, blocked, alias -> country)."""
    lookup: dict[str, str] = {}
    loose: set[str] = set()
    strict: set[str] = set()
    for name, entry in _bundled().items():
        demonym = fold(entry.demonym)
        forms = [fold(name), demonym, *map(fold, ALIASES.get(name, ()))]
        if not demonym.endswith(("s", "sh", "ch", "ese")):
            forms.append(demonym + "s")
        for form in forms:
            lowered = form.lower()
            if lowered in _NOT_IN_TEXT:
                continue
            lookup.setdefault(lowered, name)
            bare = lowered.replace(".", "")
            if len(bare) <= 3 or lowered in _CASE_SENSITIVE:
                strict.update({form, form.upper()})
            else:
                loose.add(form)

    def alternation(forms: set[str]) -> str:
        ordered = sorted(forms, key=lambda f: (-len(f), f))
        return "|".join(re.escape(f) for f in ordered)

    bounded = r"(?<![\w.])(?:{})(?![\w])"
    return (re.compile(bounded.format(alternation(loose)), re.IGNORECASE),
            re.compile(bounded.format(alternation(strict))),
            re.compile(bounded.format(alternation(set(_BLOCKED))), re.IGNORECASE),
            lookup)


def find_countries_in_text(text: str) -> list[str]:
    """Return the canonical countries a free text mentions, by name, alias or demonym.

    Matching respects word boundaries, ignores case for ordinary names, and requires the exact (or
    upper-case) spelling for short or common-word aliases ("US", "UK", "Turkey", "China"). Results
    are in order of first appearance, without duplicates. "dinner in Japan" -> ["Japan"].
    """
    loose, strict, blocked, lookup = _text_patterns()
    folded = fold(text)
    blocked_spans = [m.span() for m in blocked.finditer(folded)]
    hits = []
    for pattern in (loose, strict):
        for match in pattern.finditer(folded):
            start, end = match.span()
            if any(start < b_end and b_start < end for b_start, b_end in blocked_spans):
                continue
            hits.append((start, -(end - start), lookup[match.group(0).lower()]))
    result: list[str] = []
    taken: list[tuple[int, int]] = []
    for start, neg_len, country in sorted(hits):
        end = start - neg_len
        if any(start < t_end and t_start < end for t_start, t_end in taken):
            continue
        taken.append((start, end))
        if country not in result:
            result.append(country)
    return result
