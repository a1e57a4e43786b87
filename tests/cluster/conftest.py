"""The multi-node session: one loopback Ray cluster for every test here, joined by this process.

A head node with no CPUs and two worker nodes of 4 logical CPUs and 3 logical GPUs each, every node
on 127.0.0.1 (:mod:`cultura.local_cluster`). The CLI runs join it with ``--address``. One pytest
process holds one Ray connection, and the main suite's shares one local Ray, so these tests run in a
pytest invocation of their own: ``python -m pytest tests/cluster`` (``make test`` does).

Tests that remove a worker node leave it removed; the ``workers`` fixture brings the cluster back to
two workers before the next test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import pytest

WORKERS, WORKER_CPUS, WORKER_GPUS = 2, 4, 3


@dataclass
class ClusterSession:
    """The running cluster and this process's connection to it."""

    local: Any  # cultura.local_cluster.LocalCluster

    @property
    def address(self) -> str:
        """What ``--address`` takes."""
        return self.local.address

    def worker_ids(self) -> list[str]:
        """Node ids of the worker nodes alive now."""
        return [node.node_id for node in self.local.workers]

    def remove_worker(self, node_id: str) -> None:
        """Stop the worker node ``node_id`` (raylet and every process on it)."""
        self.local.remove_worker(next(n for n in self.local.workers if n.node_id == node_id))

    def cli(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        """Run ``cultura ARGS`` in a new process against the cluster (``--address`` is added)."""
        return subprocess.run([sys.executable, "-m", "cultura.cli", *args, "--address", self.address],
                              capture_output=True, text=True, timeout=timeout, env=dict(os.environ))


@pytest.fixture(scope="session")
def cluster():
    """Start the loopback cluster once and join it; stop both at the end of the session."""
    import ray

    from cultura.local_cluster import start_local_cluster
    from cultura.ray_utils import init_ray

    try:
        local = start_local_cluster(WORKERS, WORKER_CPUS, WORKER_GPUS, object_store_mb=200, dashboard=False)
    except Exception:  # a raylet can miss Ray's 30 s start-up wait on a loaded machine: retry once
        local = start_local_cluster(WORKERS, WORKER_CPUS, WORKER_GPUS, object_store_mb=200, dashboard=False)
    try:
        init_ray(address=local.address)
        yield ClusterSession(local)
    finally:
        ray.shutdown()
        local.shutdown()


@pytest.fixture
def workers(cluster) -> list[str]:
    """The cluster with two alive worker nodes (one added back if a test removed one); their node ids."""
    import time

    import ray

    while len(cluster.local.workers) < WORKERS:
        cluster.local.add_worker()
    deadline = time.monotonic() + 60
    wanted = set(cluster.worker_ids())
    while not wanted <= {n["NodeID"] for n in ray.nodes() if n["Alive"]}:
        if time.monotonic() > deadline:
            raise TimeoutError("the worker nodes did not join the cluster")
        time.sleep(0.5)
    return cluster.worker_ids()
