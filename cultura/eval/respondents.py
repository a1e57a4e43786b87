"""Who answers a survey item about one person: a respondent known by demographics (WorldValuesBench's
participants: continent, urban or rural, education), not by country.

The description goes into the ``prompted`` method's system prompt (:func:`cultura.personas.respondent_persona`),
so ``prompted`` is the paper's setting *with* demographics and ``base``, asked the question alone, the
setting without them. The target's key is the item's culture as written (the continent): the rows are
summarised per continent.
"""

from __future__ import annotations

from cultura.data.benchmarks.schema import Item
from cultura.errors import DataError
from cultura.eval.methods import Target, respondent_target

SETTLEMENTS = {"urban": "in an urban area", "rural": "in a rural area"}


def describe(item: Item) -> str:
    """The person the item asks about, in words: "a person living in Asia, in an urban area, whose level of
    education is tertiary" (urban or rural and education left out when the item's meta lacks them).
    DataError when the item names no culture (continent)."""
    if not (item.culture or "").strip():
        raise DataError(f"{item.benchmark} item {item.id!r}: a respondent item needs its culture (the continent)")
    parts = [f"a person living in {item.culture.strip()}"]
    settlement = str(item.meta.get("urban_rural") or "").strip()
    if settlement:
        parts.append(SETTLEMENTS.get(settlement.lower(), f"in a place described as {settlement!r}"))
    education = str(item.meta.get("education") or "").strip()
    if education:
        parts.append(f"whose level of education is {education.lower()}")
    return ", ".join(parts)


def item_respondent(item: Item) -> Target:
    """The target an item about one person is asked as: that person, by :func:`describe`, keyed by continent."""
    return respondent_target(item.culture or "", describe(item))
