"""VSM 2013 items and the Hofstede index formulas."""

from __future__ import annotations

import math

import pytest

from cultura.data.vsm import load_vsm_items, vsm_prompt
from cultura.errors import CulturaError
from cultura.eval.hofstede import DIMENSION_ITEMS, hofstede_distance, vsm_indices


def neutral(**changes: float) -> dict[int, float]:
    """All 24 means at 3, with some items changed: neutral(m07=4.0)."""
    means = {i: 3.0 for i in range(1, 25)}
    means.update({int(k[1:]): v for k, v in changes.items()})
    return means


def test_items():
    items = load_vsm_items()
    assert [i.number for i in items] == list(range(1, 25))
    assert all(len(i.options) == 5 for i in items)
    assert "ideal job" in items[0].text and items[19].options[0] == "never"
    prompt = vsm_prompt(items[14])
    assert "1. always" in prompt and "5. never" in prompt and "single number from 1 to 5" in prompt


def test_all_threes_give_c():
    assert vsm_indices(neutral()) == {d: 50.0 for d in ("PDI", "IDV", "MAS", "UAI", "LTO", "IVR")}
    assert set(vsm_indices(neutral(), c=0).values()) == {0.0}


def test_hand_computed():
    means = neutral(m07=4.0, m02=2.0, m20=3.5, m23=3.0,   # PDI = 35*2 + 25*0.5 + 10 = 92.5
                    m04=1.5, m01=2.5, m09=3.0, m06=2.0,   # IDV = 35*-1 + 35*1 + 10 = 10
                    m05=2.2, m03=2.0, m08=2.0, m10=3.0,   # MAS = 35*0.2 + 35*-1 + 10 = -18
                    m18=2.0, m15=3.0, m21=2.0, m24=4.0,   # UAI = 40*-1 + 25*-2 + 10 = -80
                    m13=2.5, m14=2.0, m19=1.0, m22=2.0,   # LTO = 40*0.5 + 25*-1 + 10 = 5
                    m12=3.0, m11=2.0, m17=4.0, m16=2.0)   # IVR = 35*1 + 40*2 + 10 = 125
    result = vsm_indices(means, c=10)
    expected = {"PDI": 92.5, "IDV": 10.0, "MAS": -18.0, "UAI": -80.0, "LTO": 5.0, "IVR": 125.0}
    assert result == pytest.approx(expected)


def test_dimension_items():
    assert DIMENSION_ITEMS["MAS"] == (3, 5, 8, 10)
    assert sorted(i for items in DIMENSION_ITEMS.values() for i in items) == list(range(1, 25))


@pytest.mark.parametrize("means,pattern", [
    ({**neutral(), 25: 3.0}, "item 25"),
    ({**neutral(), 0: 3.0}, "item 0"),
    (neutral(m07=5.5), "item 7.*1..5"),
    (neutral(m12=0.0), "item 12"),
    (neutral(m03=math.nan), "item 3"),
    ({i: 3.0 for i in range(1, 24)}, "item 24 is missing"),
])
def test_bad_means(means, pattern):
    with pytest.raises(CulturaError, match=pattern):
        vsm_indices(means)


def test_hofstede_distance():
    germany = {"PDI": 35, "IDV": 67, "MAS": 66, "UAI": 65, "LTO": 83, "IVR": 40}
    assert hofstede_distance(germany, "Germany") == 0
    assert hofstede_distance({**germany, "PDI": 38, "IDV": 71}, "germany") == pytest.approx(5.0)
    # Bhutan has no LTO or IVR: those dimensions do not count
    assert hofstede_distance({"PDI": 94, "IDV": 52, "MAS": 32, "UAI": 28, "LTO": 0, "IVR": 0}, "Bhutan") == 0
    with pytest.raises(CulturaError, match="lack dimension"):
        hofstede_distance({"PDI": 35}, "Germany")
    with pytest.raises(CulturaError, match="unknown Hofstede dimension"):
        hofstede_distance({**germany, "XYZ": 1}, "Germany")
