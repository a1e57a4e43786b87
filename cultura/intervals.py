"""95% bootstrap intervals for the means cultura reports, and for paired differences between methods.

Every interval comes from :func:`scipy.stats.bootstrap` with the **percentile** method: resample the items
(questions, Hofstede items, moderation examples) with replacement ``resamples`` times, take the mean of each
resample, and report the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of those means.
Percentile rather than BCa because the items' scores are often few and tied (a handful of questions per
country, 0/1 correctness), where BCa's acceleration estimate is unstable or undefined; the percentile
interval is defined for every sample of two or more distinct values and is easy to reproduce by hand.
The random generator is ``numpy.random.default_rng(seed)``, so a report with a given seed is reproducible.

Degenerate samples: no items gives an interval of NaNs with ``n == 0`` (a report prints it as "n/a"
rather than failing on one empty country); one item, or items that are all equal, give
``low == high == mean`` (there is no spread to resample).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

MIN_ITEMS = 20  # a mean over fewer items than this is flagged as resting on few items
MIN_VERDICT_UNITS = 3  # a paired difference over fewer units than this gives no verdict
CONFIDENCE = 0.95
RESAMPLES = 2000
SEED = 0
METHOD = "percentile"  # the scipy.stats.bootstrap method every interval uses


@dataclass(frozen=True)
class Interval:
    """A mean over ``n`` items with the bounds of its bootstrap confidence interval."""

    mean: float
    low: float
    high: float
    n: int

    def __str__(self) -> str:
        if self.n == 0:
            return "n/a"
        return f"{self.mean:.3f} [{self.low:.3f}, {self.high:.3f}]"

    def signed(self) -> str:
        """The interval with explicit signs, for differences: ``+0.097 [+0.031, +0.156]``."""
        if self.n == 0:
            return "n/a"
        return f"{self.mean:+.3f} [{self.low:+.3f}, {self.high:+.3f}]"

    @property
    def few(self) -> bool:
        """True when the mean rests on fewer than :data:`MIN_ITEMS` items (the interval is rough)."""
        return self.n < MIN_ITEMS

    @property
    def excludes_zero(self) -> bool:
        """True when the whole interval lies on one side of zero (for a difference: the two can be told apart)."""
        return self.n > 0 and (self.low > 0 or self.high < 0)


def versus_baseline(lift: Interval) -> str:
    """What a lift over a baseline (a paired difference, higher better) says: ``better`` or ``worse``
    when its interval excludes zero, else ``cannot tell`` (the two cannot be told apart). Below
    :data:`MIN_VERDICT_UNITS` paired units it is always ``cannot tell``: a bootstrap over one unit has
    one mean and over two only three, so an interval that excludes zero there says nothing."""
    if lift.n < MIN_VERDICT_UNITS or not lift.excludes_zero:
        return "cannot tell"
    return "better" if lift.mean > 0 else "worse"


def _values(values: Iterable[float], what: str) -> np.ndarray:
    array = np.asarray(list(values), dtype=float)
    if array.ndim != 1:
        raise ValueError(f"{what} must be a flat sequence of numbers, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{what} holds a NaN or infinite value; drop or fix it before taking an interval")
    return array


def _check(confidence: float, resamples: int) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")


def mean_interval(values: Iterable[float], *, confidence: float = CONFIDENCE, resamples: int = RESAMPLES,
                  seed: int = SEED) -> Interval:
    """The mean of ``values`` with its percentile bootstrap interval (see the module docstring).

    Takes one number per item; returns an :class:`Interval` (NaNs when there are no items, a zero-width
    interval when there is one item or all are equal). Raises ValueError on NaN or infinite values.
    """
    _check(confidence, resamples)
    array = _values(values, "values")
    n = len(array)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    mean = float(array.mean())
    if n == 1 or np.all(array == array[0]):
        return Interval(mean, mean, mean, n)
    from scipy.stats import bootstrap  # scipy.stats takes a second to import; only reports need it

    result = bootstrap((array,), np.mean, n_resamples=resamples, confidence_level=confidence,
                       method=METHOD, vectorized=True, rng=np.random.default_rng(seed))
    low, high = result.confidence_interval
    return Interval(mean, float(low), float(high), n)


def paired_difference(a: Iterable[float], b: Iterable[float], *, confidence: float = CONFIDENCE,
                      resamples: int = RESAMPLES, seed: int = SEED) -> Interval:
    """The mean of ``a - b`` over paired items with its paired bootstrap interval.

    ``a[i]`` and ``b[i]`` are two methods' scores on the same item; each resample draws items (pairs), so
    the interval accounts for how much items vary in difficulty. Resampling the per-item differences is
    exactly that paired bootstrap for a mean. Raises ValueError when the lengths differ.
    """
    first, second = _values(a, "a"), _values(b, "b")
    if len(first) != len(second):
        raise ValueError(f"a paired difference needs as many scores in a as in b, got {len(first)} and {len(second)}")
    return mean_interval(first - second, confidence=confidence, resamples=resamples, seed=seed)


def statistic_interval(statistic: Callable[..., Any], *samples: Iterable[float], confidence: float = CONFIDENCE,
                       resamples: int = RESAMPLES, seed: int = SEED) -> Interval:
    """A statistic that is not a mean (macro-F1, a difference of two F1s) with its percentile bootstrap
    interval; the samples are paired (item ``i`` of each is one item) and resampled together.

    ``statistic(*arrays, axis=-1)`` must be vectorized: each array may carry resamples along its
    leading axes. The returned :class:`Interval`'s ``mean`` holds the statistic on all items. Same
    degenerate cases as :func:`mean_interval`; raises ValueError when the samples differ in length.
    """
    _check(confidence, resamples)
    arrays = [_values(sample, f"sample {i + 1}") for i, sample in enumerate(samples)]
    if not arrays or len({len(a) for a in arrays}) != 1:
        raise ValueError(f"paired samples need equal lengths, got {[len(a) for a in arrays]}")
    n = len(arrays[0])
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    value = float(statistic(*arrays, axis=-1))
    if n == 1:
        return Interval(value, value, value, n)
    from scipy.stats import bootstrap

    result = bootstrap(tuple(arrays), statistic, n_resamples=resamples, confidence_level=confidence, method=METHOD,
                       paired=True, vectorized=True, rng=np.random.default_rng(seed))
    low, high = result.confidence_interval
    if math.isnan(low) or math.isnan(high):  # every resample gave the same value
        return Interval(value, value, value, n)
    return Interval(value, float(low), float(high), n)


def bootstrap_note(*, confidence: float = CONFIDENCE, resamples: int = RESAMPLES, seed: int = SEED) -> str:
    """One line for a report saying how its intervals were made."""
    return (f"Intervals: {confidence:.0%} {METHOD} bootstrap (scipy.stats.bootstrap), {resamples} resamples, "
            f"seed {seed}; a mean over fewer than {MIN_ITEMS} items is marked *few*.")
