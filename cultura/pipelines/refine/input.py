"""Reading a generation run for refinement, with clear errors naming what is missing.

A generation run is ``IN/manifest.json`` (stage ``generate``) and ``IN/dialogues/part-*.parquet`` (or
``.jsonl``) in the dialogue schema of :mod:`cultura.pipelines.generate.schema`. Only the columns refinement
uses are read, so runs from older or newer generators work as long as those columns are there.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cultura.data.cultures import CULTUREPARK_CULTURES, culture_keys
from cultura.data.seed_files import load_seeds
from cultura.errors import CulturaError, DataError
from cultura.jsonl import read_jsonl_objects
from cultura.pipelines.generate.schema import dialogue_schema
from cultura.pipelines.writer import part_files

DIALOGUE_COLUMNS = ("dialogue_id", "seed_id", "seed_source", "seed_text", "seed_kind", "options", "culture",
                    "country", "attitude", "mode", "turns")
TURN_FIELDS = ("role", "text")  # what refinement needs of each turn (``culture`` too in multi mode)


def read_manifest(root: Path) -> dict[str, Any]:
    """The generation manifest of ``root``; a missing or foreign one is a DataError saying what is wrong."""
    path = root / "manifest.json"
    if not root.is_dir():
        raise DataError(f"input folder not found: {root}")
    if not path.is_file():
        raise DataError(f"{root} is not generation output: manifest.json is missing "
                        f"(create the input with `cultura generate --out {root}`)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("stage") != "generate":
        stage = manifest.get("stage") if isinstance(manifest, dict) else None
        raise DataError(f"{root} is not generation output: manifest.json names stage {stage!r}, not 'generate'")
    return manifest


def _check_parquet_schema(path: Path) -> None:
    """Raise DataError naming the columns (and turn fields) of ``path`` that are missing or mistyped."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{path}: not a readable Parquet file ({exc})") from None
    missing = [c for c in DIALOGUE_COLUMNS if c not in schema.names]
    if missing:
        raise DataError(f"{path}: not a dialogue table: missing column(s) {', '.join(missing)}")
    expected = dialogue_schema()
    for name in DIALOGUE_COLUMNS:
        got = schema.field(name).type
        if name == "turns":
            turn = got.value_type if pa.types.is_list(got) or pa.types.is_large_list(got) else None
            names = [turn.field(i).name for i in range(turn.num_fields)] if turn is not None and pa.types.is_struct(turn) else []
            lacking = [f for f in TURN_FIELDS if f not in names]
            if turn is None or lacking:
                raise DataError(f"{path}: column 'turns' must be a list of structs with fields "
                                f"{', '.join(TURN_FIELDS)}; lacking {', '.join(lacking) or 'the list'} (type {got})")
        elif not _compatible(got, expected.field(name)):
            raise DataError(f"{path}: column {name!r} has type {got}, expected {expected.field(name).type}")


def _compatible(got: Any, expected: Any) -> bool:
    """Whether a column of type ``got`` reads as the ``expected`` field (list item names and
    string widths aside; an all-null column fits a nullable field)."""
    import pyarrow as pa

    want = expected.type
    if pa.types.is_null(got):
        return expected.nullable
    if pa.types.is_list(want):
        return (pa.types.is_list(got) or pa.types.is_large_list(got)) and _compatible(got.value_type, want.value_field)
    if pa.types.is_string(want):
        return pa.types.is_string(got) or pa.types.is_large_string(got)
    return got == want


def _jsonl_rows(path: Path) -> list[dict[str, Any]]:
    rows = []
    for number, row in read_jsonl_objects(path, "a dialogue object"):
        missing = [c for c in DIALOGUE_COLUMNS if c not in row]
        if missing:
            raise DataError(f"{path}: row {number}: not a dialogue row: missing field(s) {', '.join(missing)}")
        turns = row["turns"]
        if not isinstance(turns, list) or not all(isinstance(t, dict) and all(f in t for f in TURN_FIELDS) for t in turns):
            raise DataError(f"{path}, line {number}, field 'turns': expected a list of objects with "
                            f"{', '.join(TURN_FIELDS)}")
        rows.append({c: row[c] for c in DIALOGUE_COLUMNS})
    return rows


def read_generation(path: str | Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The dialogue rows (refinement's columns only) and the manifest of a generation run.

    Raises DataError naming what is missing: the folder, ``manifest.json``, the part files, or the
    columns a part lacks.
    """
    import pyarrow.parquet as pq

    root = Path(path).expanduser()
    manifest = read_manifest(root)
    folder = root / "dialogues"
    parquet, jsonl = part_files(folder, "parquet"), part_files(folder, "jsonl")
    if not parquet and not jsonl:
        raise DataError(f"{root} is not generation output with dialogues: no dialogues/part-*.parquet or "
                        "part-*.jsonl files (the generation run wrote none yet)")
    rows: list[dict[str, Any]] = []
    for part in parquet:
        _check_parquet_schema(part)
        rows.extend(pq.read_table(part, columns=list(DIALOGUE_COLUMNS)).to_pylist())
    for part in jsonl:
        rows.extend(_jsonl_rows(part))
    return rows, manifest


def run_seeds(manifest: Mapping[str, Any]) -> tuple[list[Any], list[str], bool] | None:
    """(seeds, culture keys, pooled) of the generation run: the seeds it read, its cultures (the eight
    CulturePark cultures when the manifest does not list them), and whether attitudes were pooled;
    None when the seeds cannot be read again."""
    params = manifest.get("params") or {}
    try:
        seeds = load_seeds(params.get("seeds", "bundled"), sources=params.get("sources") or ("wvs", "pew"))
        cultures = culture_keys(params.get("cultures") or CULTUREPARK_CULTURES)
    except (CulturaError, OSError):
        return None
    return seeds, list(cultures), params.get("attitude") == "pooled"


def seed_attitudes(manifest: Mapping[str, Any]) -> dict[tuple[str, str], str]:
    """(seed id, culture) -> attitude from the seeds the generation run used; empty when unavailable.

    Multi-mode dialogues store no single attitude: each delegate culture's comes from here, for the
    run's cultures, from the same data the run used (primary country, or pooled; :func:`run_seeds`).
    """
    found = run_seeds(manifest)
    if found is None:
        return {}
    seeds, cultures, pooled = found
    answers = {(s.id, c): s.attitude(c, pooled) for s in seeds for c in cultures}
    return {key: answer for key, answer in answers.items() if answer is not None}
