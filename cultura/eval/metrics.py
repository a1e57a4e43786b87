"""Numbers the evaluations report: option distributions, expectations, JSD similarity, macro-F1, ROC AUC.

Pure Python (no numpy needed), so the formulas are easy to read and to test by hand.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from cultura.errors import CulturaError


def expected_option(probs: Sequence[float]) -> float:
    """The expected answer on a 1..K scale: ``sum_i p_i * i`` (option 1 first)."""
    _check_distribution(probs)
    return sum(p * (i + 1) for i, p in enumerate(probs)) / sum(probs)


def top_option(probs: Sequence[float]) -> int:
    """The 0-based index of the most likely option (the first one on ties)."""
    _check_distribution(probs)
    return max(range(len(probs)), key=lambda i: (probs[i], -i))


def mixture(distributions: Sequence[Sequence[float]], weights: Sequence[float]) -> list[float]:
    """The weighted mixture ``sum_k w_k * p_k`` of option distributions (weights renormalised)."""
    if not distributions or len(distributions) != len(weights):
        raise CulturaError("a mixture needs one weight per distribution")
    width = len(distributions[0])
    if any(len(d) != width for d in distributions):
        raise CulturaError("distributions in a mixture must cover the same options")
    total = sum(weights)
    if total <= 0 or any(w < 0 for w in weights):
        raise CulturaError(f"mixture weights must be >= 0 with a positive sum, got {list(weights)}")
    return [sum(w * d[i] for d, w in zip(distributions, weights)) / total for i in range(width)]


def jensen_shannon_distance(p: Sequence[float], q: Sequence[float]) -> float:
    """Jensen-Shannon distance (square root of the divergence, log base 2): 0 identical, 1 disjoint."""
    _check_distribution(p)
    _check_distribution(q)
    if len(p) != len(q):
        raise CulturaError(f"distributions over different numbers of options ({len(p)} vs {len(q)})")
    sp, sq = sum(p), sum(q)
    p = [x / sp for x in p]
    q = [x / sq for x in q]
    m = [(a + b) / 2 for a, b in zip(p, q)]

    def kl(a: Sequence[float]) -> float:
        return sum(x * math.log2(x / y) for x, y in zip(a, m) if x > 0)

    divergence = max(0.0, (kl(p) + kl(q)) / 2)
    return min(1.0, math.sqrt(divergence))


def jsd_similarity(p: Sequence[float], q: Sequence[float]) -> float:
    """Opinion similarity: ``1 - Jensen-Shannon distance`` (1 identical, 0 disjoint)."""
    return 1.0 - jensen_shannon_distance(p, q)


def macro_f1(y_true: Sequence, y_pred: Sequence, labels: Sequence | None = None) -> float:
    """Unweighted mean of per-label F1 over ``labels`` (default: every label in truth or prediction).

    A label with no true and no predicted member scores F1 0, as in scikit-learn's default.
    """
    if len(y_true) != len(y_pred):
        raise CulturaError(f"{len(y_true)} true labels but {len(y_pred)} predictions")
    if not y_true:
        raise CulturaError("macro-F1 of an empty set is undefined")
    labels = sorted(set(y_true) | set(y_pred)) if labels is None else list(labels)
    scores = []
    for label in labels:
        tp = sum(1 for t, p in zip(y_true, y_pred) if t == label and p == label)
        fp = sum(1 for t, p in zip(y_true, y_pred) if t != label and p == label)
        fn = sum(1 for t, p in zip(y_true, y_pred) if t == label and p != label)
        denominator = 2 * tp + fp + fn
        scores.append(2 * tp / denominator if denominator else 0.0)
    return sum(scores) / len(scores)


def accuracy(y_true: Sequence, y_pred: Sequence) -> float:
    """Share of predictions equal to the truth."""
    if len(y_true) != len(y_pred) or not y_true:
        raise CulturaError("accuracy needs equally long, non-empty label lists")
    return sum(1 for t, p in zip(y_true, y_pred) if t == p) / len(y_true)


def roc_auc(labels: Sequence[bool], scores: Sequence[float]) -> float | None:
    """Area under the ROC curve of ``scores`` for the positive ``labels``: the chance that a random
    positive scores above a random negative (ties count half). None without both classes."""
    if len(labels) != len(scores):
        raise CulturaError(f"{len(labels)} labels but {len(scores)} scores")
    positives = [s for s, y in zip(scores, labels) if y]
    negatives = [s for s, y in zip(scores, labels) if not y]
    if not positives or not negatives:
        return None
    # the Mann-Whitney statistic from average ranks (tied scores share their mean rank)
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    ranks = [0.0] * len(scores)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and scores[order[end + 1]] == scores[order[start]]:
            end += 1
        for i in order[start:end + 1]:
            ranks[i] = (start + end) / 2 + 1
        start = end + 1
    positive_ranks = sum(r for r, y in zip(ranks, labels) if y)
    n_pos, n_neg = len(positives), len(negatives)
    return (positive_ranks - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def euclidean(a: dict[str, float], b: dict[str, float], keys: Sequence[str] | None = None) -> float:
    """Euclidean distance over ``keys`` (default: the keys both sides have with a value)."""
    keys = [k for k in (keys or a) if a.get(k) is not None and b.get(k) is not None]
    if not keys:
        raise CulturaError("no dimension in common to measure a distance over")
    return math.sqrt(sum((a[k] - b[k]) ** 2 for k in keys))


def _check_distribution(probs: Sequence[float]) -> None:
    if not probs:
        raise CulturaError("empty distribution")
    if any(p < 0 or math.isnan(p) for p in probs) or sum(probs) <= 0:
        raise CulturaError(f"not a distribution: {list(probs)}")


MIN_TARGETS_FOR_R = 3  # Pearson's r across targets needs at least this many


def pearson(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Pearson's correlation coefficient; None with fewer than 3 pairs or when either side is constant."""
    n = len(xs)
    if n < MIN_TARGETS_FOR_R or n != len(ys):
        return None
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    if sxx <= 1e-12 or syy <= 1e-12:
        return None
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / math.sqrt(sxx * syy)
