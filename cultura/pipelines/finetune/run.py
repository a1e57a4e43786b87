"""``cultura finetune``: one LoRA adapter per culture (or continent), each trained as a Ray Train run.

For every adapter, a ``ray.train.torch.TorchTrainer`` runs a Hugging Face ``Trainer`` on a peft LoRA
model of the configured base model (:mod:`cultura.pipelines.finetune.lora_train`) on ``workers`` workers.
The trainer evaluates first (the loss before training), then trains, evaluating and checkpointing
``evaluations`` times; ``RayTrainReportCallback`` hands each checkpoint to Ray Train, which keeps
the best (lowest ``eval_loss``) and the latest under ``storage_path`` (a local folder, or a cloud
URI on a cluster). The best checkpoint's adapter (``save_pretrained`` safetensors) is copied to
``OUT/<name>/`` and recorded in ``OUT/registry.json`` (:mod:`cultura.registry`).

Several adapters train at once when the cluster has the resources for several runs
(``workers * cpus_per_worker`` CPUs, or ``workers`` GPUs, per run). Everything that can be wrong
with the input (missing, empty or malformed data, unsafe names, impossible resources) is reported
before any worker starts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cultura.errors import last_line
from cultura.pipelines.finetune.export import write_adapters_card
from cultura.pipelines.finetune.plan import (
    RUNS_DIR,
    AdapterJob,
    FinetunePlan,
    check_finetune_placement,
    concurrent_runs,
    plan_finetune,
)
from cultura.pipelines.finetune.progress import TrainingProgress
from cultura.pipelines.finetune.train import run_adapter
from cultura.ray_utils import init_ray
from cultura.registry import REGISTRY_FILE, registry_path
from cultura.storage import display, fetch, is_uri, staged_output, warn_if_local


@dataclass
class FinetuneSummary:
    """What ``finetune`` did: registered adapters, failures, and timing."""

    adapters: list[Any]  # AdapterEntry
    failures: list[tuple[str, str]]
    seconds: float
    out: Path | str  # a local folder, or the URI the adapters were copied to
    registry: Path | str
    concurrent: int
    notes: list[str]
    timings: dict[str, dict[str, Any]] = field(default_factory=dict)  # per adapter; "node_id": where it trained

def finetune(config: Any, data: str | Path, per: str, out: str | Path, only: Sequence[str] | None = None,
             progress: bool = False, echo: Callable[[str], None] | None = None) -> FinetuneSummary:
    """Train one LoRA adapter per culture (``per="culture"``) or continent of ``data`` into ``out``.

    Checks everything first (:func:`plan_finetune`), then runs the adapters as Ray Train runs, as
    many at once as the resources allow. A failed run is recorded in the summary; the others go on.
    ``data`` and ``out`` are local folders or filesystem URIs (``s3://``, ``gs://``, ``file://``): a
    remote ``out`` gets its adapters and registry copied there at the end, and its Ray Train
    checkpoints written there directly (``OUT/_runs``, unless ``finetune.storage_path`` says otherwise).
    """
    remote = is_uri(out)
    with staged_output(out, keep=(REGISTRY_FILE,)) as local_out:
        plan = plan_finetune(config, fetch(data), per, local_out, only)
        if remote and not config.finetune.storage_path:
            plan.storage = f"{str(out).rstrip('/')}/{RUNS_DIR}"
        summary = _run_plan(config, plan, out, progress, echo)
    if remote:  # the summary names where the adapters were copied, not the local staging folder
        from dataclasses import replace

        summary.out = display(out)
        summary.registry = f"{summary.out}/{REGISTRY_FILE}"
        summary.adapters = [replace(e, path=f"{summary.out}/{e.name}") for e in summary.adapters]
    return summary

def _run_plan(config: Any, plan: FinetunePlan, out_spec: str | Path, progress: bool,
              echo: Callable[[str], None] | None) -> FinetuneSummary:
    """Train the adapters of ``plan`` (see :func:`finetune`); ``out_spec`` is the output as named."""
    import ray

    echo = echo or (lambda line: None)
    started = time.time()
    for note in plan.notes:
        echo(f"note: {note}")
    init_ray(config)
    warn_if_local(out_spec, "--out (adapters and Ray Train checkpoints)")
    warn_if_local(config.finetune.storage_path, "--storage")
    check_finetune_placement(config)
    slots = concurrent_runs(config, ray.cluster_resources(), len(plan.jobs))
    echo(f"training {len(plan.jobs)} adapter(s) ({', '.join(j.name for j in plan.jobs)}), {slots} at a time, "
         f"{config.finetune.workers} Ray Train worker(s) each; preset {config.finetune.preset}")
    entries, failures, timings = [], [], {}
    with TrainingProgress(plan, progress, echo) as bar:
        def one(job: AdapterJob) -> None:
            try:
                entry, timing = run_adapter(plan, job, config, bar.queue)
            except Exception as exc:  # one failed run must not stop the others
                failures.append((job.name, last_line(exc)))
                bar.done(job.name, failed=True)
                return
            entries.append(entry)
            timings[job.name] = timing
            bar.done(job.name)
            bar.write(f"{job.name}: eval loss {entry.eval_loss_before:.4f} -> {entry.eval_loss:.4f}, "
                 f"train loss {entry.train_loss:.4f}, {entry.steps} steps, "
                 f"{timing['samples_per_second']:.2f} samples/s (start-up {timing['startup_seconds']:.0f} s)")

        pool = ThreadPoolExecutor(max_workers=slots, thread_name_prefix="cultura-finetune")
        try:
            for future in [pool.submit(one, job) for job in plan.jobs]:
                future.result()
        except KeyboardInterrupt:  # the runs' threads wait on Ray: disconnecting ends them and their workers
            pool.shutdown(wait=False, cancel_futures=True)
            ray.shutdown()
            raise
        pool.shutdown()
    entries.sort(key=lambda e: e.name)
    if entries:
        write_adapters_card(plan, config)
    return FinetuneSummary(entries, failures, time.time() - started, plan.out, registry_path(plan.out), slots,
                           plan.notes, timings)
