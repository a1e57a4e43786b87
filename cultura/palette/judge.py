"""The Hofstede judge of the Palette dataset: a prompt asking for six 1-5 ratings, and a robust parser.

Ratings map onto Hofstede's 0-100 scale (``1 -> 0``, ``5 -> 100``) so a response can be compared with
a continent's centroid by the gate's distance.
"""

from __future__ import annotations

import re

from cultura.data.hofstede import DIMENSIONS

NAMES = {
    "PDI": ("power distance", "power-distance"),
    "IDV": ("individualism", "individualist"),
    "MAS": ("masculinity", "masculine"),
    "UAI": ("uncertainty avoidance", "uncertainty"),
    "LTO": ("long-term orientation", "long term orientation", "long-term", "long term"),
    "IVR": ("indulgence", "indulgent"),
}
MEANINGS = {
    "PDI": "acceptance of hierarchy and unequal power",
    "IDV": "individual over group and family",
    "MAS": "competition and achievement over care and modesty",
    "UAI": "need for rules and avoidance of ambiguity",
    "LTO": "thrift, perseverance and long-term planning",
    "IVR": "freedom to enjoy life and have fun",
}
JUDGE_SYSTEM = "You are a careful judge of the cultural values expressed in texts."

_NUMBER = r"(?P<value>[0-9]+(?:\.[0-9]+)?)"
# a label, then up to 30 characters that are not digits or line breaks (": ", " = ", "** (power distance): "), then a number
_LABELLED = {dim: re.compile(r"(?<![A-Za-z])(?:" + "|".join([dim] + [re.escape(n) for n in NAMES[dim]])
                             + r")(?![A-Za-z])[^0-9\n]{0,30}?" + _NUMBER, re.IGNORECASE)
             for dim in DIMENSIONS}
_ANY_NUMBER = re.compile(r"(?<![0-9.])([0-9]+(?:\.[0-9]+)?)(?![0-9.])")


def judge_messages(query: str, response: str) -> list[dict[str, str]]:
    """The judge's chat: the user's query, one response, and the six dimensions to rate from 1 to 5
    in a one-line form (``PDI=x, IDV=x, ...``) that even the small default model fills in."""
    dims = "; ".join(f"{d} = {NAMES[d][0]} ({MEANINGS[d]})" for d in DIMENSIONS)
    form = ", ".join(f"{d}=x" for d in DIMENSIONS)
    user = (f"Question: {query.strip()}\nAnswer to rate: {' '.join(response.split())}\n\n"
            f"How strongly does the answer express each of Hofstede's cultural dimensions? {dims}. "
            f"Give six ratings from 1 (very low) to 5 (very high). Write them as: {form}")
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": user}]


def _valid(value: str) -> float | None:
    number = float(value)
    return number if 1 <= number <= 5 else None


def parse_ratings(text: str) -> dict[str, float | None]:
    """Read six 1-5 ratings from a judge's reply; a dimension not found or out of range is None.

    Accepts ``PDI: 4``, ``**Power distance** = 4/5``, ``IDV - 2.5``, ``uncertainty avoidance (UAI): 3``,
    in any order and case; with no labels at all, a reply of exactly six numbers is read in the order
    PDI, IDV, MAS, UAI, LTO, IVR.
    """
    text = text or ""
    ratings: dict[str, float | None] = {}
    labelled = False
    for dim in DIMENSIONS:
        ratings[dim] = None
        for match in _LABELLED[dim].finditer(text):
            labelled = True
            value = _valid(match.group("value"))
            if value is not None:
                ratings[dim] = value
                break
    if not labelled:
        numbers = _ANY_NUMBER.findall(text)
        if len(numbers) == len(DIMENSIONS):
            ratings = {dim: _valid(n) for dim, n in zip(DIMENSIONS, numbers)}
    return ratings


def ratings_to_scores(ratings: dict[str, float | None]) -> dict[str, float | None]:
    """1-5 ratings onto Hofstede's 0-100 scale (None stays None)."""
    return {dim: (None if r is None else (r - 1) / 4 * 100) for dim, r in ratings.items()}
