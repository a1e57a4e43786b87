"""Errors a user can act on. The CLI prints them without a traceback; HTTP maps them to 4xx."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class CulturaError(Exception):
    """A problem with the user's input or environment, with a message that says how to fix it."""


class ConfigError(CulturaError):
    """An invalid configuration value; the message names the field and the allowed values."""


class DataError(CulturaError):
    """A malformed data file; the message names the file, the row and the field."""


class PlacementError(CulturaError):
    """A run asks for more than the Ray cluster can hold; the message names the shortfall and the fixes."""


class ClusterWarning(UserWarning):
    """Something about the cluster the user should know before the run goes on (it waits for the
    autoscaler, or writes to a path only one node sees)."""


class UnknownNameError(CulturaError, KeyError):
    """A name (country, culture, continent, method, adapter, model) that is not known.

    The message lists close matches, or the known names when there are few.
    """

    def __init__(self, kind: str, name: str, known: Iterable[str]):
        known = sorted(set(known))
        self.kind, self.name, self.known = kind, name, known
        close = difflib.get_close_matches(name, known, n=5, cutoff=0.6)
        if not close:
            lowered = name.lower()
            close = [k for k in known if lowered and (lowered in k.lower() or k.lower() in lowered)][:5]
        if close:
            hint = f"did you mean: {', '.join(close)}?"
        elif not known:
            hint = f"no {kind}s are known here"
        elif len(known) <= 30:
            hint = f"known {kind}s: {', '.join(known)}"
        else:
            hint = f"{len(known)} {kind}s are known; see `cultura data` for the list"
        super().__init__(f"unknown {kind} {name!r}; {hint}")

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return self.args[0]
