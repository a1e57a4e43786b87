"""Typed configuration: a YAML file plus command-line overrides, validated with clear errors.

A configuration starts from a profile's defaults (``local`` for one small machine, ``cluster`` for a
GPU cluster), then the YAML file, then flags. The profiles differ in values only: every code path
runs under either. :mod:`.schema` holds the sections' models, :mod:`.load` the profiles and the loader.
"""

from cultura.config.load import PROFILES, format_validation_error, load_config, set_dotted
from cultura.config.schema import (
    ENGINE_CONFIGS,
    ENGINE_KINDS,
    CulturaConfig,
    CultureKeys,
    DataConfig,
    EngineConfig,
    EngineSettings,
    EvalConfig,
    FinetuneConfig,
    GenerateConfig,
    OpenAIEngineConfig,
    PaletteConfig,
    RayConfig,
    RefineConfig,
    Resources,
    SamplingConfig,
    Section,
    ServeAutoscaling,
    ServeConfig,
    ServeDeployment,
    TransformersEngineConfig,
    VllmEngineConfig,
    engine_config,
)

__all__ = ["ENGINE_CONFIGS", "ENGINE_KINDS", "PROFILES", "CulturaConfig", "CultureKeys", "DataConfig",
           "EngineConfig", "EngineSettings", "EvalConfig", "FinetuneConfig", "GenerateConfig", "OpenAIEngineConfig",
           "PaletteConfig", "RayConfig", "RefineConfig", "Resources", "SamplingConfig", "Section",
           "ServeAutoscaling", "ServeConfig", "ServeDeployment", "TransformersEngineConfig", "VllmEngineConfig",
           "engine_config", "format_validation_error", "load_config", "set_dotted"]
