"""Reading seed files: the project schema (JSONL or CSV), GlobalOpinionQA CSVs, the bundled files.

Every record is validated: keys resolve to canonical countries (a culture key such as ``german`` is
refused, since survey data belongs to countries), options, attitudes, distributions and provenance
are checked, and a DataError names the file, the row and the field.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from cultura.data import FILES
from cultura.data.cultures import CULTUREPARK_CULTURES, get_culture
from cultura.data.goqa import GOQA_COLUMNS, GOQA_NAME, cached_goqa, load_goqa
from cultura.data.hofstede import resolve_country
from cultura.data.seeds import EVAL_FRACTION, Seed, SeedSet, select_seeds
from cultura.errors import DataError, UnknownNameError
from cultura.jsonl import read_jsonl, read_text
from cultura.storage import fetch

BUNDLED = {"wvs": FILES / "seeds_wvs.jsonl", "pew": FILES / "seeds_pew.jsonl"}
KINDS = ("question", "statement")
REQUIRED = ("id", "source", "topic", "kind", "text", "options", "attitudes")


def data_country(path: Path, row: int, field_name: str, name: Any) -> str:
    """The canonical country a seed file's key names; a culture key (``german``) is refused, since
    survey data belongs to countries, and an unknown name lists close matches."""
    text = str(name).strip()
    if text.lower() in CULTUREPARK_CULTURES:
        raise DataError.at(path, row, field_name, f"{text!r} is a culture; survey data is keyed by country "
                   f"(for example {get_culture(text).primary_country!r})")
    try:
        return resolve_country(text)
    except UnknownNameError as exc:
        raise DataError.at(path, row, field_name, str(exc)) from None


def _by_country(path: Path, row: int, name: str, value: Any) -> dict[str, Any]:
    """A mapping keyed by country names -> the same values keyed by canonical country (no repeats)."""
    if not isinstance(value, dict):
        raise DataError.at(path, row, name, "must be an object mapping country -> value")
    out: dict[str, Any] = {}
    for key, item in value.items():
        country = data_country(path, row, name, key)
        if country in out:
            raise DataError.at(path, row, name, f"{key!r} names {country}, which is given twice")
        out[country] = item
    return out


def _shares(path: Path, row: int, country: str, shares: Any, width: int) -> tuple[float, ...]:
    if not isinstance(shares, list) or len(shares) != width:
        raise DataError.at(path, row, "distributions", f"{country}: needs one share per option ({width})")
    if not all(isinstance(s, (int, float)) and not isinstance(s, bool) and 0 <= s <= 1 for s in shares):
        raise DataError.at(path, row, "distributions", f"{country}: shares must be numbers in 0..1")
    if sum(shares) <= 0:
        raise DataError.at(path, row, "distributions", f"{country}: the shares sum to 0")
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
            raise DataError.at(path, row, name, "missing")
    for name in ("id", "source", "topic", "text"):
        if not isinstance(data[name], str) or not data[name].strip():
            raise DataError.at(path, row, name, "must be a non-empty string")
    if data["kind"] not in KINDS:
        raise DataError.at(path, row, "kind", f"{data['kind']!r} is not one of {', '.join(KINDS)}")
    options = data["options"]
    if (not isinstance(options, list) or len(options) < 2
            or not all(isinstance(o, str) and o.strip() for o in options)):
        raise DataError.at(path, row, "options", "must be a list of at least two non-empty strings")
    if len(set(options)) != len(options):
        raise DataError.at(path, row, "options", "has duplicate options")
    attitudes = _by_country(path, row, "attitudes", data["attitudes"])
    for country, answer in attitudes.items():
        if answer not in options:
            raise DataError.at(path, row, "attitudes", f"{country}: {answer!r} is not among the options {options}")
    distributions = {c: _shares(path, row, c, s, len(options))
                     for c, s in _by_country(path, row, "distributions", data.get("distributions") or {}).items()}
    for country, shares in distributions.items():
        top = [options[i] for i, s in enumerate(shares) if s == max(shares)]
        if attitudes.setdefault(country, top[0]) not in top:
            raise DataError.at(path, row, "attitudes", f"{country}: {attitudes[country]!r} is not the top option of its "
                       f"distribution ({', '.join(top)})")
    provenance = _by_country(path, row, "provenance", data.get("provenance") or {})
    for country, text in provenance.items():
        if country not in attitudes:
            raise DataError.at(path, row, "provenance", f"{country}: no attitude or distribution to describe")
        if not isinstance(text, str) or not text.strip():
            raise DataError.at(path, row, "provenance", f"{country}: must be a non-empty string")
    provenance = {c: provenance.get(c, path.name).strip() for c in attitudes}
    return Seed(data["id"].strip(), data["source"].strip(), data["topic"].strip(), data["kind"],
                data["text"].strip(), tuple(options), attitudes, distributions, provenance)


def read_csv(path: Path, delimiter: str = ",") -> tuple[list[str], Iterator[tuple[int, dict[str, str]]]]:
    """Open a CSV (or, with ``delimiter="\\t"``, a TSV): return its header and an iterator of (1-based
    line number, row dict)."""
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    lines = read_text(path).splitlines(keepends=True)
    reader = csv.DictReader(lines, delimiter=delimiter)
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
        raise DataError.at(path, row, name, f"not valid JSON ({exc.msg})") from None


def _load_project_csv(path: Path, rows: Iterable[tuple[int, dict[str, str]]]) -> Iterator[tuple[int, Seed]]:
    for row, record in rows:
        data: dict[str, Any] = {k: (v.strip() if isinstance(v, str) else v) for k, v in record.items() if k}
        for name in ("options", "attitudes", "distributions", "provenance"):
            if name in data:
                data[name] = _csv_json(path, row, name, record.get(name))
        yield row, parse_seed(path, row, data)


def _load_file(path: Path) -> tuple[list[tuple[int, Seed]], SeedSet]:
    """Load one seed file as (row, Seed) pairs and what it could not use, by suffix and header."""
    if path.suffix.lower() == ".jsonl":
        return [(row, parse_seed(path, row, data)) for row, data in read_jsonl(path)], SeedSet([])
    if path.suffix.lower() == ".csv":
        header, rows = read_csv(path)
        if all(c in header for c in GOQA_COLUMNS):
            return load_goqa(path, rows)
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            raise DataError.at(path, 1, missing[0], f"missing column (a seed CSV needs {', '.join(REQUIRED)}; "
                       f"a GlobalOpinionQA CSV needs {', '.join(GOQA_COLUMNS)})")
        return list(_load_project_csv(path, rows)), SeedSet([])
    if not path.exists():
        raise DataError(f"{path}: file not found")
    raise DataError(f"{path}: unsupported seed file type {path.suffix!r}; use .jsonl or .csv")


def seed_files(spec: str | Path, sources: Iterable[str] = ("wvs", "pew")) -> list[Path]:
    """The files a seed spec names: ``bundled`` (the WVS and Pew files in ``sources``),
    ``globalopinionqa`` (the cached download, see ``cultura data get``), or a file path or URI."""
    if str(spec) == "bundled":
        wanted = [str(s).lower() for s in sources]
        for source in wanted:
            if source not in BUNDLED:
                raise UnknownNameError("seed source", source, BUNDLED)
        return [BUNDLED[s] for s in BUNDLED if s in wanted]
    if str(spec).lower() == GOQA_NAME:
        return [cached_goqa()]
    return [fetch(spec)]  # a local path as it is; a filesystem URI (s3://, gs://, file://) copied here


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
                raise DataError.at(path, row, "id", f"duplicate id {seed.id!r}")
            ids.add(seed.id)
            loaded.seeds.append(seed)
        for mine, theirs in ((loaded.unknown_countries, extra.unknown_countries), (loaded.regions, extra.regions)):
            for name, n in theirs.items():
                mine[name] = mine.get(name, 0) + n
    return loaded


def load_seeds(spec: str | Path = "bundled", cultures: Iterable[str] | None = None,
               sources: Iterable[str] = ("wvs", "pew"), split: str | None = None,
               eval_fraction: float = EVAL_FRACTION, pooled: bool = False) -> list[Seed]:
    """Load seeds (see :func:`read_seeds`), keeping one split (``train`` /
    ``eval``; None: all) and, when ``cultures`` is given, the seeds with an attitude for at least one of them."""
    return select_seeds(read_seeds(spec, sources).seeds, split, eval_fraction, cultures, pooled)

