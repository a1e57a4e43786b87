"""The adapter registry: ``<adapters folder>/registry.json``, one entry per trained LoRA adapter.

The file is plain JSON a user can read (``{"version": 1, "adapters": {name: entry}}``); an entry
records what the adapter is (culture or continent), what it was trained from (base model, dataset
path and content hash, the seed ids its rows came from, preset and hyper-parameters), how well (train loss, evaluation loss before and
after training) and where it lies (``path``, relative to the registry folder when inside it).
Writers hold a file lock and replace the file atomically, so concurrent training runs never lose
each other's entries. Engines resolve adapter names through :func:`known_adapters`.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from cultura.adapters import resolve_adapter, validate_adapter_name
from cultura.errors import CulturaError, DataError
from cultura.storage import fetch

REGISTRY_FILE = "registry.json"
VERSION = 1
ADAPTER_KINDS = ("culture", "continent")


@dataclass(frozen=True)
class AdapterEntry:
    """One registered adapter. ``path`` is absolute once loaded."""

    name: str
    kind: str  # culture | continent
    target: str  # the culture key or continent name the adapter speaks for
    base_model: str  # the model name as configured (``default`` = the embedded SmolLM2)
    base_model_path: str  # what that name resolved to when training
    data_path: str
    data_sha256: str
    preset: str
    train_loss: float | None
    eval_loss_before: float
    eval_loss: float
    train_rows: int
    eval_rows: int
    steps: int
    created: str  # ISO 8601, UTC
    path: str
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    run: str | None = None  # the Ray Train run folder holding the checkpoints
    # the seeds the training rows came from; None when the data did not say (overlap cannot be ruled out)
    seed_ids: list[str] | None = None

    def row(self) -> dict[str, Any]:
        """The fields ``cultura adapters list`` shows."""
        return {"name": self.name, "kind": self.kind, "target": self.target, "base_model": self.base_model,
                "preset": self.preset, "rows": self.train_rows + self.eval_rows,
                "eval_before": self.eval_loss_before, "eval_after": self.eval_loss,
                "train_loss": self.train_loss, "seeds": "-" if self.seed_ids is None else len(self.seed_ids),
                "created": self.created[:19], "path": self.path}


_REQUIRED = [f.name for f in fields(AdapterEntry) if f.name not in ("hyperparameters", "run", "seed_ids")]


def registry_path(folder: str | Path) -> Path:
    """``folder/registry.json``."""
    return Path(folder).expanduser() / REGISTRY_FILE


def _read(folder: Path) -> dict[str, dict[str, Any]]:
    path = registry_path(folder)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from None
    adapters = data.get("adapters") if isinstance(data, dict) else None
    if not isinstance(adapters, dict):
        raise DataError(f"{path}: field 'adapters': expected an object name -> entry")
    return adapters


def _entry(folder: Path, name: str, raw: Any) -> AdapterEntry:
    where = f"{registry_path(folder)}, adapter {name!r}"
    if not isinstance(raw, dict):
        raise DataError(f"{where}: expected an object")
    missing = [k for k in _REQUIRED if k not in raw]
    if missing:
        raise DataError(f"{where}: missing fields {', '.join(missing)}")
    if raw["kind"] not in ADAPTER_KINDS:
        raise DataError(f"{where}, field 'kind': must be one of {', '.join(ADAPTER_KINDS)}, got {raw['kind']!r}")
    seeds = raw.get("seed_ids")
    if seeds is not None and (not isinstance(seeds, list) or not all(isinstance(s, str) for s in seeds)):
        raise DataError(f"{where}, field 'seed_ids': expected a list of seed ids or null")
    known = {f.name for f in fields(AdapterEntry)}
    values = {k: v for k, v in raw.items() if k in known}
    path = Path(values["path"]).expanduser()
    values["path"] = str(path if path.is_absolute() else (folder / path).resolve())
    return AdapterEntry(**values)


def load_registry(folder: str | Path) -> dict[str, AdapterEntry]:
    """Adapter name -> :class:`AdapterEntry` from ``folder/registry.json`` ({} when there is none yet).

    ``folder`` may be a filesystem URI (then it is fetched, adapters included). A missing folder or a
    malformed file is a clear error naming it.
    """
    try:
        root = fetch(folder)  # a remote registry (registry.json and its adapters) is copied here
    except CulturaError:
        raise CulturaError(f"adapter registry folder not found: {folder}") from None
    if not root.is_dir():
        raise CulturaError(f"adapter registry folder not found: {root}")
    root = root.resolve()
    return {name: _entry(root, name, raw) for name, raw in sorted(_read(root).items())}


def register_adapter(folder: str | Path, entry: AdapterEntry) -> Path:
    """Add or replace ``entry`` in ``folder/registry.json`` (under a file lock, written atomically).

    ``entry.path`` is stored relative to ``folder`` when it lies inside it, so the folder can be
    moved or copied to another machine. Returns the registry file's path.
    """
    from filelock import FileLock

    validate_adapter_name(entry.name)
    root = Path(folder).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    path = registry_path(root)
    record = asdict(entry)
    adapter_dir = Path(entry.path).expanduser().resolve()
    if adapter_dir.is_relative_to(root):
        record["path"] = str(adapter_dir.relative_to(root))
    with FileLock(str(root / f".{REGISTRY_FILE}.lock"), timeout=60):
        adapters = _read(root)
        adapters[entry.name] = record
        text = json.dumps({"version": VERSION, "adapters": dict(sorted(adapters.items()))}, indent=2) + "\n"
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    return path


def known_adapters(engine_config: Any) -> dict[str, str]:
    """Adapter name -> folder for an engine: the registry's entries (``engine_config.adapter_registry``)
    overlaid with the explicitly configured ``engine_config.adapters``."""
    adapters: dict[str, str] = {}
    registry = getattr(engine_config, "adapter_registry", None)
    if registry:
        adapters.update({name: e.path for name, e in load_registry(registry).items()})
    adapters.update(getattr(engine_config, "adapters", None) or {})
    return adapters


def check_adapter_ref(ref: str, engine_config: Any) -> None:
    """Refuse an adapter reference a local engine cannot load, before any model or Ray starts.

    The openai engine is skipped: there an adapter is a model name the remote server decides about.
    """
    if getattr(engine_config, "kind", None) == "openai":
        return
    resolve_adapter(ref, known_adapters(engine_config))
