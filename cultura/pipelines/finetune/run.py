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

import math
import os
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cultura.adapters import check_adapter_folder, validate_adapter_name
from cultura.cards import provenance, upstream_of, write_card
from cultura.errors import CulturaError, last_line
from cultura.metrics import Metrics, counter, gauge
from cultura.models import resolve_model
from cultura.pipelines.finetune.data import SftSet, load_sft_sets, split_rows, tokenize_rows
from cultura.pipelines.finetune.lora_train import build_trainer, load_lora_model, train_with_eval
from cultura.placement import Demand, check_placement
from cultura.ray_utils import init_ray
from cultura.registry import REGISTRY_FILE, AdapterEntry, load_registry, register_adapter, registry_path
from cultura.storage import display, fetch, is_uri, staged_output, warn_if_local

PRESETS: dict[str, dict[str, Any]] = {
    # Minutes on a CPU with the 135M default: a small LoRA on the attention projections.
    "cpu-small": {
        "lora_r": 16, "lora_alpha": 32.0, "lora_dropout": 0.05,
        "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"],
        "learning_rate": 1e-3, "lr_scheduler": "linear", "warmup_ratio": 0.05,
        "epochs": 2.0, "max_steps": 0, "max_grad_norm": 1.0, "batch_size": 4, "grad_accum": 1,
        "max_length": 512, "weight_decay": 0.0, "load_in_4bit": False,
    },
    # The reference QLoRA settings (4-bit where bitsandbytes and a GPU exist).
    "paper": {
        "lora_r": 64, "lora_alpha": 16.0, "lora_dropout": 0.1, "target_modules": ["all-linear"],
        "learning_rate": 2e-4, "lr_scheduler": "constant", "warmup_ratio": 0.03,
        "epochs": 6.0, "max_steps": 0, "max_grad_norm": 0.3, "batch_size": 4, "grad_accum": 1,
        "max_length": 1024, "weight_decay": 0.0, "load_in_4bit": True,
    },
}
METRICS = Metrics([
    gauge("finetune_loss", "Latest loss per adapter: split train (the logged training loss) or eval", ("adapter", "split")),
    counter("finetune_steps", "Optimizer steps per adapter", ("adapter",)),
])
RUNS_DIR = "_runs"  # default Ray Train storage inside OUT (never a valid adapter name)
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


def hyperparameters(cfg: Any) -> dict[str, Any]:
    """The preset's values with every field set in ``cfg`` (a FinetuneConfig) overriding them."""
    hp = cfg.over_preset(PRESETS[cfg.preset])
    hp.update(seed=cfg.seed, evaluations=cfg.evaluations)
    return hp


@dataclass
class AdapterJob:
    """One adapter to train: its data (tokenised and split) and where it goes."""

    sft: SftSet
    train_rows: list[dict[str, list[int]]]
    eval_rows: list[dict[str, list[int]]]
    target: Path

    @property
    def name(self) -> str:
        """The adapter's name (culture key or continent)."""
        return self.sft.name


@dataclass
class FinetunePlan:
    """Everything checked and prepared before a worker starts."""

    jobs: list[AdapterJob]
    hp: dict[str, Any]
    out: Path
    storage: str
    model: str
    model_path: str
    notes: list[str] = field(default_factory=list)


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


def plan_finetune(config: Any, data: str | Path, per: str, out: str | Path,
                  only: Sequence[str] | None = None) -> FinetunePlan:
    """Load, check, split and tokenise the data and check the output folder; no Ray, no workers.

    Raises a :class:`CulturaError` subclass for anything wrong with the input.
    """
    for name in only or ():
        validate_adapter_name(name)
    cfg = config.finetune
    hp = hyperparameters(cfg)
    notes = []
    if hp["load_in_4bit"] and not (cfg.use_gpu and _has_bitsandbytes()):
        hp["load_in_4bit"] = False
        notes.append("4-bit loading needs bitsandbytes and --gpu; training the LoRA on the full-precision model")
    sets = load_sft_sets(data, per, only)
    out_dir = Path(out).expanduser().resolve()
    if out_dir.exists() and not out_dir.is_dir():
        raise CulturaError(f"--out {out_dir} is a file, not a folder")
    model_path = resolve_model(config.engine.model)
    from transformers import AutoTokenizer  # only once the data is known to be good

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    jobs = []
    for s in sets:
        name = validate_adapter_name(s.name)
        target = (out_dir / name).resolve()
        if target.parent != out_dir:
            raise CulturaError(f"adapter name {name!r} would leave the output folder {out_dir}")
        if target.exists() and not (target / "adapter_config.json").is_file():
            raise CulturaError(f"{target} exists and is not an adapter folder; choose another --out")
        train, held_out = split_rows(s.conversations, cfg.eval_fraction, cfg.seed)
        if cfg.max_rows:
            n_eval = min(cfg.max_rows - 1, max(1, round(cfg.max_rows * cfg.eval_fraction)))
            train, held_out = train[: cfg.max_rows - n_eval], held_out[:n_eval]
        where = f"{s.source} ({name})"
        jobs.append(AdapterJob(s, tokenize_rows(tokenizer, train, hp["max_length"], where),
                               tokenize_rows(tokenizer, held_out, hp["max_length"], where), target))
    storage = cfg.storage_path or str(out_dir / RUNS_DIR)
    if "://" not in storage:
        storage = str(Path(storage).expanduser().resolve())
    return FinetunePlan(jobs, hp, out_dir, storage, config.engine.model, model_path, notes)


