"""Streaming, atomic output of a stage's rows: ``OUT/dialogues/part-*.parquet`` (or ``.jsonl``).

Rows arrive in batches and are written in parts of ``rows_per_file`` rows; each part is written to a
hidden temporary name and renamed into place, so a crash never leaves a half-written part where a
reader (or ``--resume``) would see it. ``OUT/manifest.json`` records the run's parameters; a folder
holding another run is refused unless the caller resumes that run or overwrites it.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cultura.errors import CulturaError, DataError
from cultura.jsonl import read_jsonl_objects

MANIFEST = "manifest.json"
FORMATS = ("parquet", "jsonl")


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def part_files(folder: Path, fmt: str) -> list[Path]:
    """The finished part files of ``folder`` in ``fmt``, in name order."""
    return sorted(folder.glob(f"part-*.{fmt}")) if folder.is_dir() else []


class PartWriter:
    """Writes Arrow tables (of one schema) as numbered part files, ``rows_per_file`` rows each.

    Numbering continues after the parts already present, so a resumed run adds parts. ``on_file`` is
    called with each part's path once it is in place.
    """

    def __init__(self, folder: Path, schema: Any, fmt: str = "parquet", rows_per_file: int = 256,
                 on_file: Callable[[Path], None] | None = None):
        if fmt not in FORMATS:
            raise CulturaError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        self.folder, self.schema, self.fmt, self.rows_per_file = Path(folder), schema, fmt, rows_per_file
        self.folder.mkdir(parents=True, exist_ok=True)
        for stale in self.folder.glob(".part-*"):  # temporaries of a crashed run
            stale.unlink(missing_ok=True)
        existing = part_files(self.folder, fmt)
        self.next_index = 1 + max((int(p.stem.split("-")[1]) for p in existing), default=-1)
        self._pending: list[Any] = []
        self._pending_rows = 0
        self.rows_written = 0
        self.files: list[Path] = []
        self.on_file = on_file

    def add(self, table: Any) -> None:
        """Queue a table's rows; full parts are written at once."""
        if table.num_rows == 0:
            return
        self._pending.append(table.cast(self.schema))
        self._pending_rows += table.num_rows
        while self._pending_rows >= self.rows_per_file:
            self._write(self.rows_per_file)

    def close(self) -> None:
        """Write what is still queued as a last (smaller) part."""
        if self._pending_rows:
            self._write(self._pending_rows)

    def _write(self, n: int) -> None:
        import pyarrow as pa

        table = pa.concat_tables(self._pending)
        part, rest = table.slice(0, n), table.slice(n)
        self._pending, self._pending_rows = ([rest] if rest.num_rows else []), rest.num_rows
        path = self.folder / f"part-{self.next_index:05d}.{self.fmt}"
        tmp = self.folder / f".{path.name}.tmp-{os.getpid()}"
        if self.fmt == "parquet":
            import pyarrow.parquet as pq

            pq.write_table(part, tmp)
        else:
            with open(tmp, "w", encoding="utf-8") as fh:
                for row in part.to_pylist():
                    fh.write(json.dumps(row, ensure_ascii=False, default=_json_default) + "\n")
        os.replace(tmp, path)
        self.next_index += 1
        self.rows_written += part.num_rows
        self.files.append(path)
        if self.on_file is not None:
            self.on_file(path)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def read_parts(folder: Path, schema: Any, fmt: str = "parquet", columns: list[str] | None = None) -> Any:
    """Read every part of ``folder`` into one Arrow table with ``schema`` (optionally some columns)."""
    import pyarrow as pa

    tables = []
    for path in part_files(Path(folder), fmt):
        if fmt == "parquet":
            import pyarrow.parquet as pq

            try:
                tables.append(pq.read_table(path, columns=columns, schema=schema))
            except (pa.ArrowInvalid, OSError) as exc:
                raise DataError(f"{path}: not a readable Parquet part ({exc})") from None
        else:
            tables.append(_read_jsonl(path, schema, columns))
    if not tables:
        fields = [schema.field(c) for c in columns] if columns else schema
        return pa.schema(fields).empty_table()
    return pa.concat_tables(tables)


def _read_jsonl(path: Path, schema: Any, columns: list[str] | None) -> Any:
    import pyarrow as pa

    rows = []
    for _, row in read_jsonl_objects(path):
        for name in schema.names:
            if pa.types.is_timestamp(schema.field(name).type) and isinstance(row.get(name), str):
                row[name] = datetime.fromisoformat(row[name])
        rows.append(row)
    table = pa.Table.from_pylist(rows, schema=schema)
    return table.select(columns) if columns else table


class OutputFolder:
    """A stage's output folder: ``data`` (the parts) and ``manifest.json`` (the run's parameters)."""

    def __init__(self, root: str | os.PathLike, data: str, stage: str):
        self.root, self.stage = Path(root).expanduser(), stage
        self.data = self.root / data
        self.manifest_path = self.root / MANIFEST

    def manifest(self) -> dict[str, Any] | None:
        """The manifest, or None when there is none."""
        if not self.manifest_path.is_file():
            return None
        try:
            return json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DataError(f"{self.manifest_path}: not valid JSON ({exc.msg})") from None

    def prepare(self, params: Mapping[str, Any], resume: bool = False, overwrite: bool = False) -> bool:
        """Make the folder ready for a run with ``params``; return True when resuming earlier parts.

        An empty or missing folder starts fresh. A folder holding data needs ``resume`` (and the same
        parameters) or ``overwrite`` (which deletes this stage's parts and manifest only).
        """
        params = json.loads(json.dumps(dict(params)))
        if resume and overwrite:
            raise CulturaError("choose either --resume or --overwrite, not both")
        busy = self.root.exists() and any(self.root.iterdir())
        if self.root.exists() and not self.root.is_dir():
            raise CulturaError(f"{self.root} is a file, not a folder")
        resuming = False
        if busy and overwrite:
            shutil.rmtree(self.data, ignore_errors=True)
            self.manifest_path.unlink(missing_ok=True)
        elif busy:
            manifest = self.manifest()
            if manifest is None or manifest.get("stage") != self.stage:
                raise CulturaError(f"{self.root} is not empty and holds no {self.stage} run; "
                                   "choose another output folder or pass --overwrite")
            if not resume:
                raise CulturaError(f"{self.root} already holds a {self.stage} run; pass --resume to finish "
                                   "it or --overwrite to replace it")
            differ = [f"{k}: {manifest['params'].get(k)!r} there, {v!r} now"
                      for k, v in params.items() if manifest["params"].get(k) != v]
            if differ:
                raise CulturaError(f"{self.root} holds a {self.stage} run with other parameters ("
                                   + "; ".join(differ) + "); use the same parameters, or --overwrite")
            resuming = True
        self.root.mkdir(parents=True, exist_ok=True)
        self.data.mkdir(exist_ok=True)
        previous = (self.manifest() or {}) if resuming else {}
        self.write_manifest({"stage": self.stage, "params": params, "status": "running",
                             "created_at": previous.get("created_at", _now())})
        return resuming

    def write_manifest(self, fields: Mapping[str, Any]) -> None:
        """Update the manifest with ``fields`` (atomically)."""
        data = self.manifest() or {}
        data.update(json.loads(json.dumps(dict(fields), default=str)))
        data["updated_at"] = _now()
        atomic_write_text(self.manifest_path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")

