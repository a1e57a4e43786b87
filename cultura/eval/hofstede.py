"""Hofstede alignment: VSM 2013 dimension indices from item means, and distance to a country.

The six VSM 2013 indices, from the mean answer m01..m24 of each item (on its 1-5 scale), with a
constant C that shifts every index (Hofstede's manual chooses it per dimension to anchor a sample;
here one ``c`` serves all six, 50 by default):

    PDI = 35(m07 - m02) + 25(m20 - m23) + C
    IDV = 35(m04 - m01) + 35(m09 - m06) + C
    MAS = 35(m05 - m03) + 35(m08 - m10) + C
    UAI = 40(m18 - m15) + 25(m21 - m24) + C
    LTO = 40(m13 - m14) + 25(m19 - m22) + C
    IVR = 35(m12 - m11) + 40(m17 - m16) + C
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from cultura.data.hofstede import DIMENSIONS, country_scores
from cultura.errors import CulturaError

# dimension -> ((weight, plus item, minus item), (weight, plus item, minus item))
FORMULAS: dict[str, tuple[tuple[float, int, int], tuple[float, int, int]]] = {
    "PDI": ((35, 7, 2), (25, 20, 23)),
    "IDV": ((35, 4, 1), (35, 9, 6)),
    "MAS": ((35, 5, 3), (35, 8, 10)),
    "UAI": ((40, 18, 15), (25, 21, 24)),
    "LTO": ((40, 13, 14), (25, 19, 22)),
    "IVR": ((35, 12, 11), (40, 17, 16)),
}
DIMENSION_ITEMS: dict[str, tuple[int, ...]] = {
    dim: tuple(sorted({item for _, plus, minus in terms for item in (plus, minus)}))
    for dim, terms in FORMULAS.items()
}


def _checked_means(means: Mapping[int, float]) -> dict[int, float]:
    checked = {}
    for item, value in means.items():
        if isinstance(item, bool) or not isinstance(item, int) or not 1 <= item <= 24:
            raise CulturaError(f"VSM item {item!r} does not exist; items are numbered 1 to 24")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise CulturaError(f"VSM item {item}: mean {value!r} is not a number") from None
        if math.isnan(number) or not 1.0 <= number <= 5.0:
            raise CulturaError(f"VSM item {item}: mean {value!r} is outside the answer scale 1..5")
        checked[item] = number
    return checked


def vsm_indices(means: Mapping[int, float], c: float = 50.0) -> dict[str, float]:
    """Return the six VSM 2013 indices {PDI, IDV, MAS, UAI, LTO, IVR} from item means.

    ``means`` maps item number (1-24) to the mean answer on the 1-5 scale; ``c`` is added to every
    index. The formulas are in this module's docstring (e.g. PDI = 35(m07 - m02) + 25(m20 - m23) + C).
    Raises CulturaError naming the item when an item number is outside 1..24, a mean is outside
    1..5, or an item a formula needs is missing.
    """
    checked = _checked_means(means)
    indices = {}
    for dim, terms in FORMULAS.items():
        total = float(c)
        for weight, plus, minus in terms:
            for item in (plus, minus):
                if item not in checked:
                    raise CulturaError(f"VSM item {item} is missing; {dim} needs items "
                                       f"{', '.join(map(str, DIMENSION_ITEMS[dim]))}")
            total += weight * (checked[plus] - checked[minus])
        indices[dim] = total
    return indices


def hofstede_distance(indices: Mapping[str, float], country: str) -> float:
    """Return the Euclidean distance between VSM indices and a country's published Hofstede scores.

    Only the dimensions the country has a score for count (Hofstede publishes no LTO or IVR for some
    countries). Raises CulturaError when ``indices`` names an unknown dimension or lacks one the
    country has; UnknownNameError for an unknown country.
    """
    unknown = [d for d in indices if d not in DIMENSIONS]
    if unknown:
        raise CulturaError(f"unknown Hofstede dimension {unknown[0]!r}; known: {', '.join(DIMENSIONS)}")
    reference = {d: v for d, v in country_scores(country).items() if v is not None}
    missing = [d for d in reference if d not in indices]
    if missing:
        raise CulturaError(f"indices lack dimension {missing[0]}, which {country} has a score for")
    return math.sqrt(sum((float(indices[d]) - v) ** 2 for d, v in reference.items()))
