"""cultura: culturally aware language models on Ray (CulturePark and Cultural Palette).

The public API (:mod:`cultura.api`), loaded on first use so ``import cultura`` stays fast and changes
nothing: ``load_config``, ``create_engine`` and one verb per stage, ``generate``, ``refine``,
``finetune``, ``synthesize_palette``, ``evaluate`` and ``serve``. Each takes a configuration plus
keyword overrides and returns its stage's summary; ``help(cultura.generate)`` says what it takes.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["load_config", "create_engine", "generate", "refine", "finetune", "synthesize_palette", "evaluate",
           "serve", "__version__"]


def __getattr__(name: str) -> Any:
    """The API's names, imported from :mod:`cultura.api` when first asked for."""
    if name in __all__:
        from cultura import api

        return getattr(api, name)
    raise AttributeError(f"module 'cultura' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
