"""Reading a Palette dataset: ``palette.parquet`` as cultura writes it, or a published Palette JSONL, and
the (chosen, rejected) pairs fine-tuning and preference training take from it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cultura.data.hofstede import CONTINENTS
from cultura.errors import DataError
from cultura.jsonl import read_jsonl_objects
from cultura.pipelines.palette_data.schema import PARQUET, palette_schema


def read_palette(path: str | Path) -> Any:
    """Read a Palette dataset as an Arrow table with :func:`palette_schema`: a run folder (its
    ``palette.parquet``), a ``.parquet`` file, or Palette JSONL (ours or the published files)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path).expanduser()
    if path.is_dir() and (path / PARQUET).is_file():
        path = path / PARQUET
    if path.suffix == ".parquet":
        try:
            return pq.read_table(path, schema=palette_schema())
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError(f"{path}: not a readable Palette Parquet file ({exc})") from None
    return load_palette_jsonl(path)

QUERY_FIELDS = ("query", "prompt", "instruction", "question")

RESPONSE_FIELDS = ("response", "chosen", "output", "answer")

REJECTED_FIELDS = ("rejected_response", "rejected", "rejected_responses")

def _continent_from_name(name: str) -> str | None:
    lowered = name.lower()
    found = [c for c in CONTINENTS if c.lower() in lowered]
    return found[0] if len(found) == 1 else None

def _text_list(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [v for v in value if v.strip()]
    if isinstance(value, list) and all(isinstance(v, dict) for v in value):  # [{"continent":..., "response":...}]
        return [str(next((v[k] for k in RESPONSE_FIELDS if k in v), "")) for v in value]
    raise DataError(f"{where}: expected a string or a list of strings, got {type(value).__name__}")

def load_palette_jsonl(path: str | Path) -> Any:
    """Load Palette JSONL: one file or a folder of ``*.jsonl`` files (the published dataset has one
    per continent) into a :func:`palette_schema` table.

    Each record needs a query (``query``/``prompt``/``instruction``/``question``) and a chosen
    response (``response``/``chosen``/``output``/``answer``); ``rejected_response`` (or ``rejected``)
    may be a string or a list. The continent comes from a ``continent`` field or, failing that, the
    file name (``Asia.jsonl``, ``palette_asia_train.jsonl``). Malformed rows raise DataError naming the
    file, row and field.
    """
    import pyarrow as pa

    root = Path(path).expanduser()
    files = sorted(root.glob("*.jsonl")) if root.is_dir() else [root]
    if not files or not all(f.is_file() for f in files):
        raise DataError(f"{root}: no Palette JSONL file found")
    rows = []
    for file in files:
        default_continent = _continent_from_name(file.stem)
        for number, record in read_jsonl_objects(file):
            where = f"{file}: row {number}"
            query = next((record[k] for k in QUERY_FIELDS if k in record), None)
            response = next((record[k] for k in RESPONSE_FIELDS if k in record), None)
            for name, value, names in (("query", query, QUERY_FIELDS), ("response", response, RESPONSE_FIELDS)):
                if not isinstance(value, str) or not value.strip():
                    raise DataError(f"{where}, field {name!r}: missing or empty (name one of {', '.join(names)})")
            continent = record.get("continent") or default_continent
            wanted = continent.strip().lower() if isinstance(continent, str) else None
            match = next((c for c in CONTINENTS if c.lower() == wanted), None)
            if match is None:
                raise DataError(f"{where}, field 'continent': {continent!r} is not one of {', '.join(CONTINENTS)} "
                                "(and the file name names no single continent)")
            rejected_raw = next((record[k] for k in REJECTED_FIELDS if k in record), None)
            rejected = _text_list(rejected_raw, f"{where}, field 'rejected_response'")
            rows.append({"query": query, "continent": match, "response": response, "rejected_response": rejected,
                         "rejected_continents": _rejected_continents(record, len(rejected)),
                         "prompt_id": str(record["id"]) if "id" in record else None, "topic": record.get("topic"),
                         "source": str(file)})
    return pa.Table.from_pylist(rows, schema=palette_schema())

def _rejected_continents(record: dict[str, Any], count: int) -> list[str]:
    """The rejected responses' continents where the record names them (else an empty list)."""
    names = record.get("rejected_continents")
    if isinstance(names, list) and len(names) == count and all(isinstance(n, str) for n in names):
        return names
    return []

def palette_pairs(table: Any) -> Sequence[dict[str, Any]]:
    """(query, chosen, rejected) preference pairs from a Palette table: one per rejected response."""
    pairs = []
    for row in table.select(["query", "continent", "response", "rejected_response"]).to_pylist():
        for rejected in row["rejected_response"]:
            pairs.append({"query": row["query"], "continent": row["continent"], "chosen": row["response"],
                          "rejected": rejected})
    return pairs
