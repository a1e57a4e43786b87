"""Named country sets for the opinion evaluation (``files/country_sets.yaml``), and country lists.

A set maps continents to countries; loading checks that every country is in the Hofstede table under
that continent with all six dimensions published (not estimated), so a set is a fair basis for the
Cultural MoE gate's proximity term.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

from cultura.data import FILES, read_yaml_mapping
from cultura.data.hofstede import CONTINENTS, DIMENSIONS, load_table, resolve_country
from cultura.errors import CulturaError, DataError, UnknownNameError

COUNTRY_SETS = FILES / "country_sets.yaml"


@functools.lru_cache(maxsize=1)
def country_sets() -> dict[str, tuple[str, ...]]:
    """Set name -> countries (continent order of the file), validated against the Hofstede table."""
    path: Path = COUNTRY_SETS
    raw = read_yaml_mapping(path, "a mapping set name -> continent -> countries")
    table = load_table()
    sets = {}
    for name, by_continent in raw.items():
        if not isinstance(by_continent, dict):
            raise DataError(f"{path}: {name}: expected a mapping continent -> countries")
        members: list[str] = []
        for continent, countries in by_continent.items():
            if continent not in CONTINENTS:
                raise DataError(f"{path}: {name}: {continent!r} is not one of {', '.join(CONTINENTS)}")
            for country in countries or []:
                entry = table.get(country)
                where = f"{path}: {name}.{continent}: {country!r}"
                if entry is None:
                    raise DataError(f"{where} is not a canonical country of hofstede.csv")
                if entry.continent != continent:
                    raise DataError(f"{where} is in {entry.continent} in hofstede.csv")
                if entry.estimated or any(entry.scores[d] is None for d in DIMENSIONS):
                    raise DataError(f"{where} lacks published (non-estimated) scores on all six dimensions")
                members.append(country)
        sets[str(name)] = tuple(members)
    return sets


def resolve_countries(spec: str | Sequence[str]) -> list[str]:
    """A set name (``palette18``) or comma-separated countries -> canonical names, no duplicates.

    Unknown countries raise UnknownNameError with close matches.
    """
    names = [n.strip() for n in spec.split(",")] if isinstance(spec, str) else list(spec)
    names = [n for n in names if n]
    if not names:
        raise CulturaError(f"no country given; use a set ({', '.join(country_sets())}) or country names")
    resolved: list[str] = []
    for name in names:
        if name in country_sets():
            members = list(country_sets()[name])
        else:
            try:
                members = [resolve_country(name)]
            except UnknownNameError as exc:
                raise UnknownNameError("country", name, exc.known + list(country_sets())) from None
        resolved += [m for m in members if m not in resolved]
    return resolved
