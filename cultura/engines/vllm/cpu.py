"""vLLM on CPU: the CPUs this process may use, how vLLM's OpenMP threads are bound to them, the KV
cache size for a small machine, and the layers LoRA may wrap there."""

from __future__ import annotations

import os
from collections.abc import Sequence

from cultura.errors import CulturaError

CPU_KVCACHE_GIB = "2"
# decoder linear layers LoRA may target on CPU (vLLM maps q/k/v and gate/up onto its packed layers)
CPU_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def available_cpu_ids() -> list[int]:
    """The CPU ids this process may run on (respects affinity masks and Ray's CPU pinning)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return list(range(os.cpu_count() or 1))


def cpu_bind_spec(cpu_ids: Sequence[int], ranks: int = 1) -> str:
    """``VLLM_CPU_OMP_THREADS_BIND`` for ``ranks`` tensor-parallel workers over ``cpu_ids``.

    The CPUs are split into ``ranks`` contiguous groups, written ``"0,1|2,3"``.
    """
    ids = list(cpu_ids)
    if ranks < 1 or len(ids) < ranks:
        raise CulturaError(f"tensor_parallel_size {ranks} needs at least {ranks} CPUs; {len(ids)} available")
    per = len(ids) // ranks
    groups = [ids[i * per:(i + 1) * per] for i in range(ranks)]
    return "|".join(",".join(str(c) for c in g) for g in groups)
