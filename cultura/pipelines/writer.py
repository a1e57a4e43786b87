"""Streaming, atomic output of a stage's rows: ``OUT/dialogues/part-*.parquet`` (or ``.jsonl``).

Rows arrive in batches and are written in parts of ``rows_per_file`` rows; each part is written to a
hidden temporary name and renamed into place, so a crash never leaves a half-written part where a
reader (or ``--resume``) would see it. ``OUT/manifest.json`` records the run's parameters; a folder
holding another run is refused unless the caller resumes that run or overwrites it. ``OUT`` is a
local folder or any filesystem URI pyarrow understands (:class:`cultura.storage.Location`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

from cultura.errors import CulturaError, DataError
from cultura.jsonl import read_jsonl_objects
from cultura.storage import Location, location

MANIFEST = "manifest.json"
FORMATS = ("parquet", "jsonl")


def atomic_write_text(path: str | os.PathLike | Location, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    location(path).write_text(text)


def part_files(folder: str | os.PathLike | Location, fmt: str) -> list[Any]:
    """The finished part files of ``folder`` in ``fmt``, in name order (``Path`` objects for a local
    folder, :class:`~cultura.storage.Location` objects for a URI)."""
    loc = location(folder)
    parts = loc.glob(f"part-*.{fmt}")
    return [p.native for p in parts] if loc.is_local else parts


class PartWriter:
    """Writes Arrow tables (of one schema) as numbered part files, ``rows_per_file`` rows each.

    Numbering continues after the parts already present, so a resumed run adds parts. ``on_file`` is
    called with each part's path once it is in place.
    """

    def __init__(self, folder: str | os.PathLike | Location, schema: Any, fmt: str = "parquet",
                 rows_per_file: int = 256, on_file: Callable[[Any], None] | None = None):
        if fmt not in FORMATS:
            raise CulturaError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        self.folder, self.schema, self.fmt, self.rows_per_file = location(folder), schema, fmt, rows_per_file
        self.folder.mkdir()
        for stale in self.folder.glob(".part-*"):  # temporaries of a crashed run
            stale.delete()
        existing = self.folder.glob(f"part-*.{fmt}")
        self.next_index = 1 + max((int(p.name.split("-")[1].split(".")[0]) for p in existing), default=-1)
        self._pending: list[Any] = []
        self._pending_rows = 0
        self.rows_written = 0
        self.files: list[Any] = []  # Path objects for a local folder, Locations for a URI
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
        tmp = path.temporary()
        if self.fmt == "parquet":
            import pyarrow.parquet as pq

            pq.write_table(part, tmp.path, filesystem=tmp.fs)
        else:
            with tmp.fs.open_output_stream(tmp.path) as stream:
                for row in part.to_pylist():
                    stream.write((json.dumps(row, ensure_ascii=False, default=_json_default) + "\n").encode("utf-8"))
        path.replace(tmp)
        self.next_index += 1
        self.rows_written += part.num_rows
        written = path.native if self.folder.is_local else path
        self.files.append(written)
        if self.on_file is not None:
            self.on_file(written)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def read_parts(folder: str | os.PathLike | Location, schema: Any, fmt: str = "parquet",
               columns: list[str] | None = None) -> Any:
    """Read every part of ``folder`` into one Arrow table with ``schema`` (optionally some columns)."""
    import pyarrow as pa

    tables = []
    for path in location(folder).glob(f"part-*.{fmt}"):
        if fmt == "parquet":
            import pyarrow.parquet as pq

            try:
                tables.append(pq.read_table(path.path, filesystem=path.fs, columns=columns, schema=schema))
            except (pa.ArrowInvalid, OSError) as exc:
                raise DataError(f"{path}: not a readable Parquet part ({exc})") from None
        else:
            tables.append(_read_jsonl(path, schema, columns))
    if not tables:
        fields = [schema.field(c) for c in columns] if columns else schema
        return pa.schema(fields).empty_table()
    return pa.concat_tables(tables)


def _read_jsonl(path: Location, schema: Any, columns: list[str] | None) -> Any:
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
    """A stage's output folder: ``data`` (the parts) and ``manifest.json`` (the run's parameters).

    ``root`` is a local folder or a filesystem URI; :attr:`location` is it as a Location, :attr:`root`
    as a ``Path`` (local) or the URI.
    """

    def __init__(self, root: str | os.PathLike | Location, data: str, stage: str):
        self.location, self.stage = location(root), stage
        self.root = self.location.native
        self.data = self.location / data
        self.manifest_path = self.location / MANIFEST

    def manifest(self) -> dict[str, Any] | None:
        """The manifest, or None when there is none."""
        if not self.manifest_path.is_file():
            return None
        try:
            return json.loads(self.manifest_path.read_text())
        except json.JSONDecodeError as exc:
            raise DataError(f"{self.manifest_path}: not valid JSON ({exc.msg})") from None

    def check(self, params: Mapping[str, Any], resume: bool = False, overwrite: bool = False) -> bool:
        """Raise the error :meth:`prepare` would raise for a run with ``params``, touching nothing; return
        True when the run would resume. Cheap, so a stage calls it before starting Ray."""
        params = json.loads(json.dumps(dict(params)))
        if resume and overwrite:
            raise CulturaError("choose either --resume or --overwrite, not both")
        if self.location.is_file():
            raise CulturaError(f"{self.root} is a file, not a folder")
        if overwrite or not self.location.children():
            return False
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
        return True

    def prepare(self, params: Mapping[str, Any], resume: bool = False, overwrite: bool = False) -> bool:
        """Make the folder ready for a run with ``params``; return True when resuming earlier parts.

        An empty or missing folder starts fresh. A folder holding data needs ``resume`` (and the same
        parameters) or ``overwrite`` (which deletes this stage's parts and manifest only).
        """
        params = json.loads(json.dumps(dict(params)))
        resuming = self.check(params, resume, overwrite)
        if overwrite:  # deleting what is not there is a no-op
            self.data.delete()
            self.manifest_path.delete()
        self.data.mkdir()
        previous = (self.manifest() or {}) if resuming else {}
        self.write_manifest({"stage": self.stage, "params": params, "status": "running",
                             "created_at": previous.get("created_at", _now())})
        return resuming

    def write_manifest(self, fields: Mapping[str, Any]) -> None:
        """Update the manifest with ``fields`` (atomically)."""
        data = self.manifest() or {}
        data.update(json.loads(json.dumps(dict(fields), default=str)))
        data["updated_at"] = _now()
        self.manifest_path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")

