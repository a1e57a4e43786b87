"""Where inputs and outputs live: a local path, or any filesystem URI pyarrow understands.

``s3://bucket/runs/gen1``, ``gs://bucket/runs/gen1``, ``hdfs://...`` and ``file:///mnt/shared/runs/gen1``
(a folder mounted on every node) are accepted wherever a stage takes a path. Three ways to use one:

- :class:`Location`: a file or folder on a pyarrow filesystem, for streaming output (generation's part
  files and manifest are written through it, each file under a temporary name and then moved into place);
- :func:`fetch`: an input as a local path (a remote file or folder is copied into the cache once and
  refreshed when it changes), for loaders and libraries that read local files;
- :func:`staged_output`: an output folder as a local path; a remote one is mirrored into a local
  stage and copied back (deletions included) when the block ends, for stages that write their
  outputs at the end.

On a multi-node cluster a plain local path is on one machine's disk only: :func:`warn_if_local`
says so, naming the fix.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cultura.errors import ClusterWarning, CulturaError
from cultura.paths import cultura_home

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")


def is_uri(spec: str | os.PathLike) -> bool:
    """True for ``scheme://...`` (``file://`` included), False for a plain path."""
    return bool(_SCHEME.match(str(spec)))


def local_path(spec: str | os.PathLike) -> Path | None:
    """The local path ``spec`` names (a plain path, or a ``file://`` URI), or None for a remote URI."""
    text = str(spec)
    if not is_uri(text):
        return Path(text).expanduser()
    if text.lower().startswith("file://"):
        from urllib.parse import unquote, urlparse

        return Path(unquote(urlparse(text).path))
    return None


def display(spec: str | os.PathLike) -> str:
    """How to show ``spec`` to a user: the URI as given, or the absolute local path."""
    path = local_path(spec)
    return str(spec) if path is None or is_uri(spec) else str(path.resolve())


