"""Loading a configuration: a profile's defaults, then the YAML file, then dotted overrides (the
command-line flags), validated once with an error line per invalid field."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from cultura.config.schema import ENGINE_CONFIGS, ENGINE_KINDS, CulturaConfig
from cultura.errors import ConfigError

PROFILES: dict[str, dict[str, Any]] = {
    "local": {},
    "cluster": {
        "placement": "dedicated",
        "engine": {"kind": "vllm", "model": "Qwen/Qwen2.5-7B-Instruct", "dtype": "bfloat16", "max_model_len": 4096},
        "agent_resources": {"num_cpus": 1, "num_gpus": 1},
        "engine_resources": {"num_cpus": 4, "num_gpus": 1},
        "ray": {"address": "auto", "object_store_memory_mb": 8192},
    },
}


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _profile_for(profile: dict[str, Any], tree: dict[str, Any]) -> dict[str, Any]:
    """The profile's defaults that apply to ``tree``: when the user picks another engine kind than the
    profile's, the profile's engine settings that kind does not have are dropped (``--profile cluster
    --engine-kind transformers`` must not inherit vLLM's max_model_len); the user's own never are."""
    engine, section = profile.get("engine"), tree.get("engine")
    chosen = section.get("kind") if isinstance(section, dict) else None
    if not engine or chosen is None or chosen == engine.get("kind") or chosen not in ENGINE_CONFIGS:
        return profile
    fields = ENGINE_CONFIGS[chosen].model_fields
    return {**profile, "engine": {k: v for k, v in engine.items() if k in fields}}


def format_validation_error(err: ValidationError, source: str) -> str:
    """A pydantic error as cultura shows it: one line per invalid field (dotted path: message), with
    ``source`` (the file or 'overrides') named on the first line."""
    lines = [f"invalid configuration ({source}):"]
    for e in err.errors():
        parts = [str(p) for p in e["loc"]]
        kind = ""
        if len(parts) > 2 and parts[-3:-2] == ["engine"] and parts[-2] in ENGINE_KINDS:
            kind = parts.pop(-2)  # the engine settings' union puts the kind in the path: engine.vllm.max_loras
        where = ".".join(parts) or "(root)"
        msg = e["msg"]
        if e["type"] == "literal_error":
            msg = f"must be one of {e['ctx']['expected']}, got {e['input']!r}"
        elif e["type"] == "union_tag_invalid":
            where, msg = f"{where}.kind", f"must be one of {e['ctx']['expected_tags']}, got {e['ctx']['tag']!r}"
        elif e["type"] == "extra_forbidden":
            msg = f"unknown field{f' for engine.kind {kind!r}' if kind else ''}"
        elif e["type"] == "value_error":
            msg = msg.removeprefix("Value error, ")
        lines.append(f"  {where}: {msg}")
    return "\n".join(lines)


def set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``tree["a"]["b"] = value`` for ``dotted == "a.b"``, creating sections as needed."""
    *parents, leaf = dotted.split(".")
    node = tree
    for p in parents:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{dotted}: {p} is not a section")
    node[leaf] = value


def load_config(path: str | os.PathLike | None = None, overrides: dict[str, Any] | None = None) -> CulturaConfig:
    """Build the configuration from the profile, an optional YAML file, and dotted overrides.

    ``overrides`` maps dotted field names (``"engine.kind"``) to values; ``None`` values are skipped
    so unset CLI flags leave the file's values alone. Raises :class:`ConfigError` naming each bad field.
    """
    import yaml

    data: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            loaded = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {p} is not valid YAML: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {p} must hold a mapping at the top level")
        data, source = loaded, str(p)
    tree = dict(data)
    for dotted, value in (overrides or {}).items():
        if value is not None:
            set_dotted(tree, dotted, value)
    profile = tree.get("profile", "local")
    if profile not in PROFILES:
        raise ConfigError(f"invalid configuration ({source}):\n  profile: must be one of {tuple(PROFILES)}, got {profile!r}")
    tree = _deep_merge(_profile_for(PROFILES[profile], tree), tree)
    try:
        return CulturaConfig.model_validate(tree)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source)) from None
