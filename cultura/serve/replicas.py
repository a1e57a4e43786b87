"""A running Serve app's replicas: their actor names, nodes and states, killing one, waiting for its successor.

Used by the fault tests and ``bench/serve.py --load``; an operator can call the same functions
from a Python shell attached to the cluster.
"""

from __future__ import annotations

import time

from cultura.ray_utils import actor_nodes


def replica_actor_names(app_name: str, deployment: str) -> list[str]:
    """Names of the deployment's live replica actors (``SERVE_REPLICA::<app>#<deployment>#<id>``)."""
    import ray

    prefix = f"SERVE_REPLICA::{app_name}#{deployment}#"
    return sorted(a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                  if a["namespace"] == "serve" and a["name"].startswith(prefix))


def replica_nodes(app_name: str, deployment: str) -> dict[str, str]:
    """Replica actor name -> the Ray node id it runs on, for the deployment's live replicas."""
    return actor_nodes(f"SERVE_REPLICA::{app_name}#{deployment}#")


def replica_states(app_name: str, deployment: str) -> dict[str, int]:
    """How many of the deployment's replicas are in each state (``RUNNING``, ``STARTING``, ...)."""
    from ray import serve

    return dict(serve.status().applications[app_name].deployments[deployment].replica_states)


def kill_replica(app_name: str, deployment: str, name: str | None = None) -> str:
    """Kill one replica actor of ``deployment`` (``name``, or the first) the way a crash would; return its name."""
    import ray

    names = replica_actor_names(app_name, deployment)
    if not names:
        raise RuntimeError(f"{deployment} has no replica to kill")
    victim = name or names[0]
    ray.kill(ray.get_actor(victim, namespace="serve"), no_restart=True)
    return victim


def wait_for_replacement(app_name: str, deployment: str, replaced: str, want: int = 1,
                         timeout: float = 120.0) -> float | None:
    """Seconds until ``want`` replicas other than ``replaced`` are RUNNING; None if not within ``timeout``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        names = replica_actor_names(app_name, deployment)
        if replaced not in names and len(names) >= want and replica_states(app_name, deployment).get("RUNNING", 0) >= want:
            return time.monotonic() - start
        time.sleep(0.1)
    return None
