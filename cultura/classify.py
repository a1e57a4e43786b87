"""Classification by option scoring: every label a model gives is read from log-probabilities.

A classification lists its labels as numbered options and reads the model's log-probabilities of
the option numbers (the engines' ``score_options``), never a parsed free-text answer. Small models
favour a position (the first option, or the last worked example), so a label's probability must not
depend on where it was listed: the question is asked once per order of the labels (every cyclic
rotation for nominal labels, so each label takes each position once; the scale and its reverse for
an ordinal scale), and a label's probability is its mean over the orders. The valid mass (the
probability the model put on the option numbers at all) is averaged the same way.

Callers batch at the call site: :func:`classify_many` builds every chat of every item and order,
hands them to one ``score`` call (for example an engine actor's ``score_each``), and regroups.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cultura.choices import option_numbers, softmax
from cultura.engines.base import Failure, OptionScores

Chat = Sequence[Mapping[str, str]]
# (chat, options) pairs in, one OptionScores (or the Failure of its request) per pair out
Score = Callable[[Sequence[tuple[Chat, Sequence[str]]]], "list[OptionScores | Failure]"]


def label_orders(labels: Sequence[str], ordinal: bool = False) -> list[tuple[str, ...]]:
    """The orders a question lists its labels in: every cyclic rotation (nominal labels), or the
    scale as given and reversed (``ordinal``: a 1-5 rating keeps its direction within one order)."""
    labels = tuple(labels)
    if len(labels) < 2:
        raise ValueError(f"a classification needs at least two labels, got {list(labels)}")
    if ordinal:
        return [labels, labels[::-1]]
    return [labels[i:] + labels[:i] for i in range(len(labels))]


@dataclass(frozen=True)
class LabelScores:
    """A classification's result: each label's probability (mean over the orders asked) and the
    mean valid mass. ``label`` is the most probable label (the first listed on ties)."""

    labels: tuple[str, ...]
    probs: tuple[float, ...]
    valid_mass: float

    @property
    def label(self) -> str:
        """The most probable label."""
        return self.labels[max(range(len(self.labels)), key=lambda i: (self.probs[i], -i))]

    def prob(self, label: str) -> float:
        """The probability of ``label``."""
        return self.probs[self.labels.index(label)]

    def expected(self) -> float:
        """The expected position on the labels' scale, 1..K (for ordinal labels)."""
        return sum((i + 1) * p for i, p in enumerate(self.probs))


def combine(labels: Sequence[str], orders: Sequence[Sequence[str]], scores: Sequence[OptionScores]) -> LabelScores:
    """The :class:`LabelScores` of one item asked in each of ``orders`` (``scores[j]`` scored the
    option numbers of ``orders[j]``): each order's option distribution mapped back onto the labels
    and averaged."""
    totals = dict.fromkeys(labels, 0.0)
    for order, score in zip(orders, scores, strict=True):
        for label, p in zip(order, softmax(score.logprobs), strict=True):
            totals[label] += p / len(orders)
    mass = sum(s.valid_mass for s in scores) / len(scores)
    return LabelScores(tuple(labels), tuple(totals[label] for label in labels), mass)


def classify_many(chats: Sequence[Sequence[Chat]], labels: Sequence[str], orders: Sequence[Sequence[str]],
                  score: Score) -> list[LabelScores | Failure]:
    """Classify many items in one ``score`` call.

    ``chats[i][j]`` asks item ``i`` with its labels numbered in ``orders[j]``. An item any of whose
    requests failed gives that :class:`~cultura.engines.base.Failure`; the others their scores.
    """
    numbers = option_numbers(len(labels))
    flat = [(chat, numbers) for item in chats for chat in item]
    if any(len(item) != len(orders) for item in chats):
        raise ValueError("every item needs one chat per order")
    answers = iter(score(flat) if flat else [])
    results: list[LabelScores | Failure] = []
    for _ in chats:
        got = [next(answers) for _ in orders]
        failed = next((a for a in got if isinstance(a, Failure)), None)
        results.append(failed if failed is not None else combine(labels, orders, got))
    return results


def label_summary(results: Sequence[Any], labels: Sequence[str]) -> dict[str, Any]:
    """Per-label counts, failures and the mean valid mass of classification results."""
    scored = [r for r in results if isinstance(r, LabelScores)]
    counts = {label: sum(1 for r in scored if r.label == label) for label in labels}
    mass = sum(r.valid_mass for r in scored) / len(scored) if scored else None
    return {"counts": counts, "failed": len(results) - len(scored), "valid_mass": mass}
