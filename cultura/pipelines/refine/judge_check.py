"""A labelled check of the verification judge, built from the seeds' own attitudes.

Refinement keeps an opinion only when the model judges that it entails the seed attitude, so how
well the model judges is worth knowing before its labels are trusted. The check needs no annotated
data: from a seed and a country's attitude it writes a first-person opinion that

- restates the attitude (gold label ``Entail``),
- takes the option at the other end of the scale (``Contradict``), or
- answers a seed on another topic (``Irrelevant``),

and scores the judge's labels against these. Items rotate through the three labels, so the
majority-label baseline is about one third. ``bench/judge.py`` runs it at size; ``refine`` runs a
small one beside every verification and says in its summary when the judge is at chance.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cultura.data.seeds import agreement_verb, as_clause
from cultura.eval.metrics import accuracy, macro_f1
from cultura.pipelines.refine.verify import CONTRADICT, ENTAIL, LABELS


@dataclass(frozen=True)
class Attitude:
    """A country's answer to a seed: the material of a labelled item."""

    seed: Any  # cultura.data.seeds.Seed
    country: str
    answer: str


def first_person(seed: Any, option: str) -> str:
    """A first-person opinion choosing ``option`` on ``seed`` ("I disagree that ...", "My answer ...")."""
    verb = agreement_verb(option)
    if seed.kind == "statement" and verb:
        return f"I {option.strip().lower()} that {as_clause(seed.text)}."
    return f'My answer to "{seed.text.strip()}" is "{option}".'


def opposite(options: Sequence[str], answer: str) -> str:
    """The option at the other end of the scale from ``answer`` (the middle one: the first option)."""
    index = list(options).index(answer)
    mirror = len(options) - 1 - index
    return options[mirror] if mirror != index else options[0]


def _order_key(attitude: Attitude) -> str:
    return hashlib.sha256(f"{attitude.seed.id}|{attitude.country}".encode()).hexdigest()


def labelled_items(attitudes: Sequence[Attitude], limit: int | None = None) -> list[dict[str, Any]]:
    """Labelled verification items (``opinion``, ``seed_text``, ``attitude``, ``country``, ``seed_id``
    and the gold ``expected`` label), one per attitude in a fixed pseudo-random order, labels in turn.

    An ``Irrelevant`` item answers another seed of a different topic (the country's own answer when
    known); attitudes whose answer is not among the seed's options are skipped.
    """
    usable = sorted((a for a in attitudes if a.answer in a.seed.options), key=_order_key)
    items = []
    for n, att in enumerate(usable[:limit] if limit else usable):
        label = LABELS[n % len(LABELS)]
        if label == ENTAIL:
            opinion = first_person(att.seed, att.answer)
        elif label == CONTRADICT:
            opinion = first_person(att.seed, opposite(att.seed.options, att.answer))
        else:
            other = next((o for o in usable[n + 1:] + usable[:n] if o.seed.topic != att.seed.topic), None)
            if other is None:  # every attitude shares one topic: no irrelevant item can be built
                label, opinion = ENTAIL, first_person(att.seed, att.answer)
            else:
                opinion = first_person(other.seed, other.answer)
        items.append({"opinion": opinion, "seed_text": att.seed.text, "attitude": att.answer,
                      "country": att.country, "seed_id": att.seed.id, "expected": label})
    return items


