"""Errors a user can act on. The CLI prints them without a traceback; HTTP maps them to 4xx."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

ECHO_CHARS = 100  # the most of a name from outside (a client's model, country, path) a message repeats


class CulturaError(Exception):
    """A problem with the user's input or environment, with a message that says how to fix it."""


class ConfigError(CulturaError):
    """An invalid configuration value; the message names the field and the allowed values."""


class DataError(CulturaError):
    """A malformed data file; the message names the file, the row and the field."""

    @classmethod
    def at(cls, path: Any, row: int, field_name: str, message: str) -> DataError:
        """The error for one field of one row of a file: ``PATH: row N, field 'NAME': message``."""
        return cls(f"{path}: row {row}, field {field_name!r}: {message}")


class PlacementError(CulturaError):
    """A run asks for more than the Ray cluster can hold; the message names the shortfall and the fixes."""


class ClusterWarning(UserWarning):
    """Something about the cluster the user should know before the run goes on (it waits for the
    autoscaler, or writes to a path only one node sees)."""


class UnknownNameError(CulturaError, KeyError):
    """A name (country, culture, continent, method, adapter, model) that is not known.

    The message lists close matches, or the known names when there are few; it repeats at most
    :data:`ECHO_CHARS` characters of the name (a client may send a name of any length).
    """

    def __init__(self, kind: str, name: str, known: Iterable[str]):
        known = sorted(set(known))
        self.kind, self.name, self.known = kind, name, known
        close: list[str] = []
        if len(name) <= ECHO_CHARS:  # no known name is longer; spare difflib a huge string
            close = difflib.get_close_matches(name, known, n=5, cutoff=0.6)
            if not close:
                lowered = name.lower()
                close = [k for k in known if lowered and (lowered in k.lower() or k.lower() in lowered)][:5]
        kinds = plural(kind)
        if close:
            hint = f"did you mean: {', '.join(close)}?"
        elif not known:
            hint = f"no {kinds} are known here"
        elif len(known) <= 30:
            hint = f"known {kinds}: {', '.join(known)}"
        else:
            hint = f"{len(known)} {kinds} are known; see `cultura data` for the list"
        super().__init__(f"unknown {kind} {clip(name)!r}; {hint}")

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return self.args[0]


def plural(noun: str) -> str:
    """The plural of an English noun as names of kinds use them (``country`` -> ``countries``)."""
    if noun.endswith("y") and noun[-2:-1] not in tuple("aeiou"):
        return noun[:-1] + "ies"
    return noun + ("es" if noun.endswith(("s", "x", "ch", "sh")) else "s")


def clip(text: Any, limit: int = ECHO_CHARS) -> str:
    """``text`` as a string of at most ``limit`` characters (a cut one says how long it was), for
    repeating what a client sent in an error message."""
    text = str(text)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def last_line(error: BaseException, limit: int = 300) -> str:
    """The last non-empty line of an error's message, at most ``limit`` characters (a Ray-wrapped
    error's first lines are its traceback; its ``cause`` is read when it has one), or the error's
    type name when it has no message."""
    cause = getattr(error, "cause", None)
    text = str(cause if isinstance(cause, BaseException) else error)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return (lines[-1] if lines else type(error).__name__)[:limit]
