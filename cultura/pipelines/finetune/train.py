"""One adapter's Ray Train run: the worker function, its metric and progress callbacks, and the driver
side that starts the run, exports the best checkpoint, writes its card and registers it."""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone
from typing import Any

from cultura.errors import CulturaError
from cultura.metrics import Metrics, counter, gauge
from cultura.pipelines.finetune.export import export_adapter, write_adapter_card
from cultura.pipelines.finetune.lora_train import build_trainer, load_lora_model, train_with_eval
from cultura.pipelines.finetune.plan import AdapterJob, FinetunePlan
from cultura.registry import AdapterEntry, register_adapter

METRICS = Metrics([
    gauge("finetune_loss", "Latest loss per adapter: split train (the logged training loss) or eval", ("adapter", "split")),
    counter("finetune_steps", "Optimizer steps per adapter", ("adapter",)),
])


def train_loop_per_worker(loop: dict[str, Any]) -> dict[str, Any]:
    """The Ray Train worker function: LoRA model, HF Trainer prepared for Ray, evaluate-train-evaluate.

    Rank 0's return value (the run's figures) reaches the driver as ``Result.return_value``.
    """
    import tempfile

    import ray
    import ray.train
    import torch
    from ray.train.huggingface.transformers import RayTrainReportCallback, prepare_trainer

    entered = time.time()
    context = ray.train.get_context()
    if not loop["use_gpu"]:
        torch.set_num_threads(max(1, int(loop["cpus_per_worker"])))
    model, tokenizer = load_lora_model(loop["model"], loop["hp"], loop["use_gpu"])
    callbacks: list[Any] = [RayTrainReportCallback()]
    if context.get_world_rank() == 0:
        callbacks.append(metrics_callback(loop["name"]))
        if loop.get("progress") is not None:
            callbacks.append(progress_callback(loop["progress"], loop["name"]))
    with tempfile.TemporaryDirectory(prefix="cultura-finetune-") as scratch:
        resume_from = None
        checkpoint = ray.train.get_checkpoint()  # set when Ray Train restarted the workers after a failure
        if checkpoint is not None:
            checkpoint.to_directory(os.path.join(scratch, "resume"))
            resume_from = os.path.join(scratch, "resume", RayTrainReportCallback.CHECKPOINT_NAME)
        trainer = build_trainer(model, tokenizer, loop["train_rows"], loop["eval_rows"], loop["hp"],
                                os.path.join(scratch, "out"), loop["use_gpu"], context.get_world_size(), callbacks)
        figures = train_with_eval(prepare_trainer(trainer), resume_from)
    figures["entered"] = entered
    figures["node_id"] = ray.get_runtime_context().get_node_id()
    return figures

def metrics_callback(name: str) -> Any:
    """A ``TrainerCallback`` that records adapter ``name``'s steps and losses as ``cultura_finetune_*`` metrics."""
    from transformers import TrainerCallback

    class Record(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            METRICS.inc("finetune_steps", adapter=name)

        def on_log(self, args, state, control, logs=None, **kwargs):
            for key, split in (("loss", "train"), ("eval_loss", "eval")):
                if key in (logs or {}):
                    METRICS.set("finetune_loss", float(logs[key]), adapter=name, split=split)

    return Record()

def progress_callback(queue: Any, name: str) -> Any:
    """A ``TrainerCallback`` that sends step and loss updates to the driver's progress queue."""
    from transformers import TrainerCallback

    def send(item: dict[str, Any]) -> None:
        try:
            queue.put_nowait(item)
        except Exception:  # a full or closed queue only costs a progress update
            pass

    class Progress(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            send({"name": name, "step": state.global_step, "total": state.max_steps})

        def on_log(self, args, state, control, logs=None, **kwargs):
            losses = {k: float(v) for k, v in (logs or {}).items() if k in ("loss", "eval_loss")}
            if losses:
                send({"name": name, "step": state.global_step, "total": state.max_steps, **losses})

    return Progress()

def run_adapter(plan: FinetunePlan, job: AdapterJob, config: Any, queue: Any = None) -> tuple[Any, dict[str, Any]]:
    """Train one adapter as a Ray Train run, export its best checkpoint and register it.

    Returns the registry entry and the run's timings (start-up and training seconds, samples/s) with
    ``node_id``, the Ray node its rank-0 worker ran on.
    """
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    cfg = config.finetune
    per_worker = {"CPU": cfg.cpus_per_worker, **({"GPU": 1} if cfg.use_gpu else {})}
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    run_name = f"{job.name}-{stamp}"
    submitted = time.time()
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={
            "name": job.name, "model": plan.model, "hp": plan.hp, "use_gpu": cfg.use_gpu,
            "cpus_per_worker": cfg.cpus_per_worker, "train_rows": job.train_rows, "eval_rows": job.eval_rows,
            "progress": queue, "submitted": submitted,
        },
        scaling_config=ScalingConfig(num_workers=cfg.workers, use_gpu=cfg.use_gpu, resources_per_worker=per_worker),
        run_config=RunConfig(
            storage_path=plan.storage, name=run_name,
            checkpoint_config=CheckpointConfig(num_to_keep=2, checkpoint_score_attribute="eval_loss",
                                               checkpoint_score_order="min"),
            failure_config=FailureConfig(max_failures=cfg.max_failures),
        ),
    )
    result = trainer.fit()
    figures = result.return_value or {}
    scored = [(c, m) for c, m in (result.best_checkpoints or []) if "eval_loss" in m]
    if not scored:
        raise CulturaError(f"run {run_name} reported no checkpoint with an eval_loss")
    best, metrics = min(scored, key=lambda cm: cm[1]["eval_loss"])
    export_adapter(best, job.target)
    entry = AdapterEntry(
        name=job.name, kind=job.sft.kind, target=job.sft.target, base_model=plan.model,
        base_model_path=plan.model_path, data_path=str(job.sft.source), data_sha256=job.sft.sha256,
        preset=cfg.preset, train_loss=figures.get("train_loss"),
        eval_loss_before=float(figures["eval_loss_before"]), eval_loss=float(metrics["eval_loss"]),
        train_rows=len(job.train_rows), eval_rows=len(job.eval_rows), steps=int(figures.get("steps", 0)),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"), path=str(job.target),
        hyperparameters=dict(plan.hp), run=f"{plan.storage.rstrip('/')}/{run_name}",
        seed_ids=list(job.sft.seed_ids) if job.sft.seed_ids is not None else None,
    )
    write_adapter_card(job, entry, config)
    register_adapter(plan.out, entry)
    timings = {
        "startup_seconds": figures.get("entered", submitted) - submitted,
        "prepare_seconds": figures.get("train_started", submitted) - figures.get("entered", submitted),
        "train_seconds": figures.get("train_seconds", 0.0),
        "samples_per_second": figures.get("train_samples_per_second", 0.0),
        "samples_per_cpu_second": figures.get("train_samples", 0) / max(figures.get("train_cpu_seconds", 0.0), 1e-9),
        "wall_seconds": time.time() - submitted,
        "resumed_from_step": figures.get("resumed_from_step", 0),
        "node_id": figures.get("node_id"),
    }
    return entry, timings
