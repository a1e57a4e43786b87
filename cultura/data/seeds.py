"""Seed questions and statements with per-country survey answers (the CulturePark seeds).

Survey data belongs to countries: a seed holds, per canonical country, the majority answer and,
where known, the share of people choosing each option, with the provenance of the figure. A culture
is a named set of countries (:mod:`cultura.data.cultures`); where a culture needs one attitude
(self-calibration) it uses its primary country's data, or, when asked for, the data of all its
countries pooled (:meth:`Seed.culture_attitude`).

Bundled seeds are WVS-style questions (``files/seeds_wvs.jsonl``) and Pew-style statements
(``files/seeds_pew.jsonl``). A user can load their own file instead: JSONL or CSV in the project
schema, or a GlobalOpinionQA CSV (:mod:`cultura.data.goqa`). Seeds split deterministically into
``train`` and ``eval`` by a hash of their id (:func:`seed_split`): generation uses ``train``,
evaluation ``eval``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cultura.data import FILES
from cultura.errors import CulturaError, DataError, UnknownNameError
from cultura.jsonl import read_jsonl, read_text

BUNDLED = {"wvs": FILES / "seeds_wvs.jsonl", "pew": FILES / "seeds_pew.jsonl"}
KINDS = ("question", "statement")
REQUIRED = ("id", "source", "topic", "kind", "text", "options", "attitudes")
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
        from cultura.data.cultures import get_culture

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
        verb = _agreement(found.answer)
        if self.kind == "statement" and verb:
            return f"Most people in {found.where} {verb} that {_as_clause(self.text)}."
        return f'When asked "{self.text}", most people in {found.where} answered "{found.answer}".'

    def prompt_text(self) -> str:
        """Return the seed as a user turn: the question or statement followed by its options."""
        options = " / ".join(self.options)
        if self.kind == "statement":
            return f'Do you agree or disagree with this statement? "{self.text}"\nOptions: {options}'
        return f"{self.text}\nOptions: {options}"

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


def _agreement(answer: str) -> str | None:
    lowered = answer.lower()
    if "disagree" in lowered:
        return "disagree"
    if "agree" in lowered:
        return "agree"
    return None


def _as_clause(statement: str) -> str:
    """'Religion matters.' -> 'religion matters' (keeps acronyms, 'I' and 'God' capitalised)."""
    text = statement.strip().rstrip(".!").strip()
    first = text.split(" ", 1)[0]
    if first in ("I", "God") or (len(first) > 1 and first[:2].isupper()):
        return text
    return text[:1].lower() + text[1:]


def fail(path: Path, row: int, field_name: str, message: str) -> DataError:
    """A DataError naming the file, the row and the field."""
    return DataError(f"{path}: row {row}, field {field_name!r}: {message}")


def data_country(path: Path, row: int, field_name: str, name: Any) -> str:
    """The canonical country a seed file's key names; a culture key (``german``) is refused, since
    survey data belongs to countries, and an unknown name lists close matches."""
    from cultura.data.cultures import CULTUREPARK_CULTURES, get_culture
    from cultura.data.hofstede import resolve_country

    text = str(name).strip()
    if text.lower() in CULTUREPARK_CULTURES:
        raise fail(path, row, field_name, f"{text!r} is a culture; survey data is keyed by country "
                   f"(for example {get_culture(text).primary_country!r})")
    try:
        return resolve_country(text)
    except UnknownNameError as exc:
        raise fail(path, row, field_name, str(exc)) from None


def _by_country(path: Path, row: int, name: str, value: Any) -> dict[str, Any]:
    """A mapping keyed by country names -> the same values keyed by canonical country (no repeats)."""
    if not isinstance(value, dict):
        raise fail(path, row, name, "must be an object mapping country -> value")
    out: dict[str, Any] = {}
    for key, item in value.items():
        country = data_country(path, row, name, key)
        if country in out:
            raise fail(path, row, name, f"{key!r} names {country}, which is given twice")
        out[country] = item
    return out


def _shares(path: Path, row: int, country: str, shares: Any, width: int) -> tuple[float, ...]:
    if not isinstance(shares, list) or len(shares) != width:
        raise fail(path, row, "distributions", f"{country}: needs one share per option ({width})")
    if not all(isinstance(s, (int, float)) and not isinstance(s, bool) and 0 <= s <= 1 for s in shares):
        raise fail(path, row, "distributions", f"{country}: shares must be numbers in 0..1")
    if sum(shares) <= 0:
        raise fail(path, row, "distributions", f"{country}: the shares sum to 0")
    return tuple(float(s) for s in shares)


def parse_seed(path: Path, row: int, data: Any) -> Seed:
    """Validate one record in the project schema and build a Seed (keys resolved to canonical countries).

    Every country with a distribution gets its top option as attitude; a given attitude must be one
    of the distribution's top options. Provenance defaults to the file name.
    """
    if not isinstance(data, dict):
        raise DataError(f"{path}: row {row}: expected a JSON object, got {type(data).__name__}")
    for name in REQUIRED:
        if name not in data or data[name] is None:
            raise fail(path, row, name, "missing")
    for name in ("id", "source", "topic", "text"):
        if not isinstance(data[name], str) or not data[name].strip():
            raise fail(path, row, name, "must be a non-empty string")
    if data["kind"] not in KINDS:
        raise fail(path, row, "kind", f"{data['kind']!r} is not one of {', '.join(KINDS)}")
    options = data["options"]
    if (not isinstance(options, list) or len(options) < 2
            or not all(isinstance(o, str) and o.strip() for o in options)):
        raise fail(path, row, "options", "must be a list of at least two non-empty strings")
    if len(set(options)) != len(options):
        raise fail(path, row, "options", "has duplicate options")
    attitudes = _by_country(path, row, "attitudes", data["attitudes"])
    for country, answer in attitudes.items():
        if answer not in options:
            raise fail(path, row, "attitudes", f"{country}: {answer!r} is not among the options {options}")
    distributions = {c: _shares(path, row, c, s, len(options))
                     for c, s in _by_country(path, row, "distributions", data.get("distributions") or {}).items()}
    for country, shares in distributions.items():
        top = [options[i] for i, s in enumerate(shares) if s == max(shares)]
        if attitudes.setdefault(country, top[0]) not in top:
            raise fail(path, row, "attitudes", f"{country}: {attitudes[country]!r} is not the top option of its "
                       f"distribution ({', '.join(top)})")
    provenance = _by_country(path, row, "provenance", data.get("provenance") or {})
    for country, text in provenance.items():
        if country not in attitudes:
            raise fail(path, row, "provenance", f"{country}: no attitude or distribution to describe")
        if not isinstance(text, str) or not text.strip():
            raise fail(path, row, "provenance", f"{country}: must be a non-empty string")
    provenance = {c: provenance.get(c, path.name).strip() for c in attitudes}
    return Seed(data["id"].strip(), data["source"].strip(), data["topic"].strip(), data["kind"],
                data["text"].strip(), tuple(options), attitudes, distributions, provenance)


def read_csv(path: Path) -> tuple[list[str], Iterator[tuple[int, dict[str, str]]]]:
    """Open a CSV: return its header and an iterator of (1-based line number, row dict)."""
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    lines = read_text(path).splitlines(keepends=True)
    reader = csv.DictReader(lines)
    header = [h.strip() for h in (reader.fieldnames or [])]
    reader.fieldnames = header

    def rows() -> Iterator[tuple[int, dict[str, str]]]:
        try:
            for record in reader:
                yield reader.line_num, record
        except csv.Error as exc:
            raise DataError(f"{path}: row {reader.line_num}: malformed CSV ({exc})") from None

    return header, rows()


def _csv_json(path: Path, row: int, name: str, raw: str | None) -> Any:
    if raw is None or not raw.strip():
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise fail(path, row, name, f"not valid JSON ({exc.msg})") from None


def _load_project_csv(path: Path, rows: Iterable[tuple[int, dict[str, str]]]) -> Iterator[tuple[int, Seed]]:
    for row, record in rows:
        data: dict[str, Any] = {k: (v.strip() if isinstance(v, str) else v) for k, v in record.items() if k}
        for name in ("options", "attitudes", "distributions", "provenance"):
            if name in data:
                data[name] = _csv_json(path, row, name, record.get(name))
        yield row, parse_seed(path, row, data)


def _load_file(path: Path) -> tuple[list[tuple[int, Seed]], SeedSet]:
    """Load one seed file as (row, Seed) pairs and what it could not use, by suffix and header."""
    from cultura.data.goqa import GOQA_COLUMNS, load_goqa

    if path.suffix.lower() == ".jsonl":
        return [(row, parse_seed(path, row, data)) for row, data in read_jsonl(path)], SeedSet([])
    if path.suffix.lower() == ".csv":
        header, rows = read_csv(path)
        if all(c in header for c in GOQA_COLUMNS):
            return load_goqa(path, rows)
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            raise fail(path, 1, missing[0], f"missing column (a seed CSV needs {', '.join(REQUIRED)}; "
                       f"a GlobalOpinionQA CSV needs {', '.join(GOQA_COLUMNS)})")
        return list(_load_project_csv(path, rows)), SeedSet([])
    if not path.exists():
        raise DataError(f"{path}: file not found")
    raise DataError(f"{path}: unsupported seed file type {path.suffix!r}; use .jsonl or .csv")


def seed_files(spec: str | Path, sources: Iterable[str] = ("wvs", "pew")) -> list[Path]:
    """The files a seed spec names: ``bundled`` (the WVS and Pew files in ``sources``),
    ``globalopinionqa`` (the cached download, see ``cultura data get``), or a file path."""
    from cultura.data.goqa import GOQA_NAME, cached_goqa

    if str(spec) == "bundled":
        wanted = [str(s).lower() for s in sources]
        for source in wanted:
            if source not in BUNDLED:
                raise UnknownNameError("seed source", source, BUNDLED)
        return [BUNDLED[s] for s in BUNDLED if s in wanted]
    if str(spec).lower() == GOQA_NAME:
        return [cached_goqa()]
    return [Path(spec).expanduser()]


def read_seeds(spec: str | Path = "bundled", sources: Iterable[str] = ("wvs", "pew")) -> SeedSet:
    """Every seed of a spec (see :func:`seed_files`) with what the load could not use.

    Raises DataError naming file, row and field on malformed input (including duplicate ids).
    """
    loaded = SeedSet([])
    ids: set[str] = set()
    for path in seed_files(spec, sources):
        pairs, extra = _load_file(path)
        for row, seed in pairs:
            if seed.id in ids:
                raise fail(path, row, "id", f"duplicate id {seed.id!r}")
            ids.add(seed.id)
            loaded.seeds.append(seed)
        for mine, theirs in ((loaded.unknown_countries, extra.unknown_countries), (loaded.regions, extra.regions)):
            for name, n in theirs.items():
                mine[name] = mine.get(name, 0) + n
    return loaded


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


def load_seeds(spec: str | Path = "bundled", cultures: Iterable[str] | None = None,
               sources: Iterable[str] = ("wvs", "pew"), split: str | None = None,
               eval_fraction: float = EVAL_FRACTION, pooled: bool = False) -> list[Seed]:
    """Load seeds (see :func:`read_seeds`), keeping one split (``train`` / ``eval``; None: all) and,
    when ``cultures`` is given, the seeds with an attitude for at least one of them."""
    return select_seeds(read_seeds(spec, sources).seeds, split, eval_fraction, cultures, pooled)

