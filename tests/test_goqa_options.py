"""GlobalOpinionQA items as the model sees them: substantive options only, prefix-free option numbers."""

import math
from pathlib import Path

import pytest

from cultura.data.goqa import non_substantive, substantive
from cultura.data.seed_files import read_seeds
from cultura.engines.base import OptionScores

FIXTURE = Path(__file__).parent / "data" / "goqa_nonsubstantive.csv"


@pytest.mark.parametrize("option", ["DK/Refused", "Don't know", "No answer", "Missing; Not available",
                                    "(VOL) Don't know", "Don't know/Refused (VOL)", "Refused"])
def test_non_substantive_answers_are_recognised(option):
    assert non_substantive(option)


@pytest.mark.parametrize("option", ["Both (VOL)", "Never justifiable", "2", "No, not necessary", "Not at all important"])
def test_substantive_answers_are_kept(option):
    assert not non_substantive(option)


def test_fewer_than_two_substantive_options_keep_every_option():
    assert substantive(["Yes", "Don't know", "Refused"]) == [0, 1, 2]
    assert substantive(["Yes", "No", "Don't know"]) == [0, 1]


def test_goqa_items_drop_non_substantive_options_from_options_and_references_alike():
    seeds = read_seeds(FIXTURE, ("wvs", "pew")).seeds
    assert len(seeds) == 10
    for seed in seeds:
        assert not any(non_substantive(o) for o in seed.options)
        for country, shares in seed.distributions.items():
            assert len(shares) == len(seed.options) and sum(shares) == pytest.approx(1.0)
    divorce = next(s for s in seeds if s.text.endswith("Divorce"))
    assert divorce.options == ("Never justifiable", "2", "3", "4", "5", "6", "7", "8", "9", "Always justifiable")
    assert "without Don't know / No answer (renormalised)" in divorce.provenance["Germany"]
    both = next(s for s in seeds if "different races" in s.text)
    assert "Both (VOL)" in both.options and len(both.options) == 4
    assert seeds[0].numbered_prompt().endswith("Answer with the number of one option only.\nAnswer:")


def test_option_numbers_are_prefix_free():
    # "1" is the first token of "10" and "11": the reply "10" must not also count as option 1
    p1, p10, p11, p2 = 0.5, 0.1, 0.05, 0.2
    scores = OptionScores.from_logprobs([math.log(p) for p in (p1, p2, p10, p11)], [[1], [2], [1, 0], [1, 1]])
    probs = [math.exp(x) for x in scores.logprobs]
    assert probs == pytest.approx([p1 - p10 - p11, p2, p10, p11])
    assert scores.valid_mass == pytest.approx(p1 + p2)
    # without token ids (single-token options) nothing changes
    plain = OptionScores.from_logprobs([math.log(0.3), math.log(0.4)])
    assert plain.valid_mass == pytest.approx(0.7)
