"""Bootstrap intervals: checked against a percentile bootstrap computed by hand with numpy."""

import math

import numpy as np
import pytest

from cultura.intervals import MIN_ITEMS, Interval, bootstrap_note, mean_interval, paired_difference

SCORES = [0.12, 0.55, 0.31, 0.9, 0.47, 0.66, 0.05, 0.73, 0.38, 0.59, 0.21, 0.84]


def by_hand(values, *, resamples, seed, confidence=0.95):
    """A percentile bootstrap of the mean: draw item indices with replacement, take quantiles of the means."""
    values = np.asarray(values, dtype=float)
    indices = np.random.default_rng(seed).integers(0, len(values), (resamples, len(values)))
    means = values[indices].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    return np.percentile(means, [tail, 100 - tail])


def test_mean_interval_matches_a_hand_computed_percentile_bootstrap():
    interval = mean_interval(SCORES, resamples=2000, seed=7)
    low, high = by_hand(SCORES, resamples=2000, seed=7)
    assert interval.mean == pytest.approx(np.mean(SCORES))
    assert interval.low == pytest.approx(low, abs=1e-12)
    assert interval.high == pytest.approx(high, abs=1e-12)
    assert interval.n == len(SCORES)
    assert interval.low < interval.mean < interval.high


def test_interval_is_reproducible_and_depends_on_the_seed():
    assert mean_interval(SCORES, seed=3) == mean_interval(SCORES, seed=3)
    assert mean_interval(SCORES, seed=3) != mean_interval(SCORES, seed=4)


def test_higher_confidence_gives_a_wider_interval():
    narrow, wide = mean_interval(SCORES, confidence=0.8), mean_interval(SCORES, confidence=0.99)
    assert wide.low < narrow.low and narrow.high < wide.high


def test_paired_difference_resamples_pairs():
    base = [0.2, 0.4, 0.1, 0.8, 0.5, 0.3, 0.6, 0.7]
    method = [b + d for b, d in zip(base, [0.1, 0.12, 0.08, 0.11, 0.09, 0.1, 0.13, 0.07])]
    diff = paired_difference(method, base, resamples=1000, seed=1)
    low, high = by_hand(np.subtract(method, base), resamples=1000, seed=1)
    assert diff.mean == pytest.approx(0.1)
    assert (diff.low, diff.high) == pytest.approx((low, high), abs=1e-12)
    # Items vary a lot but the method gains on each: pairing tells the two apart, unpaired means would not.
    assert diff.excludes_zero
    unpaired_overlap = mean_interval(base).high > mean_interval(method).low
    assert unpaired_overlap


def test_paired_difference_that_straddles_zero_cannot_be_told_apart():
    diff = paired_difference([0.5, 0.2, 0.9, 0.4], [0.4, 0.3, 0.8, 0.5])
    assert diff.low < 0 < diff.high and not diff.excludes_zero


def test_paired_difference_needs_equal_lengths():
    with pytest.raises(ValueError, match="as many scores"):
        paired_difference([1.0, 2.0], [1.0])


def test_degenerate_samples():
    empty = mean_interval([])
    assert empty.n == 0 and math.isnan(empty.mean) and math.isnan(empty.low) and str(empty) == "n/a"
    assert not empty.excludes_zero and empty.few
    assert mean_interval([0.4]) == Interval(0.4, 0.4, 0.4, 1)
    assert mean_interval([0.25] * 5) == Interval(0.25, 0.25, 0.25, 5)
    with pytest.raises(ValueError, match="NaN"):
        mean_interval([0.1, float("nan")])
    with pytest.raises(ValueError, match="confidence"):
        mean_interval(SCORES, confidence=95)


def test_text_and_flags():
    interval = Interval(0.535, 0.471, 0.602, 56)
    assert str(interval) == "0.535 [0.471, 0.602]"
    assert Interval(0.097, 0.031, 0.156, 56).signed() == "+0.097 [+0.031, +0.156]"
    assert not interval.few and Interval(0.5, 0.4, 0.6, MIN_ITEMS - 1).few
    assert interval.excludes_zero and Interval(-0.2, -0.3, -0.1, 5).excludes_zero
    assert not Interval(0.01, -0.02, 0.04, 30).excludes_zero
    assert "percentile" in bootstrap_note() and "seed 0" in bootstrap_note()


def test_statistic_interval_resamples_pairs_together():
    from cultura.intervals import statistic_interval

    truth = np.array([1, 1, 0, 0, 1, 0, 1, 0, 1, 1], dtype=float)
    guess = np.array([1, 0, 0, 1, 1, 0, 1, 0, 0, 1], dtype=float)

    def agreement(a, b, axis=-1):
        return np.mean(a == b, axis=axis)

    interval = statistic_interval(agreement, truth, guess, resamples=1000, seed=5)
    indices = np.random.default_rng(5).integers(0, 10, (1000, 10))
    low, high = np.percentile((truth[indices] == guess[indices]).mean(axis=1), [2.5, 97.5])
    assert interval.mean == pytest.approx(0.7) and interval.n == 10
    assert (interval.low, interval.high) == pytest.approx((low, high), abs=1e-12)
    assert statistic_interval(agreement, [1.0], [1.0]) == Interval(1.0, 1.0, 1.0, 1)
    with pytest.raises(ValueError, match="equal lengths"):
        statistic_interval(agreement, [1.0, 0.0], [1.0])


def test_versus_baseline_reads_the_interval():
    from cultura.intervals import versus_baseline

    assert versus_baseline(Interval(0.1, 0.03, 0.15, 40)) == "better"
    assert versus_baseline(Interval(-0.1, -0.2, -0.01, 40)) == "worse"
    assert versus_baseline(Interval(0.01, -0.02, 0.04, 40)) == "cannot tell"
    assert versus_baseline(mean_interval([])) == "cannot tell"
    assert versus_baseline(Interval(0.1, 0.03, 0.15, 2)) == "cannot tell", "two units carry no verdict"
    assert versus_baseline(Interval(0.1, 0.03, 0.15, 3)) == "better"
