"""Seed questions and statements with each culture's known attitude (the CulturePark seeds).

Bundled seeds are WVS-style questions (``files/seeds_wvs.jsonl``) and Pew-style statements
(``files/seeds_pew.jsonl``). A user can load their own file instead: JSONL or CSV in the project
schema, or a GlobalOpinionQA CSV (columns question, selections, options, source).
"""

from __future__ import annotations

import ast
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
GOQA_COLUMNS = ("question", "selections", "options", "source")
GOQA_SOURCES = {"gas": "pew", "wvs": "wvs"}


@dataclass(frozen=True)
class Seed:
    """One seed: a question or statement, its answer options, and per-culture attitudes.

    ``attitudes`` maps a culture key to the option most of that culture's people chose;
    ``distributions`` (optional) maps a culture key to the share choosing each option.
    """

    id: str
    source: str
    topic: str
    kind: str
    text: str
    options: tuple[str, ...]
    attitudes: dict[str, str] = field(default_factory=dict)
    distributions: dict[str, tuple[float, ...]] = field(default_factory=dict)

    def attitude(self, culture_key: str) -> str | None:
        """Return the culture's majority answer, or None when it is not known."""
        return self.attitudes.get(culture_key)

    def attitude_text(self, culture_key: str) -> str:
        """Return the self-calibration sentence telling a delegate its culture's attitude.

        Raises CulturaError when the seed has no attitude for the culture.
        """
        from cultura.data.cultures import get_culture

        answer = self.attitude(culture_key)
        if answer is None:
            raise CulturaError(f"seed {self.id} has no known attitude for culture {culture_key!r}; "
                               f"known: {', '.join(sorted(self.attitudes)) or 'none'}")
        country = get_culture(culture_key).primary_country
        verb = _agreement(answer)
        if self.kind == "statement" and verb:
            return f"Most people in {country} {verb} that {_as_clause(self.text)}."
        return f'When asked "{self.text}", most people in {country} answered "{answer}".'

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


def _fail(path: Path, row: int, field_name: str, message: str) -> DataError:
    return DataError(f"{path}: row {row}, field {field_name!r}: {message}")


def _known_keys() -> set[str]:
    from cultura.data.cultures import known_cultures

    return set(known_cultures())


def _parse_seed(path: Path, row: int, data: Any, known: set[str]) -> Seed:
    """Validate one record in the project schema and build a Seed."""
    if not isinstance(data, dict):
        raise DataError(f"{path}: row {row}: expected a JSON object, got {type(data).__name__}")
    for name in REQUIRED:
        if name not in data or data[name] is None:
            raise _fail(path, row, name, "missing")
    for name in ("id", "source", "topic", "text"):
        if not isinstance(data[name], str) or not data[name].strip():
            raise _fail(path, row, name, "must be a non-empty string")
    if data["kind"] not in KINDS:
        raise _fail(path, row, "kind", f"{data['kind']!r} is not one of {', '.join(KINDS)}")
    options = data["options"]
    if (not isinstance(options, list) or len(options) < 2
            or not all(isinstance(o, str) and o.strip() for o in options)):
        raise _fail(path, row, "options", "must be a list of at least two non-empty strings")
    if len(set(options)) != len(options):
        raise _fail(path, row, "options", "has duplicate options")
    attitudes = data["attitudes"]
    if not isinstance(attitudes, dict):
        raise _fail(path, row, "attitudes", "must be an object mapping culture key -> option")
    for key, answer in attitudes.items():
        if key not in known:
            raise _fail(path, row, "attitudes", str(UnknownNameError("culture key", str(key), known)))
        if answer not in options:
            raise _fail(path, row, "attitudes", f"{key}: {answer!r} is not among the options {options}")
    distributions = data.get("distributions") or {}
    if not isinstance(distributions, dict):
        raise _fail(path, row, "distributions", "must be an object mapping culture key -> list of shares")
    parsed: dict[str, tuple[float, ...]] = {}
    for key, shares in distributions.items():
        if key not in known:
            raise _fail(path, row, "distributions", str(UnknownNameError("culture key", str(key), known)))
        if not isinstance(shares, list) or len(shares) != len(options):
            raise _fail(path, row, "distributions", f"{key}: needs one share per option ({len(options)})")
        if not all(isinstance(s, (int, float)) and not isinstance(s, bool) and 0 <= s <= 1 for s in shares):
            raise _fail(path, row, "distributions", f"{key}: shares must be numbers in 0..1")
        parsed[key] = tuple(float(s) for s in shares)
    return Seed(data["id"].strip(), data["source"].strip(), data["topic"].strip(), data["kind"],
                data["text"].strip(), tuple(options), dict(attitudes), parsed)


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
        raise _fail(path, row, name, f"not valid JSON ({exc.msg})") from None


def _load_project_csv(path: Path, rows: Iterable[tuple[int, dict[str, str]]],
                      known: set[str]) -> Iterator[tuple[int, Seed]]:
    for row, record in rows:
        data: dict[str, Any] = {k: (v.strip() if isinstance(v, str) else v) for k, v in record.items() if k}
        for name in ("options", "attitudes", "distributions"):
            if name in data:
                data[name] = _csv_json(path, row, name, record.get(name))
        yield row, _parse_seed(path, row, data, known)


