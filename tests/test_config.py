"""Configuration: profiles, YAML files and overrides, and errors that name the field."""

from __future__ import annotations

import pytest

from cultura.config import load_config
from cultura.errors import ConfigError


def test_defaults_are_the_local_profile():
    cfg = load_config()
    assert cfg.profile == "local" and cfg.placement == "shared"
    assert cfg.engine.kind == "transformers" and cfg.engine.model == "default"
    assert cfg.ray.dashboard_host == "127.0.0.1"


def test_cluster_profile_changes_values_only():
    cfg = load_config(overrides={"profile": "cluster"})
    assert cfg.placement == "dedicated" and cfg.engine.kind == "vllm" and cfg.agent_resources.num_gpus == 1


def test_another_engine_kind_under_a_profile_drops_only_the_profiles_settings_of_its_kind(tmp_path):
    cfg = load_config(overrides={"profile": "cluster", "engine.kind": "transformers"})
    assert cfg.engine.kind == "transformers" and cfg.engine.dtype == "bfloat16"  # shared settings stay
    path = tmp_path / "c.yaml"
    path.write_text("profile: cluster\nengine:\n  kind: transformers\n  max_model_len: 1024\n")
    with pytest.raises(ConfigError, match="engine.max_model_len: unknown field for engine.kind 'transformers'"):
        load_config(path)  # the user's own setting of another kind is still an error


def test_yaml_file_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("engine:\n  kind: openai\n  base_url: http://127.0.0.1:9/v1\nsampling:\n  max_tokens: 32\n")
    cfg = load_config(path, {"sampling.max_tokens": 64, "engine.model": None})
    assert cfg.engine.kind == "openai" and cfg.sampling.max_tokens == 64 and cfg.engine.model == "default"


@pytest.mark.parametrize(
    ("yaml_text", "field", "hint"),
    [
        ("engine:\n  kind: llamacpp\n", "engine.kind", "transformers"),
        ("placement: everywhere\n", "placement", "shared"),
        ("sampling:\n  temperature: -1\n", "sampling.temperature", "greater than or equal"),
        ("sampling:\n  repetition_penalty: 0\n", "sampling.repetition_penalty", "greater than 0"),
        ("engine:\n  max_batch_size: 0\n", "engine.max_batch_size", "greater than or equal"),
        ("enigne:\n  kind: vllm\n", "enigne", "unknown field"),
        ("engine:\n  kind: vllm\n  packed_linear: false\n", "engine.packed_linear",
         "unknown field for engine.kind 'vllm'"),
        ("engine:\n  kind: openai\n  max_model_len: 4096\n", "engine.max_model_len", "unknown field"),
        ("profile: huge\n", "profile", "local"),
    ],
)
def test_invalid_values_name_the_field(tmp_path, yaml_text, field, hint):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert field in str(err.value) and hint in str(err.value)


def test_each_engine_kind_has_its_own_settings_class():
    from cultura.config import ENGINE_CONFIGS, OpenAIEngineConfig, VllmEngineConfig, engine_config
    from cultura.engines import ENGINE_KINDS

    assert set(ENGINE_CONFIGS) == set(ENGINE_KINDS) == {"transformers", "vllm", "openai"}
    vllm = load_config(overrides={"engine.kind": "vllm", "engine.max_loras": 2}).engine
    assert isinstance(vllm, VllmEngineConfig) and vllm.max_loras == 2 and not hasattr(vllm, "packed_linear")
    assert vllm.engine_class == "cultura.engines.vllm.engine:VllmEngine"
    assert vllm.threads(3) == 3 and vllm.model_copy(update={"num_threads": 1}).threads(3) == 1
    remote = engine_config(kind="openai", base_url="http://127.0.0.1:9/v1")
    assert isinstance(remote, OpenAIEngineConfig) and remote.threads(3) == 3  # no threads of its own to set
    assert type(engine_config()).__name__ == "TransformersEngineConfig"


@pytest.mark.parametrize("content", ["engine: [unclosed\n", "- just\n- a list\n", b"\xff\xfe\x00bad"])
def test_unreadable_files_are_clear_errors(tmp_path, content):
    path = tmp_path / "bad.yaml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(ConfigError):
        load_config(path)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_the_readme_configuration_example_loads(tmp_path):
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    example = next(block for block in re.findall(r"```yaml\n(.*?)```", readme, re.S) if block.startswith("profile:"))
    path = tmp_path / "example.yaml"
    path.write_text(example)
    cfg = load_config(path)
    assert cfg.engine.kind == "transformers" and cfg.engine.prefix_cache_mb == 2048 and cfg.serve.max_tokens_limit == 1024
