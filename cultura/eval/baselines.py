"""Trivial predictors every opinion method must beat, computed from the survey data alone.

For one question and a scored country, each baseline predicts a distribution over the options from
the *other* countries' answers (leave-one-out: the scored country's own data, and the data its
reference came from, are never used):

- ``uniform``: every option equally likely;
- ``global-majority``: one-hot on the option that most other countries answer (their top option);
  ties go to the option with the higher mean share, then to the earlier option;
- ``global-mean``: the mean of the other countries' distributions (each one-hot where only its
  majority answer is known).

With no other country's data on the question, the two global baselines know nothing and predict
uniform; the row's note says so.
"""

from __future__ import annotations

from collections.abc import Sequence

from cultura.eval.metrics import top_option

DESCRIPTIONS = {
    "uniform": "every option equally likely (its top option is option 1 by the first-option tie rule, so its "
               "top-option agreement is that of always answering option 1)",
    "global-majority": "one-hot on the option most other countries in the data pick (leave-one-out)",
    "global-mean": "mean distribution of the other countries in the data (leave-one-out)",
}
NO_OTHERS = "no other country has data on this question: predicts uniform"


def uniform(width: int) -> list[float]:
    """Equal probability on each of ``width`` options."""
    return [1.0 / width] * width


def global_mean(others: Sequence[Sequence[float]], width: int) -> list[float]:
    """The mean of the other countries' distributions, each normalised first so every country counts
    the same (uniform when there are none)."""
    if not others:
        return uniform(width)
    return [sum(d[i] / sum(d) for d in others) / len(others) for i in range(width)]


def global_majority(others: Sequence[Sequence[float]], width: int) -> list[float]:
    """One-hot on the option most other countries pick (ties: higher mean share, then earlier option)."""
    if not others:
        return uniform(width)
    votes = [0] * width
    for d in others:
        votes[top_option(d)] += 1
    mean = global_mean(others, width)
    best = max(range(width), key=lambda i: (votes[i], mean[i], -i))
    return [1.0 if i == best else 0.0 for i in range(width)]


# name -> predictor(other countries' distributions, number of options)
PREDICTORS = {
    "uniform": lambda others, width: uniform(width),
    "global-majority": global_majority,
    "global-mean": global_mean,
}
BASELINES = tuple(PREDICTORS)
