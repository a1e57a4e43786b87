"""cultura: culturally aware language models on Ray (CulturePark and Cultural Palette).

The public API (:mod:`cultura.api`), loaded on first use so ``import cultura`` stays fast and changes
nothing: ``load_config``, ``create_engine`` and one verb per stage, ``generate``, ``refine``,
``finetune``, ``synthesize_palette``, ``evaluate`` and ``serve``. Each takes a configuration plus
keyword overrides and returns its stage's summary; ``help(cultura.generate)`` says what it takes.
``run_experiment`` and ``load_experiment`` (:mod:`cultura.experiments`) run a whole protocol from one file.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["load_config", "create_engine", "generate", "refine", "finetune", "synthesize_palette", "evaluate",
           "serve", "run_experiment", "load_experiment", "__version__"]
EXPERIMENT_NAMES = {"run_experiment": "cultura.experiments.run", "load_experiment": "cultura.experiments.spec"}


def __getattr__(name: str) -> Any:
    """The API's names, imported from :mod:`cultura.api` (or :mod:`cultura.experiments`) when first asked for."""
    if name in EXPERIMENT_NAMES:
        import importlib

        return getattr(importlib.import_module(EXPERIMENT_NAMES[name]), name)
    if name in __all__:
        from cultura import api

        return getattr(api, name)
    raise AttributeError(f"module 'cultura' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
