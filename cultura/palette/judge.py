"""The Hofstede judge of the Palette dataset: six 1-5 ratings of a response, read by option scoring.

For each of Hofstede's six dimensions the judge is asked how strongly the response expresses it, on
a five-point scale listed as numbered options (very low .. very high). The rating is the expected
scale point under the model's option probabilities (:mod:`cultura.classify`), asked with the scale in
both directions so that a preference for the first or last number cancels; no free text is parsed.
Ratings map onto Hofstede's 0-100 scale (``1 -> 0``, ``5 -> 100``) so a response can be compared with a
continent's centroid by the gate's distance.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cultura.classify import LabelScores, Score, classify_many, label_orders
from cultura.data.hofstede import DIMENSIONS
from cultura.engines.base import Failure
from cultura.choices import numbered_question

NAMES = {
    "PDI": "power distance",
    "IDV": "individualism",
    "MAS": "masculinity",
    "UAI": "uncertainty avoidance",
    "LTO": "long-term orientation",
    "IVR": "indulgence",
}
MEANINGS = {
    "PDI": "acceptance of hierarchy and unequal power",
    "IDV": "individual over group and family",
    "MAS": "competition and achievement over care and modesty",
    "UAI": "need for rules and avoidance of ambiguity",
    "LTO": "thrift, perseverance and long-term planning",
    "IVR": "freedom to enjoy life and have fun",
}
SCALE = ("Very low", "Low", "Moderate", "High", "Very high")  # ratings 1..5
ORDERS = label_orders(SCALE, ordinal=True)
JUDGE_SYSTEM = "You are a careful judge of the cultural values expressed in texts."


def judge_question(query: str, response: str, dimension: str, order: Sequence[str] = SCALE) -> str:
    """The question rating ``response`` (to ``query``) on one Hofstede dimension, scale in ``order``."""
    case = (f"Question: {query.strip()}\nAnswer to rate: {' '.join(response.split())}\n\n"
            f"How strongly does the answer express {NAMES[dimension]} ({MEANINGS[dimension]})?")
    return numbered_question(case, order)


def judge_chats(query: str, response: str) -> list[list[list[dict[str, str]]]]:
    """Per dimension (in :data:`DIMENSIONS` order), one user-turn chat per scale order (the judge
    agent adds :data:`JUDGE_SYSTEM`)."""
    return [[[{"role": "user", "content": judge_question(query, response, dim, order)}] for order in ORDERS]
            for dim in DIMENSIONS]


def rate(pairs: Sequence[tuple[str, str]], score: Score) -> list[tuple[dict[str, float | None], float | None]]:
    """Six 1-5 ratings for each ``(query, response)`` and the mean valid mass of its judgements, in
    one ``score`` call; a dimension whose request failed is None."""
    chats = [chat for query, response in pairs for chat in judge_chats(query, response)]
    results = iter(classify_many(chats, SCALE, ORDERS, score))
    out = []
    for _ in pairs:
        judged = [next(results) for _ in DIMENSIONS]
        ratings = {dim: (r.expected() if isinstance(r, LabelScores) else None) for dim, r in zip(DIMENSIONS, judged)}
        masses = [r.valid_mass for r in judged if not isinstance(r, Failure)]
        out.append((ratings, sum(masses) / len(masses) if masses else None))
    return out


def describe(ratings: dict[str, float | None], valid_mass: float | None) -> str:
    """The judgement as one line: ``PDI 3.42, IDV 2.10, ... (valid mass 0.81)``."""
    text = ", ".join(f"{d} {'-' if r is None else f'{r:.2f}'}" for d, r in ratings.items())
    return text + ("" if valid_mass is None else f" (valid mass {valid_mass:.2f})")


def ratings_to_scores(ratings: dict[str, Any]) -> dict[str, float | None]:
    """1-5 ratings onto Hofstede's 0-100 scale (None stays None)."""
    return {dim: (None if r is None else (r - 1) / 4 * 100) for dim, r in ratings.items()}
