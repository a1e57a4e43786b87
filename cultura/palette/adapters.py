"""Which LoRA adapter each continent agent uses: the registry's continent entries, then explicit ones."""

from __future__ import annotations

from typing import Any

from cultura.adapters import check_adapter_folder, resolve_adapter
from cultura.data.hofstede import CONTINENTS
from cultura.errors import UnknownNameError
from cultura.registry import known_adapters, load_registry


def canonical_continent(name: str) -> str:
    """``"asia"`` -> ``"Asia"``; an unknown name raises UnknownNameError listing the five."""
    match = next((c for c in CONTINENTS if c.lower() == str(name).strip().lower()), None)
    if match is None:
        raise UnknownNameError("continent", str(name), CONTINENTS)
    return match


def continent_adapters(config: Any) -> dict[str, str]:
    """Continent -> validated adapter folder (absolute path) for the continents that have one.

    Sources, later ones winning: the registry folder ``palette.adapters`` (or ``engine.adapter_registry``),
    its entries of kind ``continent``, newest per continent; then ``palette.continent_adapters``
    (continent -> a registered adapter name or an adapter folder).
    """
    found: dict[str, str] = {}
    registry = config.palette.adapters or config.engine.adapter_registry
    entries = load_registry(registry) if registry else {}
    for entry in sorted(entries.values(), key=lambda e: e.created):
        if entry.kind == "continent":
            found[canonical_continent(entry.target)] = entry.path
    if config.palette.continent_adapters:
        known = known_adapters(config.engine) | {name: e.path for name, e in entries.items()}
        for continent, ref in config.palette.continent_adapters.items():
            found[canonical_continent(continent)] = str(resolve_adapter(ref, known)[1])
    return {c: str(check_adapter_folder(found[c])) for c in CONTINENTS if c in found}
