"""Starting or joining Ray with the settings cultura needs (loopback listeners, no token auth locally)."""

from __future__ import annotations

import os
from typing import Any

from cultura.console import quiet_ray
from cultura.errors import CulturaError

# Ray's token auth (on by default in 2.60) breaks `ray status`, `serve status` and the dashboard API
# for a local cluster; loopback-only listeners keep a local cluster off the network.
LOCAL_RAY_ENV = {
    "RAY_AUTH_MODE": "disabled",
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
}
# Busy-waiting OpenMP threads slowed generation 6-10x on a shared 2-core machine; set before torch loads.
THREAD_ENV = {
    "OMP_WAIT_POLICY": "PASSIVE",
    "TOKENIZERS_PARALLELISM": "false",
}
# What every worker process needs: offline model loading and polite OpenMP threads.
WORKER_ENV = {"HF_HUB_OFFLINE": "1", **THREAD_ENV}


def polite_threads() -> None:
    """Give this process :data:`THREAD_ENV` where the user set nothing else: for the CLI and for an
    engine built in the calling process (``import cultura`` itself changes no environment)."""
    for key, value in THREAD_ENV.items():
        os.environ.setdefault(key, value)


def worker_env() -> dict[str, str]:
    """Environment variables passed to every Ray worker (plus CULTURA_HOME when set)."""
    env = dict(WORKER_ENV)
    for key in ("CULTURA_HOME", "HF_HOME"):
        if os.environ.get(key):
            env[key] = os.environ[key]
    return env


def init_ray(config: Any | None = None, address: str | None = None, **kwargs: Any) -> None:
    """Connect to Ray once per process: ``address`` (or ``config.ray.address``), else start locally.

    A local Ray gets a small object store, its dashboard on 127.0.0.1 and the worker environment
    above. Calling it again when Ray is already up does nothing but keep Ray's console chatter
    quiet when the CLI asks for that (:mod:`cultura.console`).
    """
    import ray

    quiet_ray()  # before ray.init, which announces itself
    if ray.is_initialized():
        return
    for key, value in LOCAL_RAY_ENV.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    ray_cfg = getattr(config, "ray", None)
    address = address or (ray_cfg.address if ray_cfg else None) or os.environ.get("RAY_ADDRESS")
    namespace = ray_cfg.namespace if ray_cfg else "cultura"
    options: dict[str, Any] = {"namespace": namespace, "runtime_env": {"env_vars": worker_env()}, "log_to_driver": False}
    if address:
        options["address"] = address
    else:
        # "local" always starts a Ray of our own: a bare ray.init() would join any cluster that
        # `ray start` left on this machine (/tmp/ray/ray_current_cluster), with other settings.
        options["address"] = "local"
        store_mb = ray_cfg.object_store_memory_mb if ray_cfg else 512
        options["object_store_memory"] = store_mb * 1024 * 1024
        options["include_dashboard"] = ray_cfg.include_dashboard if ray_cfg else True
        options["dashboard_host"] = ray_cfg.dashboard_host if ray_cfg else "127.0.0.1"
    options.update(kwargs)
    try:
        context = ray.init(**options)
    except Exception as exc:  # Ray raises bare Exception for start-up timeouts and missing clusters
        ray.shutdown()
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        raise CulturaError(f"could not start or join {where}: {exc}") from exc
    quiet_ray(context.address_info.get("session_dir"))


def actors_that_fit(wanted: int, num_cpus: float) -> int:
    """How many of ``wanted`` actors of ``num_cpus`` CPUs each the cluster's free CPUs hold now (at least 1).

    A fixed-size actor pool larger than what fits waits for CPUs that another actor (an engine
    kept alive by the caller) holds; a smaller pool starts at once.
    """
    import ray

    if num_cpus <= 0:
        return max(1, wanted)
    free = ray.available_resources().get("CPU", 0.0)
    return max(1, min(wanted, int(free // num_cpus + 1e-9)))


def actor_nodes(name_prefix: str) -> dict[str, str]:
    """Name -> Ray node id of every live named actor whose name starts with ``name_prefix``, read from
    the GCS (no dashboard needed)."""
    import ray._private.state

    return {info["Name"]: info["Address"]["NodeID"] for info in ray._private.state.actors().values()
            if info.get("State") == "ALIVE" and (info.get("Name") or "").startswith(name_prefix)}
