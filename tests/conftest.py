"""Shared test fixtures: one local Ray per test session, the real default model."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest


@pytest.fixture(scope="session")
def ray_session():
    """A local Ray started once for the whole session (cold start takes ~10 s here)."""
    import ray

    from cultura.ray_utils import init_ray

    try:
        init_ray(num_cpus=2)
    except Exception:  # the dashboard can miss Ray's start-up timeout on a loaded machine: retry once
        ray.shutdown()
        init_ray(num_cpus=2)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def default_model_path():
    """The prepared default model folder (dequantized once into the cache)."""
    from cultura.models import prepare_default_model

    return prepare_default_model()
