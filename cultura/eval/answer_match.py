"""Short answers matched against a benchmark's accepted answers (BLEnD's soft exact match).

A free-text response is correct when one of the accepted answers appears in it, both normalised the
same way: Unicode NFKC, case folded, punctuation and symbols made spaces. English text also drops
the articles and a plural ``-s`` / ``-es`` (a small stand-in for the lemmatiser BLEnD's own scorer
uses), so "Dumplings." matches "dumpling". Words match whole (a contiguous run of the response's
words); in languages written without spaces between words (Chinese, Japanese, Thai) the answer is
looked for as a run of characters instead.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

# ISO 639-1 codes of languages written without spaces between words
UNSPACED = frozenset({"zh", "ja", "th", "lo", "km", "my"})
ARTICLES = frozenset({"a", "an", "the"})


def _plain(text: str) -> str:
    """NFKC, case folded, every character that is not a letter, mark or digit made a space."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(ch if unicodedata.category(ch)[0] in "LMN" else " " for ch in folded)


def _singular(word: str) -> str:
    if len(word) > 4 and word.endswith(("ches", "shes", "sses", "xes", "zes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def normalise(text: str, language: str = "en") -> list[str]:
    """The words of ``text`` as matching compares them (see the module docstring)."""
    words = _plain(text).split()
    if language == "en":
        words = [_singular(w) for w in words if w not in ARTICLES]
    return words


def _contains(response: list[str], answer: list[str]) -> bool:
    width = len(answer)
    return any(response[i:i + width] == answer for i in range(len(response) - width + 1))


def matches(response: str, accepted: Iterable[str], language: str = "en") -> bool:
    """Whether any accepted answer appears in ``response`` once both are normalised; an accepted answer
    that normalises to nothing (punctuation only, or an article) never matches."""
    if language in UNSPACED:
        said = "".join(normalise(response, language))
        return any(want and want in said for want in ("".join(normalise(a, language)) for a in accepted))
    said = normalise(response, language)
    return any(want and _contains(said, want) for want in (normalise(a, language) for a in accepted))
