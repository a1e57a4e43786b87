"""Seed questions and statements with per-country survey answers (the CulturePark seeds).

Survey data belongs to countries: a seed holds, per canonical country, the majority answer and,
where known, the share of people choosing each option, with the provenance of the figure. A culture
is a named set of countries (:mod:`cultura.data.cultures`); where a culture needs one attitude
(self-calibration) it uses its primary country's data, or, when asked for, the data of all its
countries pooled (:meth:`Seed.culture_attitude`).

Bundled seeds are WVS-style questions (``files/seeds_wvs.jsonl``) and Pew-style statements
(``files/seeds_pew.jsonl``). A user can load their own file instead: JSONL or CSV in the project
schema, or a GlobalOpinionQA CSV (:mod:`cultura.data.seed_files`, :mod:`cultura.data.goqa`). Seeds split deterministically into
``train`` and ``eval`` by a hash of their id (:func:`seed_split`): generation uses ``train``,
evaluation ``eval``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from cultura.choices import SURVEY_INSTRUCTION, numbered_question
from cultura.data.cultures import get_culture
from cultura.errors import CulturaError, UnknownNameError

SPLITS = ("train", "eval")
EVAL_FRACTION = 0.2
APPROXIMATE = "approximate"  # provenance of an attitude written from general knowledge, not a published figure


@dataclass(frozen=True)
class Reference:
    """A country's answer distribution on a seed: ``kind`` is ``distribution`` (survey shares) or
    ``majority`` (only the majority answer is known: a one-hot distribution)."""

    country: str
    probs: tuple[float, ...]
    kind: str
    provenance: str

    @property
    def one_hot(self) -> bool:
        """True when only the majority answer is known."""
        return self.kind == "majority"


@dataclass(frozen=True)
class CultureAttitude:
    """The attitude a culture's delegate is calibrated with, and whose data it is.

    ``countries`` are the countries whose data gave it (the primary country, or every pooled one).
    """

    answer: str
    countries: tuple[str, ...]
    provenance: str

    @property
    def source(self) -> str:
        """The country (or ``pooled: A, B``) whose data the attitude uses, for a dialogue row."""
        return self.countries[0] if len(self.countries) == 1 else "pooled: " + ", ".join(self.countries)

    @property
    def where(self) -> str:
        """The people the attitude describes, for the self-calibration sentence."""
        if len(self.countries) == 1:
            return self.countries[0]
        return ", ".join(self.countries[:-1]) + " and " + self.countries[-1]


@dataclass(frozen=True)
class Seed:
    """One seed: a question or statement, its answer options, and per-country survey answers.

    ``attitudes`` maps a canonical country to the option most of its people chose;
    ``distributions`` (optional) maps a country to the share choosing each option;
    ``provenance`` maps a country to where its figure comes from (``approximate`` when it was
    written from general knowledge).
    """

    id: str
    source: str
    topic: str
    kind: str
    text: str
    options: tuple[str, ...]
    attitudes: dict[str, str] = field(default_factory=dict)
    distributions: dict[str, tuple[float, ...]] = field(default_factory=dict)
    provenance: dict[str, str] = field(default_factory=dict)

    @property
    def countries(self) -> list[str]:
        """The countries with data on this seed, sorted."""
        return sorted(self.attitudes)

    def reference(self, country: str) -> Reference | None:
        """The country's own answer distribution (survey shares as the source gives them, else its
        majority answer one-hot), or None when the seed has no data for it. ``country`` must be canonical."""
        shares = self.distributions.get(country)
        provenance = self.provenance.get(country, "")
        if shares and sum(shares) > 0:
            return Reference(country, tuple(shares), "distribution", provenance)
        answer = self.attitudes.get(country)
        if answer is None:
            return None
        return Reference(country, tuple(1.0 if o == answer else 0.0 for o in self.options), "majority", provenance)

    def culture_attitude(self, culture: str, pooled: bool = False) -> CultureAttitude | None:
        """The attitude of a culture (a CulturePark key or a country): its primary country's answer, or
        with ``pooled`` the top option of its countries' data pooled (mean of their distributions,
        majority answers counting as one-hot). None when no country it uses has data."""
        members = get_culture(culture)
        countries = members.countries if pooled else (members.primary_country,)
        found = [r for r in (self.reference(c) for c in countries) if r is not None]
        if not found:
            return None
        mean = [sum(r.probs[i] / sum(r.probs) for r in found) / len(found) for i in range(len(self.options))]
        answer = self.options[max(range(len(mean)), key=lambda i: (mean[i], -i))]
        provenance = (found[0].provenance if len(found) == 1
                      else "; ".join(f"{r.country}: {r.provenance}" for r in found))
        return CultureAttitude(answer, tuple(r.country for r in found), provenance)

    def attitude(self, culture: str, pooled: bool = False) -> str | None:
        """The culture's (or country's) majority answer (see :meth:`culture_attitude`), or None."""
        found = self.culture_attitude(culture, pooled)
        return found.answer if found else None

    def attitude_text(self, culture: str, pooled: bool = False) -> str:
        """The self-calibration sentence telling a delegate its culture's attitude, naming the country
        (or countries) whose data it is. Raises CulturaError when the seed has no data for it."""
        found = self.culture_attitude(culture, pooled)
        if found is None:
            raise CulturaError(f"seed {self.id} has no known attitude for culture {culture!r}; "
                               f"countries with data: {', '.join(self.countries) or 'none'}")
        verb = agreement_verb(found.answer)
        if self.kind == "statement" and verb:
            return f"Most people in {found.where} {verb} that {as_clause(self.text)}."
        return f'When asked "{self.text}", most people in {found.where} answered "{found.answer}".'

    def prompt_text(self) -> str:
        """Return the seed as a user turn: the question or statement followed by its options."""
        options = " / ".join(self.options)
        if self.kind == "statement":
            return f'Do you agree or disagree with this statement? "{self.text}"\nOptions: {options}'
        return f"{self.text}\nOptions: {options}"

    def numbered_prompt(self) -> str:
        """The seed as a numbered multiple-choice question asking for one option (statements asked as
        agree / disagree): what evaluations ask and what the fine-tuning rows train on."""

        text = f'Do you agree or disagree with this statement? "{self.text}"' if self.kind == "statement" else self.text
        return numbered_question(text, self.options, SURVEY_INSTRUCTION)

    def to_dict(self) -> dict[str, Any]:
        """Return the seed as a plain JSON-ready dict in the project schema."""
        data = asdict(self)
        data["options"] = list(self.options)
        data["distributions"] = {k: list(v) for k, v in self.distributions.items()}
        return data


@dataclass
class SeedSet:
    """Seeds loaded from one source, with what the load could not use: countries the country table
    does not know (name as written -> rows), and sub-national or regional samples left out."""

    seeds: list[Seed]
    unknown_countries: dict[str, int] = field(default_factory=dict)
    regions: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        """One paragraph for a command's summary: seeds, countries, and every country not used."""
        countries = sorted({c for s in self.seeds for c in s.attitudes})
        text = f"{len(self.seeds)} seeds with data for {len(countries)} countries"
        if self.unknown_countries:
            text += ("; not in the country table (not used): "
                     + ", ".join(f"{name} ({n} rows)" for name, n in sorted(self.unknown_countries.items())))
        if self.regions:
            text += ("; regions, not countries (not used): "
                     + ", ".join(f"{name} ({n} rows)" for name, n in sorted(self.regions.items())))
        return text