def _has_bitsandbytes() -> bool:
    import importlib.util

    return importlib.util.find_spec("bitsandbytes") is not None


def concurrent_runs(config: Any, resources: dict[str, float], n_jobs: int) -> int:
    """How many Ray Train runs fit at once: the cluster's CPUs (and GPUs) over one run's needs.

    A run that cannot fit at all on a local Ray is an error (it would wait forever).
    """
    cfg = config.finetune
    need_cpu = cfg.workers * cfg.cpus_per_worker
    cpus, gpus = resources.get("CPU", 0.0), resources.get("GPU", 0.0)
    local = config.ray.address is None
    if local and need_cpu > cpus:
        raise CulturaError(f"one run needs {cfg.workers} workers x {cfg.cpus_per_worker:g} CPUs = {need_cpu:g} CPUs "
                           f"but this Ray has {cpus:g}; lower --workers or finetune.cpus_per_worker")
    if cfg.use_gpu and local and cfg.workers > gpus:
        raise CulturaError(f"--gpu with {cfg.workers} workers needs {cfg.workers} GPUs but this Ray has {gpus:g}")
    fits = math.floor(cpus / need_cpu) if need_cpu else n_jobs
    if cfg.use_gpu:
        fits = min(fits, math.floor(gpus / cfg.workers))
    return max(1, min(n_jobs, cfg.max_concurrent or n_jobs, fits))


def check_finetune_placement(config: Any) -> None:
    """Fail at once when one run's Ray Train workers cannot be placed on the cluster (naming the
    shortfall and the fixes); warn when they wait for the autoscaler. Runs beyond the first queue."""
    cfg = config.finetune
    per_worker = {"CPU": cfg.cpus_per_worker, "GPU": 1.0 if cfg.use_gpu else 0.0}
    fixes = [f"fewer Ray Train workers per adapter: lower --workers (now {cfg.workers})",
             f"fewer CPUs per worker: --cpus-per-worker (now {cfg.cpus_per_worker:g})"]
    if cfg.use_gpu:
        fixes.append("train on CPUs: --no-gpu")
    check_placement("one finetune run", [Demand("Ray Train workers", cfg.workers, per_worker)], fixes)


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


def write_adapter_card(job: AdapterJob, entry: AdapterEntry, config: Any) -> Path:
    """The adapter folder's card, in the Hugging Face model-card form (``base_model``, ``library_name``,
    ``tags``) with what it was trained on: the SFT file and its hash, the seeds, split and data licence
    its rows rest on, the losses before and after, and the paper it follows."""
    inherited = upstream_of(job.sft.source)
    paper = "palette" if job.sft.kind == "continent" else "culturepark"
    fields = {"base_model": entry.base_model, "library_name": "peft", "tags": ["cultura", paper, "lora", job.sft.kind],
              "stage": "finetune", **provenance(config, paper), "adapter": entry.name, "kind": entry.kind,
              "target": entry.target, "data": entry.data_path, "data_sha256": entry.data_sha256, **inherited,
              **({"seed_ids": sorted(set(job.sft.seed_ids))} if job.sft.seed_ids else {}), "train_rows": entry.train_rows,
              "eval_rows": entry.eval_rows, "steps": entry.steps, "eval_loss_before": entry.eval_loss_before,
              "eval_loss": entry.eval_loss, "hyperparameters": entry.hyperparameters,
              "config": {"finetune": config.finetune.model_dump(mode="json")}}
    body = (f"A LoRA adapter of `{entry.base_model}` for {entry.kind} {entry.target!r}, trained on "
            f"{entry.train_rows} rows of `{entry.data_path}` ({entry.steps} steps; held-out loss "
            f"{entry.eval_loss_before:.4f} -> {entry.eval_loss:.4f}). A lower loss says the adapter learnt the "
            "data's wording and answers; whether it answers more like the culture is for `cultura eval`, "
            "next to the base model, the prompted model and another culture's adapter.")
    return write_card(job.target, f"cultura adapter: {entry.name}", fields, body)


