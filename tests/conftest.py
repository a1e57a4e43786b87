"""Shared test fixtures: one local Ray and one Serve app per test session, the real default model."""

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


SERVE_API_KEY = "test-key-7f3a"
SERVE_TOKENS = 16  # max_tokens of the serve tests' requests


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
