"""Shared test fixtures: one local Ray per test session, the real default model."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from pathlib import Path

import pytest

CLUSTER_TESTS = Path(__file__).resolve().parent / "cluster"


def pytest_collection_modifyitems(config, items):
    """Mark the multi-node tests (``tests/cluster``) and skip them when other tests share the run: one
    pytest process holds one Ray connection, theirs is a multi-node cluster, the others' a local Ray."""
    cluster = [item for item in items if Path(item.path).resolve().is_relative_to(CLUSTER_TESTS)]
    for item in cluster:
        item.add_marker(pytest.mark.cluster)
    if cluster and len(cluster) < len(items):
        skip = pytest.mark.skip(reason="multi-node tests run in a pytest process of their own: "
                                       "python -m pytest tests/cluster")
        for item in cluster:
            item.add_marker(skip)


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
