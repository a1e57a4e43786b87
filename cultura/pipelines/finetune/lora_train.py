"""One LoRA training job with a Hugging Face ``Trainer``: the model, the trainer, the loop.

Runs inside each Ray Train worker (``cultura.pipelines.finetune.train``) and, unchanged, in a plain
process (``bench/finetune.py`` compares the two). Hyper-parameters arrive as a plain dict
(:func:`cultura.pipelines.finetune.plan.hyperparameters`); the rows are already tokenised.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cultura.models import resolve_model


def steps_per_run(n_train: int, hp: dict[str, Any], world_size: int = 1) -> int:
    """Optimizer steps a run takes: ``max_steps`` when set, else epochs over the sharded data."""
    if hp["max_steps"]:
        return int(hp["max_steps"])
    per_epoch = max(1, math.ceil(math.ceil(n_train / (hp["batch_size"] * world_size)) / hp["grad_accum"]))
    return max(1, math.ceil(hp["epochs"] * per_epoch))


def training_dtype(hp: dict[str, Any], use_gpu: bool) -> str:
    """The dtype the base model trains in: ``hp['dtype']`` (``engine.dtype``), with bfloat16 on a GPU
    without it becoming float16."""
    import torch

    if hp["dtype"] == "bfloat16" and use_gpu and not torch.cuda.is_bf16_supported():
        return "float16"
    return hp["dtype"]


def load_lora_model(model_name: str, hp: dict[str, Any], use_gpu: bool) -> tuple[Any, Any]:
    """``(peft model, tokenizer)``: the base model in :func:`training_dtype` (or 4-bit on a GPU) with
    fresh LoRA layers on ``hp['target_modules']``; peft keeps the LoRA factors in float32."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_model(model_name)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    kwargs: dict[str, Any] = {"dtype": getattr(torch, training_dtype(hp, use_gpu))}
    if use_gpu:
        if hp["load_in_4bit"]:
            from transformers import BitsAndBytesConfig

            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=kwargs["dtype"])
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    if "quantization_config" in kwargs:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model)
    targets = hp["target_modules"]
    lora = LoraConfig(r=hp["lora_r"], lora_alpha=hp["lora_alpha"], lora_dropout=hp["lora_dropout"],
                      target_modules="all-linear" if targets == ["all-linear"] else list(targets),
                      task_type="CAUSAL_LM")
    return get_peft_model(model, lora), tokenizer


def build_trainer(model: Any, tokenizer: Any, train_rows: Sequence[dict], eval_rows: Sequence[dict],
                  hp: dict[str, Any], output_dir: str, use_gpu: bool, world_size: int = 1,
                  callbacks: Sequence[Any] = ()) -> Any:
    """A ``transformers.Trainer`` that evaluates and checkpoints ``hp['evaluations']`` times per run
    (the last at the final step), logging the training loss at the same points."""
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

    total = steps_per_run(len(train_rows), hp, world_size)
    every = max(1, math.ceil(total / hp["evaluations"]))
    scheduler = hp["lr_scheduler"]
    if scheduler == "constant" and hp["warmup_ratio"] > 0:
        scheduler = "constant_with_warmup"  # plain "constant" would ignore the warmup
    dtype = training_dtype(hp, use_gpu)
    half = {"bf16": True} if dtype == "bfloat16" else {"fp16": True} if dtype == "float16" else {}
    args = TrainingArguments(
        output_dir=output_dir,
        per_device_train_batch_size=hp["batch_size"],
        per_device_eval_batch_size=hp["batch_size"],
        gradient_accumulation_steps=hp["grad_accum"],
        learning_rate=hp["learning_rate"],
        lr_scheduler_type=scheduler,
        warmup_steps=hp["warmup_ratio"],
        num_train_epochs=hp["epochs"],
        max_steps=hp["max_steps"] or -1,
        max_grad_norm=hp["max_grad_norm"],
        weight_decay=hp["weight_decay"],
        eval_strategy="steps", eval_steps=every,
        save_strategy="steps", save_steps=every,
        logging_strategy="steps", logging_steps=every,
        save_only_model=False, save_total_limit=2,  # optimizer and scheduler state: a restart resumes exactly
        seed=hp["seed"], data_seed=hp["seed"],
        use_cpu=not use_gpu, **half,
        report_to="none", disable_tqdm=True,
        remove_unused_columns=False, dataloader_num_workers=0,
        ddp_find_unused_parameters=False,
    )
    collator = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100)
    return Trainer(model=model, args=args, train_dataset=list(train_rows), eval_dataset=list(eval_rows),
                   data_collator=collator, callbacks=[log_at_end_callback(), *callbacks])


def log_at_end_callback() -> Any:
    """A ``TrainerCallback`` that logs the training loss at the final step too (so the last
    checkpoint and the run's summary carry the loss where training ended)."""
    from transformers import TrainerCallback

    class LogAtEnd(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step >= state.max_steps:
                control.should_log = True
            return control

    return LogAtEnd()


def train_with_eval(trainer: Any, resume_from: str | None = None) -> dict[str, Any]:
    """Evaluate, train, and return the figures: eval loss before, every eval loss during training
    (the best is the adapter kept), the last training loss, samples/s, and the training's wall and
    CPU seconds (CPU time, unlike wall time, does not grow when other processes share the CPUs).

    ``resume_from`` is a Trainer checkpoint folder to continue from (weights, optimizer, scheduler,
    step); the evaluation before training still sees the fresh LoRA initialisation, as the first
    attempt did.
    """
    before = trainer.evaluate()["eval_loss"]
    started, cpu_started = time.time(), time.process_time()
    output = trainer.train(resume_from_checkpoint=resume_from)
    cpu_seconds = time.process_time() - cpu_started
    history = trainer.state.log_history
    evals = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h]
    losses = [h["loss"] for h in history if "loss" in h]
    return {
        "eval_loss_before": float(before),
        "eval_losses": evals,
        "eval_loss_best": min((loss for _, loss in evals), default=float(before)),
        "train_loss": float(losses[-1]) if losses else float(output.training_loss),
        "steps": int(output.global_step),
        "train_started": started,
        "train_seconds": float(output.metrics["train_runtime"]),
        "train_samples_per_second": float(output.metrics["train_samples_per_second"]),
        "train_samples": int(output.metrics["train_samples_per_second"] * output.metrics["train_runtime"] + 0.5),
        "train_cpu_seconds": cpu_seconds,
        "resumed_from_step": _checkpoint_step(resume_from) if resume_from else 0,
    }


def _checkpoint_step(folder: str) -> int:
    """The optimizer step a Trainer checkpoint folder was written at."""
    state = json.loads((Path(folder) / "trainer_state.json").read_text(encoding="utf-8"))
    return int(state["global_step"])
