"""Resolving LoRA adapter references (a registered name or a folder) to validated folders."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

from cultura.errors import CulturaError, UnknownNameError
from cultura.storage import fetch, is_uri

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


def validate_adapter_name(name: str) -> str:
    """Return ``name`` if it is a safe adapter name (letters, digits, ``_.-``; no path parts)."""
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        raise CulturaError(f"invalid adapter name {name!r}: use letters, digits, '_', '.', '-' (no '/' or '..')")
    return name


def check_adapter_folder(path: str | Path) -> Path:
    """Validate a PEFT LoRA folder: ``adapter_config.json`` plus safetensors weights (no pickles).

    ``path`` may be a filesystem URI (``s3://``, ``gs://``, ``file://``): the folder is fetched first.
    """
    folder = fetch(path).resolve()
    if not folder.is_dir():
        raise CulturaError(f"adapter folder not found: {folder}")
    config = folder / "adapter_config.json"
    if not config.is_file():
        raise CulturaError(f"{folder} is not a PEFT adapter folder (no adapter_config.json)")
    if not (folder / "adapter_model.safetensors").is_file():
        raise CulturaError(f"{folder} has no adapter_model.safetensors (only safetensors weights are loaded)")
    try:
        kind = json.loads(config.read_text(encoding="utf-8")).get("peft_type")
    except (ValueError, UnicodeDecodeError):
        raise CulturaError(f"{config} is not valid JSON") from None
    if kind != "LORA":
        raise CulturaError(f"{folder} holds a {kind} adapter; only LoRA adapters are supported")
    return folder


def resolve_adapter(ref: str, known: Mapping[str, str]) -> tuple[str, Path]:
    """Resolve ``ref`` to ``(name, folder)``.

    ``ref`` is either a name in ``known`` (name -> folder, e.g. from the adapter registry) or the
    path of an adapter folder, whose name is then the folder's resolved path.
    """
    if ref in known:
        return ref, check_adapter_folder(known[ref])
    if is_uri(ref):
        return ref, check_adapter_folder(ref)
    candidate = Path(ref).expanduser()
    if ("/" in ref or ref.startswith(".")) and candidate.exists():
        folder = check_adapter_folder(candidate)
        return str(folder), folder
    if "/" in ref or ".." in ref:
        raise CulturaError(f"adapter {ref!r} is not a registered name and no adapter folder is there")
    validate_adapter_name(ref)
    raise UnknownNameError("adapter", ref, known)
