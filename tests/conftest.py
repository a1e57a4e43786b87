"""Shared test fixtures: one local Ray and one Serve app per test session, the real default model."""

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
    """Run the tests of the session's Serve app last, so the CPUs its replicas hold starve no other
    test; mark the multi-node tests (``tests/cluster``) and skip them when other tests share the run:
    one pytest process holds one Ray connection, theirs is a multi-node cluster, the others' a local Ray."""
    items.sort(key=lambda item: "serve_app" in getattr(item, "fixturenames", ()))  # stable: order kept otherwise
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


from serve_settings import SERVE_API_KEY, SERVE_TOKENS  # noqa: E402  (tests/ is on sys.path beside conftest)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def serve_app(ray_session):
    """The Serve app every serve test file shares (started on first use, removed at the end of the
    session): (config, base URL of the OpenAI API). Loopback only, an API key, small limits."""
    from ray import serve

    from cultura.config import load_config
    from cultura.serve.app import start

    fast_scaling = {"min_replicas": 1, "max_replicas": 2, "initial_replicas": 1, "target_ongoing_requests": 1,
                    "upscale_delay_s": 0.5, "downscale_delay_s": 2, "look_back_period_s": 1.5}
    config = load_config(None, {
        "engine_resources.num_cpus": 1, "sampling.max_tokens": SERVE_TOKENS, "palette.max_tokens": SERVE_TOKENS,
        "serve.port": _free_port(), "serve.app_name": "cultura-test", "serve.api_key": SERVE_API_KEY,
        "serve.metrics_push_interval_s": 0.5, "serve.health_check_period_s": 2,
        "serve.max_prompt_chars": 4000, "serve.max_prompt_tokens": 600, "serve.max_messages": 64,
        "serve.max_tokens_limit": 256, "serve.culture.autoscaling": fast_scaling,
    })
    url = start(config)
    yield config, url
    serve.delete(config.serve.app_name)
    serve.shutdown()
