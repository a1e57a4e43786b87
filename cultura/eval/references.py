"""What an opinion question is scored against: a country's own survey answers, never a neighbour's.

A country is scored only against its own data on a seed (:meth:`cultura.data.seeds.Seed.reference`).
With ``proxy="culture"`` a country without its own data may borrow its CulturePark culture's data
(the culture's primary country: Mexico -> Spain), and the row says so. Each scored pair also carries
the other countries' distributions on the question, from which the baselines are computed
(leave-one-out: neither the scored country nor the country whose data is the reference).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cultura.data.cultures import culture_of_country
from cultura.data.seeds import APPROXIMATE
from cultura.errors import UnknownNameError

PROXIES = ("culture",)


@dataclass(frozen=True)
class ScoredItem:
    """One (seed, country) to score: the reference distribution, where it comes from, the other
    countries' distributions (for the baselines), and whether the reference is a proxy."""

    seed: Any
    country: str
    reference: tuple[float, ...]
    source: str
    one_hot: bool
    approximate: bool
    proxy: bool
    others: tuple[tuple[float, ...], ...]


def check_proxy(proxy: str | None) -> str | None:
    """The proxy setting, validated: None (the default: own data only) or ``culture``."""
    if proxy is not None and proxy not in PROXIES:
        raise UnknownNameError("proxy", proxy, PROXIES)
    return proxy


def scored_item(seed: Any, country: str, proxy: str | None = None) -> ScoredItem | None:
    """The item for a canonical country on a seed, or None when it has no data (and no allowed proxy)."""
    found = seed.reference(country)
    label = ""
    if found is None and proxy == "culture":
        culture = culture_of_country(country)
        if culture.primary_country != country:
            found = seed.reference(culture.primary_country)
            label = f"proxy: culture {culture.key}, data of "
    if found is None:
        return None
    kind = "majority answer (one-hot)" if found.one_hot else "distribution"
    source = f"{label}{found.country}: {kind}; {found.provenance}"
    others = tuple(r.probs for r in (seed.reference(c) for c in seed.countries if c not in (country, found.country))
                   if r is not None)
    return ScoredItem(seed, country, found.probs, source, found.one_hot, found.provenance == APPROXIMATE,
                      bool(label), others)


def scored_items(seeds: Sequence[Any], countries: Sequence[str],
                 proxy: str | None = None) -> tuple[list[ScoredItem], list[str]]:
    """Every (seed, country) item with data, in country then seed order; and the countries with none."""
    items: list[ScoredItem] = []
    no_data: list[str] = []
    for country in countries:
        mine = [i for i in (scored_item(s, country, proxy) for s in seeds) if i is not None]
        items += mine
        if not mine:
            no_data.append(country)
    return items, no_data