def write_adapters_card(plan: FinetunePlan, config: Any) -> Path:
    """The adapters folder's card: every adapter its registry holds (trained now or before) and what the
    data of this run rests on."""
    registered = load_registry(plan.out)
    inherited = upstream_of(plan.jobs[0].sft.source) if plan.jobs else {}
    fields = {"stage": "finetune", **provenance(config), **inherited,
              "adapters": {name: {"kind": e.kind, "target": e.target, "data": e.data_path, "eval_loss": e.eval_loss}
                           for name, e in sorted(registered.items())},
              "config": {"finetune": config.finetune.model_dump(mode="json")}}
    lines = [f"| {name} | {e.kind} | {e.target} | {e.train_rows} | {e.eval_loss_before:.4f} -> {e.eval_loss:.4f} |"
             for name, e in sorted(registered.items())]
    body = ("LoRA adapters of `" + plan.model + "`, one folder each (its own card inside), listed in "
            f"`{REGISTRY_FILE}`.\n\n| adapter | kind | target | train rows | held-out loss |\n|---|---|---|---|---|\n"
            + "\n".join(lines))
    return write_card(plan.out, "cultura adapters", fields, body)


def export_adapter(checkpoint: Any, target: Path) -> Path:
    """Copy the adapter files of a Ray Train checkpoint (written by ``RayTrainReportCallback``) to
    ``target``, replacing a previous adapter there in one rename."""
    from ray.train.huggingface.transformers import RayTrainReportCallback

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}-{threading.get_ident()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        with checkpoint.as_directory() as folder:
            source = Path(folder) / RayTrainReportCallback.CHECKPOINT_NAME
            for name in ADAPTER_FILES:
                shutil.copy2(source / name, tmp / name)
        check_adapter_folder(tmp)
        if target.exists():
            old = target.parent / f".{target.name}.old-{os.getpid()}-{threading.get_ident()}"
            os.replace(target, old)
            shutil.rmtree(old, ignore_errors=True)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


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
    with _Progress(plan, progress, echo) as bar:
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


class _Progress:
    """Training progress fed by a Ray queue the rank-0 workers write to: one bar per adapter on a
    terminal, else a line per logged loss."""

    def __init__(self, plan: FinetunePlan, enabled: bool, echo: Callable[[str], None]):
        self.plan, self.enabled, self.echo = plan, enabled, echo
        self.queue = None
        self._bars: dict[str, Any] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> _Progress:
        if not self.enabled:
            return self
        import sys

        from ray.util.queue import Queue
        from tqdm import tqdm

        self.queue = Queue(maxsize=10000, actor_options={"num_cpus": 0})
        if sys.stderr.isatty():
            for i, job in enumerate(self.plan.jobs):
                self._bars[job.name] = tqdm(total=None, desc=f"{job.name:>12}", position=i, unit="step",
                                            dynamic_ncols=True, postfix="starting workers")
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()
        return self

    def _drain(self) -> None:
        from ray.util.queue import Empty

        while not self._stop.is_set():
            try:
                item = self.queue.get(timeout=0.5)
            except Empty:
                continue
            except Exception:  # the queue actor is gone: nothing more will come
                return
            losses = {k: f"{item[k]:.3f}" for k in ("loss", "eval_loss") if k in item}
            bar = self._bars.get(item["name"])
            if bar is None:
                if losses:
                    when = f"step {item['step']}/{item['total']}" if item["step"] else "before training"
                    self.echo(f"{item['name']}: {when} " + " ".join(f"{k}={v}" for k, v in losses.items()))
                continue
            bar.total = item["total"]
            bar.n = item["step"]
            if losses:
                bar.set_postfix(losses, refresh=False)
            elif bar.postfix == "starting workers":
                bar.set_postfix_str("training", refresh=False)
            bar.refresh()

    def write(self, line: str) -> None:
        """Print a line without breaking the bars."""
        if self._bars:
            from tqdm import tqdm

            tqdm.write(line)
        else:
            self.echo(line)

    def done(self, name: str, failed: bool = False) -> None:
        """Mark an adapter's bar finished (or failed)."""
        bar = self._bars.get(name)
        if bar is not None and failed:
            bar.set_postfix_str("failed")

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        for bar in self._bars.values():
            bar.close()
        if self.queue is not None:
            self.queue.shutdown()