@dataclass(frozen=True)
class JudgeScore:
    """How the judge did on labelled items, next to always answering the most common gold label."""

    items: int
    accuracy: float
    macro_f1: float
    majority_label: str
    majority_accuracy: float
    majority_macro_f1: float
    predicted: dict[str, int]
    valid_mass: float | None

    @property
    def margin(self) -> float:
        """Two standard errors of an accuracy at the baseline's level over this many items."""
        p = self.majority_accuracy
        return 2 * math.sqrt(p * (1 - p) / self.items) if self.items else 1.0

    @property
    def at_chance(self) -> bool:
        """True when the accuracy is not above the majority baseline by more than :attr:`margin`."""
        return self.accuracy <= self.majority_accuracy + self.margin

    def as_dict(self) -> dict[str, Any]:
        """Plain values for a summary file."""
        return {"items": self.items, "accuracy": self.accuracy, "macro_f1": self.macro_f1,
                "majority_label": self.majority_label, "majority_accuracy": self.majority_accuracy,
                "majority_macro_f1": self.majority_macro_f1, "predicted": self.predicted,
                "valid_mass": self.valid_mass, "at_chance": self.at_chance}

    def sentence(self) -> str:
        """One line for a command's summary."""
        verdict = ("at chance: its labels do not tell entailing opinions from the others" if self.at_chance
                   else "above the baseline")
        return (f"verification check on {self.items} labelled items built from the seeds: accuracy "
                f"{self.accuracy:.3f}, macro-F1 {self.macro_f1:.3f}; always '{self.majority_label}': accuracy "
                f"{self.majority_accuracy:.3f}, macro-F1 {self.majority_macro_f1:.3f}; the judge is {verdict}")


def score_judge(expected: Sequence[str], predicted: Sequence[str], valid_mass: Sequence[float] = ()) -> JudgeScore:
    """Accuracy and macro-F1 of ``predicted`` labels, and of the majority-label baseline."""
    majority = max(LABELS, key=lambda label: (sum(e == label for e in expected), -LABELS.index(label)))
    constant = [majority] * len(expected)
    return JudgeScore(
        items=len(expected), accuracy=accuracy(expected, predicted), macro_f1=macro_f1(expected, predicted, LABELS),
        majority_label=majority, majority_accuracy=accuracy(expected, constant),
        majority_macro_f1=macro_f1(expected, constant, LABELS),
        predicted={label: sum(p == label for p in predicted) for label in LABELS},
        valid_mass=sum(valid_mass) / len(valid_mass) if valid_mass else None)


def seed_attitudes_of(seeds: Sequence[Any], countries: Sequence[str]) -> list[Attitude]:
    """Every ``(seed, country)`` attitude the seeds hold for ``countries``."""
    return [Attitude(seed, country, seed.attitudes[country]) for seed in seeds for country in countries
            if country in seed.attitudes]


def culture_attitudes(seeds: Sequence[Any], cultures: Sequence[str], pooled: bool = False) -> list[Attitude]:
    """Every seed's attitude for each culture as refinement verifies against it (primary country, or
    pooled), with the country (or countries) whose data it is."""
    found = []
    for seed in seeds:
        for culture in cultures:
            attitude = seed.culture_attitude(culture, pooled)
            if attitude is not None:
                found.append(Attitude(seed, attitude.where, attitude.answer))
    return found


def judged_schema() -> Any:
    """The check's rows: a labelled item and the judge's answer (label, each label's probability, valid
    mass), or the ``error`` of its failed request."""
    import pyarrow as pa

    return pa.schema([
        pa.field("opinion", pa.string(), nullable=False), pa.field("seed_text", pa.string(), nullable=False),
        pa.field("attitude", pa.string(), nullable=False), pa.field("country", pa.string(), nullable=False),
        pa.field("seed_id", pa.string(), nullable=False), pa.field("expected", pa.string(), nullable=False),
        pa.field("label", pa.string()), pa.field("probs", pa.list_(pa.float64())),
        pa.field("valid_mass", pa.float64()), pa.field("error", pa.string()),
    ])


def score_rows(rows: Sequence[dict[str, Any]]) -> JudgeScore | None:
    """:func:`score_judge` over judged rows whose request ran (None when none did)."""
    ran = [r for r in rows if r["label"] is not None]
    if not ran:
        return None
    return score_judge([r["expected"] for r in ran], [r["label"] for r in ran], [r["valid_mass"] for r in ran])
