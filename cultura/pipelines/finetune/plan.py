"""Fine-tuning's plan: the presets, the data checked, split and tokenised, and the runs' resources.

:func:`plan_finetune` does everything that can fail on the input (missing, empty or malformed data,
unsafe names, an output that is a file) before any Ray Train worker starts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cultura.adapters import validate_adapter_name
from cultura.errors import CulturaError
from cultura.models import resolve_model
from cultura.pipelines.finetune.data import SftSet, load_sft_sets, split_rows, tokenize_rows
from cultura.placement import Demand, check_placement

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

RUNS_DIR = "_runs"  # default Ray Train storage inside OUT (never a valid adapter name)


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
    hp["dtype"] = config.engine.resolved_dtype(gpu=cfg.use_gpu)
    if hp["dtype"] == "float16" and not cfg.use_gpu:
        hp["dtype"] = "float32"
        notes.append("engine.dtype float16: CPU training has no float16 mixed precision; training in float32")
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