def _literal(path: Path, row: int, name: str, raw: str, opener: str, closer: str) -> Any:
    """Parse the dict or list literal inside ``raw`` (e.g. in ``defaultdict(<class 'list'>, {...})``)."""
    start, end = raw.find(opener), raw.rfind(closer)
    if start < 0 or end < start:
        raise _fail(path, row, name, f"no {opener}...{closer} literal found")
    try:
        return ast.literal_eval(raw[start:end + 1])
    except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
        raise _fail(path, row, name, f"cannot parse the literal ({exc.__class__.__name__})") from None


def _load_goqa(path: Path, rows: Iterable[tuple[int, dict[str, str]]]) -> Iterator[tuple[int, Seed]]:
    """Parse a GlobalOpinionQA CSV; each country maps to a culture, its argmax option is the attitude.

    Where several countries map to one culture, the one listed earliest in the culture's countries
    wins. Countries outside the Hofstede table are skipped, and so are rows left with no attitude.
    """
    from cultura.data.cultures import culture_of_country
    from cultura.data.hofstede import resolve_country

    seen: dict[str, int] = {}
    for row, record in rows:
        question = (record.get("question") or "").strip()
        if not question:
            raise _fail(path, row, "question", "must not be empty")
        options = _literal(path, row, "options", record.get("options") or "", "[", "]")
        if not isinstance(options, list) or len(options) < 2:
            raise _fail(path, row, "options", "must be a list of at least two options")
        options = [str(o).strip() for o in options]
        selections = _literal(path, row, "selections", record.get("selections") or "", "{", "}")
        if not isinstance(selections, dict):
            raise _fail(path, row, "selections", "must be a mapping country -> shares")
        best: dict[str, tuple[int, list[float]]] = {}
        for country, shares in selections.items():
            if (not isinstance(shares, (list, tuple)) or len(shares) != len(options)
                    or not all(isinstance(s, (int, float)) and not isinstance(s, bool) for s in shares)):
                raise _fail(path, row, "selections", f"{country}: needs one number per option ({len(options)})")
            try:
                canonical = resolve_country(str(country))
            except UnknownNameError:
                continue  # a country outside the Hofstede table: no culture to give it to
            culture = culture_of_country(canonical)
            rank = culture.countries.index(canonical)
            if sum(shares) <= 0 or (culture.key in best and best[culture.key][0] <= rank):
                continue
            best[culture.key] = (rank, [float(s) for s in shares])
        if not best:
            continue
        attitudes = {k: options[max(range(len(v)), key=v.__getitem__)] for k, (_, v) in best.items()}
        source = (record.get("source") or "").strip().lower()
        base = "goqa-" + hashlib.sha1(question.encode("utf-8")).hexdigest()[:10]
        seen[base] = seen.get(base, 0) + 1  # the same question asked twice keeps both, numbered
        seed_id = base if seen[base] == 1 else f"{base}-{seen[base]}"
        yield row, Seed(seed_id, GOQA_SOURCES.get(source, source or "goqa"), "general", "question",
                        question, tuple(options), attitudes, {k: tuple(v) for k, (_, v) in best.items()})


def _load_file(path: Path, known: set[str]) -> list[tuple[int, Seed]]:
    """Load one seed file as (row, Seed) pairs, choosing the parser by suffix and header."""
    if path.suffix.lower() == ".jsonl":
        return [(row, _parse_seed(path, row, data, known)) for row, data in read_jsonl(path)]
    if path.suffix.lower() == ".csv":
        header, rows = read_csv(path)
        if all(c in header for c in GOQA_COLUMNS):
            return list(_load_goqa(path, rows))
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            raise _fail(path, 1, missing[0], f"missing column (a seed CSV needs {', '.join(REQUIRED)}; "
                        f"a GlobalOpinionQA CSV needs {', '.join(GOQA_COLUMNS)})")
        return list(_load_project_csv(path, rows, known))
    if not path.exists():
        raise DataError(f"{path}: file not found")
    raise DataError(f"{path}: unsupported seed file type {path.suffix!r}; use .jsonl or .csv")


def load_seeds(spec: str | Path = "bundled", cultures: Iterable[str] | None = None,
               sources: Iterable[str] = ("wvs", "pew")) -> list[Seed]:
    """Load seeds: ``"bundled"`` (the WVS and Pew files, filtered by ``sources``), a file path or a URI.

    A path may be a ``.jsonl`` or ``.csv`` in the project schema, or a GlobalOpinionQA CSV. When
    ``cultures`` is given, only seeds with an attitude for at least one of them are kept. Raises
    DataError naming file, row and field on malformed input (including duplicate ids).
    """
    known = _known_keys()
    if str(spec) == "bundled":
        wanted = [str(s).lower() for s in sources]
        for source in wanted:
            if source not in BUNDLED:
                raise UnknownNameError("seed source", source, BUNDLED)
        files = [BUNDLED[s] for s in BUNDLED if s in wanted]
    else:
        from cultura.storage import fetch

        files = [fetch(spec)]  # a local path as it is; a filesystem URI (s3://, gs://, file://) copied here
    seeds: list[Seed] = []
    ids: set[str] = set()
    for path in files:
        for row, seed in _load_file(path, known):
            if seed.id in ids:
                raise _fail(path, row, "id", f"duplicate id {seed.id!r}")
            ids.add(seed.id)
            seeds.append(seed)
    if cultures is not None:
        from cultura.data.cultures import get_culture

        keys = {get_culture(c).key for c in cultures}
        seeds = [s for s in seeds if keys & set(s.attitudes)]
    return seeds
