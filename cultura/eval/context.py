"""Building a :class:`~cultura.eval.methods.MethodContext` from the configuration.

Adapters come from an adapter registry folder (``--adapters``, else ``eval.adapters``, else
``palette.adapters`` / ``engine.adapter_registry``): its ``culture`` entries serve the ``adapter``
method (by culture key, newest first), its ``continent`` entries the continent agents; explicit
``palette.continent_adapters`` win for continents. The gate is :class:`cultura.palette.gate.CulturalGate`
with the ``palette`` section's alpha, beta, tau, top_k, mention bonus and home weight.
"""

from __future__ import annotations

from typing import Any

from cultura.adapters import resolve_adapter
from cultura.eval.methods import MethodContext
from cultura.palette.adapters import canonical_continent
from cultura.registry import known_adapters, load_registry


def build_context(config: Any, adapters_dir: str | None = None) -> MethodContext:
    """The adapters and gate the evaluation methods use, from the configuration."""
    registry = adapters_dir or config.eval.adapters or config.palette.adapters or config.engine.adapter_registry
    entries = load_registry(registry) if registry else {}
    adapters = {name: e.path for name, e in entries.items()}
    cultures: dict[str, str] = {}
    continents: dict[str, str] = {}
    for name, entry in sorted(entries.items(), key=lambda item: item[1].created):
        if entry.kind == "culture":
            cultures[entry.target] = name
        elif entry.kind == "continent":
            continents[canonical_continent(entry.target)] = name
    if config.palette.continent_adapters:
        known = known_adapters(config.engine) | adapters
        for continent, ref in config.palette.continent_adapters.items():
            name, folder = resolve_adapter(ref, known)
            name = name if name in known else f"continent-{continent.lower()}"
            adapters[name] = str(folder)
            continents[canonical_continent(continent)] = name
    return MethodContext(adapters=adapters, culture_adapters=cultures, continent_adapters=continents,
                         adapter_source=str(registry) if registry else None, gate_factory=gate_factory(config),
                         adapter_seeds={name: e.seed_ids for name, e in entries.items()})


def gate_factory(config: Any):
    """A callable ``make()`` building the Cultural MoE gate from ``config.palette``."""
    def make() -> Any:
        from cultura.palette.gate import CulturalGate

        return CulturalGate.from_config(config.palette)

    return make
