"""The models the Serve app answers to, and the adapters behind them.

- ``palette``: the Cultural Palette (gate, top-k continent drafts, Meta Agent blend).
- ``continent/<Continent>``: one continent agent's answer (its persona and adapter, if any).
- ``culture/<key>``: a CulturePark culture agent (persona plus the culture's adapter when one is
  registered); any culture key or Hofstede country is accepted, ``/v1/models`` lists the eight
  CulturePark cultures and those with a registered adapter.
- ``base``: the plain model, the client's messages as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cultura.data.cultures import CULTUREPARK_CULTURES, get_culture
from cultura.data.hofstede import CONTINENTS
from cultura.errors import UnknownNameError
from cultura.palette.adapters import canonical_continent
from cultura.registry import load_registry

PALETTE, BASE = "palette", "base"


@dataclass(frozen=True)
class ModelRef:
    """A parsed model name: ``kind`` is palette | continent | culture | base; ``target`` the continent
    or culture key (None for palette and base); ``id`` the canonical model name."""

    kind: str
    target: str | None
    id: str


def parse_model(name: str) -> ModelRef:
    """Parse a model name; an unknown one raises :class:`UnknownNameError` (HTTP 404)."""
    raw = str(name).strip()
    lowered = raw.lower()
    if lowered in (PALETTE, BASE):
        return ModelRef(lowered, None, lowered)
    kind, _, target = raw.partition("/")
    if kind.lower() == "continent" and target:
        continent = canonical_continent(target)
        return ModelRef("continent", continent, f"continent/{continent}")
    if kind.lower() == "culture" and target and "/" not in target:
        culture = get_culture(target).key
        return ModelRef("culture", culture, f"culture/{culture}")
    raise UnknownNameError("model", raw, ["palette", "base", "continent/<continent>", "culture/<culture>"])


def culture_adapters(config: Any) -> dict[str, str]:
    """Culture key -> adapter folder: the newest ``culture`` entry per culture in the adapter
    registry (``palette.adapters`` or ``engine.adapter_registry``)."""
    registry = config.palette.adapters or config.engine.adapter_registry
    entries = load_registry(registry) if registry else {}
    found: dict[str, str] = {}
    for entry in sorted(entries.values(), key=lambda e: e.created):
        if entry.kind == "culture":
            found[get_culture(entry.target).key] = entry.path
    return found


def listed_models(culture_keys: list[str]) -> list[str]:
    """The model names ``/v1/models`` lists: palette, the five continents, the cultures, base."""
    cultures = sorted(set(CULTUREPARK_CULTURES) | set(culture_keys))
    return [PALETTE, *(f"continent/{c}" for c in CONTINENTS), *(f"culture/{k}" for k in cultures), BASE]
