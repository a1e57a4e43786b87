"""A trained adapter leaves Ray Train: its checkpoint's adapter files copied into place, and the
cards of the adapter folder and of the adapters folder."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path
from typing import Any

from cultura.adapters import check_adapter_folder
from cultura.cards import provenance, upstream_of, write_card
from cultura.pipelines.finetune.plan import AdapterJob, FinetunePlan
from cultura.registry import REGISTRY_FILE, AdapterEntry, load_registry

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


def write_adapter_card(job: AdapterJob, entry: AdapterEntry, config: Any) -> Path:
    """The adapter folder's card, in the Hugging Face model-card form (``base_model``, ``library_name``,
    ``tags``) with what it was trained on: the SFT file and its hash, the seeds, split and data licence
    its rows rest on, the losses before and after, and the paper it follows."""
    inherited = upstream_of(job.sft.source)
    paper = "palette" if job.sft.kind == "continent" else "culturepark"
    fields = {"base_model": entry.base_model, "library_name": "peft", "tags": ["cultura", paper, "lora", job.sft.kind],
              "stage": "finetune", **provenance(config, paper), "adapter": entry.name, "kind": entry.kind,
              "target": entry.target, "data": entry.data_path, "data_sha256": entry.data_sha256, **inherited,
              **({"seed_ids": sorted(set(job.sft.seed_ids))} if job.sft.seed_ids else {}),
              "train_rows": entry.train_rows, "eval_rows": entry.eval_rows, "steps": entry.steps,
              "eval_loss_before": entry.eval_loss_before, "eval_loss": entry.eval_loss, "hyperparameters": entry.hyperparameters,
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