def seed_split(seed_id: str, eval_fraction: float = EVAL_FRACTION) -> str:
    """``eval`` or ``train`` for a seed id: a SHA-256 of the id placed on [0, 1) against ``eval_fraction``.

    Deterministic and independent of the other seeds, so adding seeds never moves one between splits.
    """
    if not 0 < eval_fraction < 1:
        raise CulturaError(f"the eval fraction must be between 0 and 1, got {eval_fraction}")
    point = int(hashlib.sha256(seed_id.encode("utf-8")).hexdigest()[:12], 16) / 16 ** 12
    return "eval" if point < eval_fraction else "train"


def agreement_verb(answer: str) -> str | None:
    """``disagree`` or ``agree`` when an answer option says so ("Strongly disagree"), else None."""
    lowered = answer.lower()
    if "disagree" in lowered:
        return "disagree"
    if "agree" in lowered:
        return "agree"
    return None


def as_clause(statement: str) -> str:
    """'Religion matters.' -> 'religion matters' (keeps acronyms, 'I' and 'God' capitalised)."""
    text = statement.strip().rstrip(".!").strip()
    first = text.split(" ", 1)[0]
    if first in ("I", "God") or (len(first) > 1 and first[:2].isupper()):
        return text
    return text[:1].lower() + text[1:]


def select_seeds(seeds: Iterable[Seed], split: str | None = None, eval_fraction: float = EVAL_FRACTION,
                 cultures: Iterable[str] | None = None, pooled: bool = False) -> list[Seed]:
    """The seeds of one split (``train``, ``eval``, or None for all) that have an attitude for at
    least one of ``cultures`` (culture keys or countries; None: no filter), in order."""
    if split is not None and split not in SPLITS:
        raise UnknownNameError("seed split", split, SPLITS)
    chosen = [s for s in seeds if split is None or seed_split(s.id, eval_fraction) == split]
    if cultures is not None:
        from cultura.data.cultures import get_culture

        keys = [get_culture(c).key for c in cultures]
        chosen = [s for s in chosen if any(s.culture_attitude(k, pooled) for k in keys)]
    return chosen
