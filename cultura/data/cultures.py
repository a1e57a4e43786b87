"""Cultures a delegate agent can speak for: the eight CulturePark cultures, and every Hofstede country.

The eight cultures come from ``files/cultures.yaml``; any country in the Hofstede table is a culture
of its own as well (key ``south_korea``, display ``South Korean``), so delegates are not limited to
the eight.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cultura.data import FILES, read_yaml_mapping
from cultura.data.hofstede import _key, fold, load_table, resolve_country
from cultura.errors import DataError, UnknownNameError

BUNDLED = FILES / "cultures.yaml"
CULTUREPARK_CULTURES = ("arabic", "bengali", "chinese", "german", "korean", "portuguese", "spanish",
                        "turkish")


@dataclass(frozen=True)
class Culture:
    """A culture: its key, display name, countries (first = primary), language, persona names."""

    key: str
    display: str
    countries: tuple[str, ...]
    primary_country: str
    language: str
    names: tuple[str, ...]
    continent: str


def country_key(country: str) -> str:
    """Return the culture key of a canonical country name: ``"South Korea"`` -> ``"south_korea"``."""
    return "_".join(fold(country).lower().split())


def _names(path: Path, where: str, value: object, minimum: int) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) < minimum or not all(isinstance(v, str) and v.strip() for v in value):
        raise DataError(f"{path}: {where}: expected a list of at least {minimum} non-empty names")
    return tuple(v.strip() for v in value)


def _country(path: Path, where: str, name: object) -> str:
    try:
        canonical = resolve_country(str(name))
    except UnknownNameError as exc:
        raise DataError(f"{path}: {where}: {exc}") from None
    if canonical != name:
        raise DataError(f"{path}: {where}: write the canonical name {canonical!r}, not {name!r}")
    return canonical


@functools.lru_cache(maxsize=1)
def _load() -> tuple[dict[str, Culture], dict[str, tuple[str, ...]], dict[str, str]]:
    """Load and validate cultures.yaml: (CulturePark cultures, country -> names, country -> language)."""
    path = BUNDLED
    raw = read_yaml_mapping(path, "a mapping with 'cultures' and 'country_names'")
    table = load_table()
    cultures: dict[str, Culture] = {}
    for key in CULTUREPARK_CULTURES:
        entry = (raw.get("cultures") or {}).get(key)
        where = f"cultures.{key}"
        if not isinstance(entry, dict):
            raise DataError(f"{path}: {where}: missing")
        for field in ("display", "language"):
            if not isinstance(entry.get(field), str) or not entry[field].strip():
                raise DataError(f"{path}: {where}, field {field!r}: must be a non-empty string")
        members = entry.get("countries")
        if not isinstance(members, list) or not members:
            raise DataError(f"{path}: {where}, field 'countries': expected a non-empty list")
        members = tuple(_country(path, f"{where}, field 'countries'", c) for c in members)
        cultures[key] = Culture(key, entry["display"].strip(), members, members[0],
                                entry["language"].strip(), _names(path, f"{where}, field 'names'", entry.get("names"), 4),
                                table[members[0]].continent)
    names: dict[str, tuple[str, ...]] = {}
    for country, value in (raw.get("country_names") or {}).items():
        names[_country(path, f"country_names.{country}", country)] = _names(path, f"country_names.{country}", value, 2)
    languages = {_country(path, f"country_languages.{c}", c): str(lang) for c, lang in (raw.get("country_languages") or {}).items()}
    missing = sorted(set(table) - set(names))
    if missing:
        raise DataError(f"{path}: country_names: no persona names for {', '.join(missing)}")
    return cultures, names, languages


def _country_culture(country: str) -> Culture:
    _, names, languages = _load()
    entry = load_table()[country]
    return Culture(country_key(country), entry.demonym, (country,), country,
                   languages.get(country, "English"), names[country], entry.continent)


def get_culture(name: str) -> Culture:
    """Return a culture by CulturePark key or display name ("german", "Arabic"), or by any country.

    A country (name, alias, demonym or key such as ``south_korea``) gives that country's own culture.
    The eight CulturePark keys take precedence, so "Spanish" is the culture, not the country Spain.
    Unknown names raise UnknownNameError listing close matches.
    """
    cultures, _, _ = _load()
    wanted = _key(str(name))
    for culture in cultures.values():
        if wanted in (culture.key, culture.display.lower()):
            return culture
    try:
        return _country_culture(resolve_country(wanted))
    except UnknownNameError:
        raise UnknownNameError("culture", str(name), known_cultures()) from None


def known_cultures() -> list[str]:
    """Return every culture key: the eight CulturePark keys, then one key per country (sorted)."""
    return list(CULTUREPARK_CULTURES) + sorted(country_key(c) for c in load_table())


def culture_of_country(country: str) -> Culture:
    """Return the CulturePark culture whose countries include ``country``, else the country's own."""
    canonical = resolve_country(country)
    for culture in _load()[0].values():
        if canonical in culture.countries:
            return culture
    return _country_culture(canonical)


def culture_keys(names: Iterable[str]) -> list[str]:
    """The canonical culture keys of ``names`` (keys, display names or countries), without repeats.

    An unknown name raises UnknownNameError with the closest known names; no names is an error too.
    """
    keys = [get_culture(str(name).strip()).key for name in names]
    if not keys:
        raise DataError("no cultures given")
    return list(dict.fromkeys(keys))