class Location:
    """A file or folder on a pyarrow filesystem (the local one for plain paths).

    ``uri`` is what the user gave (extended by ``/``); ``path`` is the filesystem's own path.
    """

    def __init__(self, spec: str | os.PathLike, _resolved: tuple[Any, str] | None = None):
        self.uri = str(spec)
        if _resolved is not None:
            self.fs, self.path = _resolved
            return
        import pyarrow.fs as pafs

        local = local_path(spec)
        if local is not None:
            self.fs, self.path = pafs.LocalFileSystem(), str(local.resolve())
            if not is_uri(spec):
                self.uri = self.path
            return
        try:
            self.fs, self.path = pafs.FileSystem.from_uri(self.uri)
        except Exception as exc:  # unknown scheme, missing credentials, a filesystem pyarrow was built without
            raise CulturaError(f"cannot open {self.uri}: {exc}") from None

    @property
    def is_local(self) -> bool:
        """True on the local filesystem (a plain path or ``file://``)."""
        return self.fs.type_name == "local"

    @property
    def native(self) -> Path | str:
        """A ``Path`` on the local filesystem, else the URI string."""
        return Path(self.path) if self.is_local else self.uri

    @property
    def name(self) -> str:
        """The last part of the path."""
        return self.path.rstrip("/").rsplit("/", 1)[-1]

    def __truediv__(self, part: str) -> Location:
        return Location(f"{self.uri.rstrip('/')}/{part}", (self.fs, f"{self.path.rstrip('/')}/{part}"))

    def __str__(self) -> str:
        return self.uri

    def __repr__(self) -> str:
        return f"Location({self.uri!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Location) and (self.fs.type_name, self.path) == (other.fs.type_name, other.path)

    def __hash__(self) -> int:
        return hash((self.fs.type_name, self.path))

    def _info(self) -> Any:
        return self.fs.get_file_info(self.path)

    def exists(self) -> bool:
        """True when a file or folder is there."""
        import pyarrow.fs as pafs

        return self._info().type != pafs.FileType.NotFound

    def is_dir(self) -> bool:
        """True for a folder."""
        import pyarrow.fs as pafs

        return self._info().type == pafs.FileType.Directory

    def is_file(self) -> bool:
        """True for a file."""
        import pyarrow.fs as pafs

        return self._info().type == pafs.FileType.File

    def mkdir(self) -> None:
        """Create the folder (and its parents)."""
        self.fs.create_dir(self.path, recursive=True)

    def children(self) -> list[Location]:
        """The files and folders directly inside this folder (none when it does not exist)."""
        import pyarrow.fs as pafs

        if not self.is_dir():
            return []
        infos = self.fs.get_file_info(pafs.FileSelector(self.path, recursive=False))
        return sorted((self / info.base_name for info in infos), key=lambda loc: loc.path)

    def glob(self, pattern: str) -> list[Location]:
        """The entries of this folder whose names match ``pattern`` (``fnmatch``), in name order."""
        import fnmatch

        return [c for c in self.children() if fnmatch.fnmatchcase(c.name, pattern)]

    def read_bytes(self) -> bytes:
        """The whole file."""
        with self.fs.open_input_stream(self.path) as stream:
            return stream.read()

    def read_text(self) -> str:
        """The whole file as UTF-8 text."""
        return self.read_bytes().decode("utf-8")

    def temporary(self) -> Location:
        """A hidden sibling name to write to before :meth:`replace` moves it here."""
        parent, _, name = self.path.rstrip("/").rpartition("/")
        tmp = f".{name}.tmp-{os.getpid()}"
        return Location(f"{self.uri.rstrip('/').rpartition('/')[0]}/{tmp}", (self.fs, f"{parent}/{tmp}"))

    def replace(self, source: Location) -> None:
        """Move ``source`` (on the same filesystem) here, replacing what is here."""
        self.fs.move(source.path, self.path)

    def write_bytes(self, data: bytes) -> None:
        """Write the file (its folder created if need be) through a temporary name and a move, so
        readers never see half of it."""
        parent = self.path.rstrip("/").rpartition("/")[0]
        if parent:
            self.fs.create_dir(parent, recursive=True)
        tmp = self.temporary()
        with self.fs.open_output_stream(tmp.path) as stream:
            stream.write(data)
        self.replace(tmp)

    def write_text(self, text: str) -> None:
        """Write UTF-8 text (see :meth:`write_bytes`)."""
        self.write_bytes(text.encode("utf-8"))

    def delete(self) -> None:
        """Delete the file or folder (nothing when it is not there)."""
        import pyarrow.fs as pafs

        kind = self._info().type
        if kind == pafs.FileType.Directory:
            self.fs.delete_dir(self.path)
        elif kind == pafs.FileType.File:
            self.fs.delete_file(self.path)


def location(where: str | os.PathLike | Location) -> Location:
    """``where`` as a :class:`Location` (a local path or a filesystem URI)."""
    return where if isinstance(where, Location) else Location(where)


def _remote_files(loc: Location) -> dict[str, tuple[int, int]]:
    """Relative path -> (size, mtime in ns) of every file under the folder ``loc`` (or of the file)."""
    import pyarrow.fs as pafs

    info = loc._info()
    if info.type == pafs.FileType.File:
        return {"": (info.size, info.mtime_ns or 0)}
    infos = loc.fs.get_file_info(pafs.FileSelector(loc.path, recursive=True))
    base = loc.path.rstrip("/") + "/"
    return {i.path[len(base):]: (i.size, i.mtime_ns or 0) for i in infos if i.type == pafs.FileType.File}


def _cache_folder(kind: str, uri: str) -> Path:
    return cultura_home() / kind / hashlib.sha1(uri.encode("utf-8")).hexdigest()[:16]


def fetch(spec: str | os.PathLike) -> Path:
    """A local path holding the input ``spec``: a plain path or ``file://`` URI as it is; a remote file
    or folder copied into ``$CULTURA_HOME/fetched/`` (only the files that changed since the last fetch).

    A remote input that is not there is a :class:`CulturaError` naming it.
    """
    local = local_path(spec)
    return local if local is not None else fetch_location(Location(spec))


