"""A multi-node Ray cluster on one machine, every node on 127.0.0.1: for trying and testing cluster runs.

A head node with no CPUs (so no work lands beside the GCS and the dashboard, as on a real cluster)
and ``workers`` worker nodes, each with its own raylet and object store. Resources are logical: a
worker node may declare GPUs it does not have (``num_gpus: 1`` agents get placed, their engines run
on the CPU) or more CPUs than the machine. ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` keeps every node
on the loopback address; ``ray start`` refuses a second node under it, which is why the nodes are
started from one process with :class:`ray.cluster_utils.Cluster`.

    python -m cultura.local_cluster --workers 2 --cpus 3 --gpus 2
    cultura generate --address 127.0.0.1:PORT --profile cluster ...   # the printed address

The process holds the cluster until Ctrl-C or SIGTERM, then stops every node.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from typing import Any

from cultura.ray_utils import LOCAL_RAY_ENV


@dataclass
class LocalCluster:
    """A running loopback cluster: the :class:`ray.cluster_utils.Cluster` and its worker nodes in
    the order they were added (each a ``ray._private.node.Node``, whose ``node_id`` Ray reports)."""

    cluster: Any
    temp_dir: str
    workers: list[Any] = field(default_factory=list)
    worker_resources: dict[str, Any] = field(default_factory=dict)

    @property
    def address(self) -> str:
        """The GCS address drivers join (``--address``, ``ray.init(address=...)``)."""
        return self.cluster.address

    def add_worker(self) -> Any:
        """Start one more worker node with the same resources as the others; returns it once alive."""
        node = self.cluster.add_node(**self.worker_resources)
        self.workers.append(node)
        return node

    def remove_worker(self, node: Any) -> None:
        """Stop a worker node's raylet and every process on it, the way a lost machine goes."""
        self.cluster.remove_node(node, allow_graceful=False)
        self.workers.remove(node)

    def shutdown(self) -> None:
        """Stop every node and remove the cluster's temporary folder.

        Not ``Cluster.shutdown``: that also deletes ``/tmp/ray/ray_current_cluster``, which may name
        another Ray on this machine.
        """
        import shutil

        import ray

        for node in list(self.workers):
            self.remove_worker(node)
        if self.cluster.head_node is not None:
            self.cluster.remove_node(self.cluster.head_node)
        ray._private.services.find_gcs_addresses.cache_clear()
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def start_local_cluster(workers: int = 2, cpus: float = 3, gpus: float = 2, object_store_mb: int = 256,
                        dashboard: bool = True) -> LocalCluster:
    """Start a head node with no CPUs and ``workers`` worker nodes of ``cpus`` CPUs and ``gpus`` GPUs.

    Every process of the cluster inherits this process's environment plus the loopback settings of
    :data:`cultura.ray_utils.LOCAL_RAY_ENV` (set here before Ray is imported, as they must be). The
    cluster keeps its sessions in a temporary folder of its own, so a plain ``ray.init()`` elsewhere
    on this machine starts its own Ray instead of joining this one; join it by its address.
    """
    import shutil
    import tempfile

    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    for key, value in LOCAL_RAY_ENV.items():
        os.environ[key] = value
    from ray.cluster_utils import Cluster

    temp_dir = tempfile.mkdtemp(prefix="cultura-ray-")  # short: Ray's socket paths live under it
    os.makedirs(os.path.join(temp_dir, "ray"))  # Ray's layout under RAY_TMPDIR
    common = {"object_store_memory": object_store_mb * 1024 * 1024, "temp_dir": os.path.join(temp_dir, "ray")}
    head = {**common, "num_cpus": 0, "num_gpus": 0, "include_dashboard": dashboard, "dashboard_host": "127.0.0.1",
            "dashboard_port": free_port() if dashboard else None}
    previous = os.environ.get("RAY_TMPDIR")
    os.environ["RAY_TMPDIR"] = temp_dir  # where the head writes ray_current_cluster (not /tmp/ray)
    try:
        cluster = Cluster(initialize_head=True, head_node_args=head)
    except BaseException:
        shutil.rmtree(temp_dir, ignore_errors=True)
        raise
    finally:
        if previous is None:
            os.environ.pop("RAY_TMPDIR")
        else:
            os.environ["RAY_TMPDIR"] = previous
    local = LocalCluster(cluster, temp_dir, worker_resources={**common, "num_cpus": cpus, "num_gpus": gpus})
    try:
        for _ in range(workers):
            local.add_worker()
        cluster.wait_for_nodes()
    except BaseException:
        local.shutdown()
        raise
    return local


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (Ray's fixed dashboard port may be taken by another Ray here)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main(argv: list[str] | None = None) -> None:
    """Start the cluster, print its address and hold it until Ctrl-C or SIGTERM."""
    import signal
    import threading

    parser = argparse.ArgumentParser(prog="python -m cultura.local_cluster", description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2, help="worker nodes (default 2)")
    parser.add_argument("--cpus", type=float, default=3, help="logical CPUs per worker node (default 3)")
    parser.add_argument("--gpus", type=float, default=2, help="logical GPUs per worker node (default 2)")
    parser.add_argument("--object-store-mb", type=int, default=256, help="object store per node (default 256)")
    args = parser.parse_args(argv)
    if args.workers < 1 or args.cpus < 0 or args.gpus < 0 or args.object_store_mb < 78:
        parser.error("--workers must be >= 1, --cpus/--gpus >= 0, --object-store-mb >= 78")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    local = start_local_cluster(args.workers, args.cpus, args.gpus, args.object_store_mb)
    try:
        print(f"address {local.address}", flush=True)
        print(f"dashboard http://{local.cluster.webui_url}", flush=True)
        print(f"head: 0 CPUs; {args.workers} worker node(s): {args.cpus:g} CPUs, {args.gpus:g} GPUs each "
              "(logical); every node on 127.0.0.1", flush=True)
        print(f"join with --address {local.address}; Ctrl-C stops the cluster", file=sys.stderr, flush=True)
        stop.wait()
    finally:
        local.shutdown()


if __name__ == "__main__":
    main()