def fetch_location(loc: Location) -> Path:
    """:func:`fetch` for a file or folder on any pyarrow filesystem: always copied into the cache."""
    if not loc.exists():
        raise CulturaError(f"{loc.uri}: not found")
    files = _remote_files(loc)
    root = _cache_folder("fetched", loc.uri)
    target = root / (loc.name or "data")
    record_path = root / "files.json"
    record = json.loads(record_path.read_text(encoding="utf-8")) if record_path.is_file() else {}
    if record.get("uri") != loc.uri or record.get("single") != ("" in files):
        shutil.rmtree(root, ignore_errors=True)
        record = {}
    seen = record.get("files", {})
    root.mkdir(parents=True, exist_ok=True)
    for rel, stamp in files.items():
        dest = target if rel == "" else target / rel
        if seen.get(rel) == list(stamp) and dest.is_file():
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        source = loc if rel == "" else loc / rel
        tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
        tmp.write_bytes(source.read_bytes())
        os.replace(tmp, dest)
    for rel in set(seen) - set(files):  # gone from the source: gone from the copy
        (target / rel).unlink(missing_ok=True)
    record = {"uri": loc.uri, "single": "" in files, "files": {k: list(v) for k, v in files.items()}}
    record_path.write_text(json.dumps(record), encoding="utf-8")
    return target


@contextlib.contextmanager
def staged_output(spec: str | os.PathLike, keep: tuple[str, ...] | None = None) -> Iterator[Path]:
    """A local folder standing for the output folder ``spec`` while the block runs.

    Local (a plain path or ``file://``): the folder itself. Remote: a stage in ``$CULTURA_HOME/staging/``
    that starts as a copy of the remote folder (only the files named in ``keep`` when given, e.g.
    ``("registry.json",)``), and whose files are copied back when the block ends, even when it fails
    (what was written stays visible), with the remote files the block deleted deleted there too.
    """
    local = local_path(spec)
    if local is not None:
        yield local
        return
    with stage_location(Location(spec), keep) as stage:
        yield stage


@contextlib.contextmanager
def stage_location(loc: Location, keep: tuple[str, ...] | None = None) -> Iterator[Path]:
    """:func:`staged_output` for a folder on any pyarrow filesystem: always staged and copied back."""
    stage = _cache_folder("staging", loc.uri) / (loc.name or "out")
    shutil.rmtree(stage.parent, ignore_errors=True)
    before = {rel: stamp for rel, stamp in (_remote_files(loc) if loc.exists() else {}).items()
              if rel and (keep is None or rel in keep)}
    for rel in before:
        dest = stage / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes((loc / rel).read_bytes())
    stage.mkdir(parents=True, exist_ok=True)
    try:
        yield stage
    finally:
        _publish(stage, loc, set(before))
        shutil.rmtree(stage.parent, ignore_errors=True)


def _publish(stage: Path, loc: Location, before: set[str]) -> None:
    """Copy every file of ``stage`` to ``loc``; delete there the files of ``before`` the stage lost."""
    now = {p.relative_to(stage).as_posix() for p in stage.rglob("*") if p.is_file()}
    loc.mkdir()
    for rel in sorted(now):
        (loc / rel).write_bytes((stage / rel).read_bytes())
    for rel in sorted(before - now):
        (loc / rel).delete()


def alive_nodes() -> int:
    """How many alive nodes the connected Ray cluster has (0 when Ray is not up)."""
    import ray

    if not ray.is_initialized():
        return 0
    return sum(1 for n in ray.nodes() if n.get("Alive"))


def warn_if_local(spec: str | os.PathLike | None, what: str) -> None:
    """Warn (:class:`~cultura.errors.ClusterWarning`) when ``spec`` is a plain local path and the
    connected Ray cluster has more than one node: only this machine's disk holds it."""
    import warnings

    if spec is None or is_uri(spec):
        return
    nodes = alive_nodes()
    if nodes > 1:
        warnings.warn(
            f"{what} {display(spec)} is a path on this machine's disk, but the Ray cluster has {nodes} nodes: "
            "work on another node (Ray Train workers, a later stage started elsewhere) cannot reach it. Give a "
            "URI every node reaches: s3://bucket/path, gs://bucket/path, or file:///path on a filesystem "
            "mounted at the same place on every node", ClusterWarning, stacklevel=2)
