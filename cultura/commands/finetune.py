"""``cultura finetune``: one LoRA adapter per culture or continent, trained with Ray Train."""

from __future__ import annotations

import sys
from typing import Any

import click

from cultura.commands.common import build_config, config_options, csv_list, pop_config_args


def _on_node(node_id: str | None) -> str:
    return f", on node {node_id[:12]}" if node_id else ""


@click.command()
@click.option("--data", required=True,
              help="--per culture: a refinement output folder (sft/<culture>.jsonl or .parquet); "
                   "--per continent: a Palette dataset folder (palette.jsonl or .parquet).")
@click.option("--per", type=click.Choice(["culture", "continent"]), default="culture", show_default=True,
              help="One adapter per culture of the SFT set, or per continent of the Palette dataset "
                   "(SFT on the chosen responses, the continent persona as system prompt).")
@click.option("--out", required=True,
              help="Adapters folder: OUT/<name>/ (PEFT safetensors), OUT/registry.json, OUT/_runs (checkpoints); "
                   "a local folder or a URI (s3://, gs://, file://) every node of a cluster reaches.")
@click.option("--only", default=None, help="Train only these adapters (comma-separated culture keys or continents).")
@click.option("--preset", type=click.Choice(["cpu-small", "paper"]), default=None,
              help="cpu-small (default: minutes on a CPU) or paper (r=64, alpha=16, dropout 0.1, lr 2e-4 "
                   "constant, warmup 0.03, 6 epochs, max grad norm 0.3, batch 4; 4-bit with bitsandbytes + GPU).")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Ray Train workers per adapter (default 1).")
@click.option("--gpu/--no-gpu", "use_gpu", default=None, help="Give every worker one GPU (default: CPU).")
@click.option("--cpus-per-worker", type=float, default=None, help="CPUs each worker asks Ray for (default 1).")
@click.option("--max-concurrent", type=click.IntRange(min=1), default=None,
              help="Adapters trained at once (default: as many as the cluster's resources allow).")
@click.option("--storage", default=None,
              help="Ray Train checkpoint storage: a folder or a cloud URI (default OUT/_runs).")
@click.option("--lora-r", type=int, default=None, help="LoRA rank (preset: 16 / 64).")
@click.option("--lora-alpha", type=float, default=None, help="LoRA alpha (preset: 32 / 16).")
@click.option("--lora-dropout", type=float, default=None, help="LoRA dropout (preset: 0.05 / 0.1).")
@click.option("--target-modules", default=None,
              help="Comma-separated module names, or 'all-linear' (preset: q,k,v,o projections / all-linear).")
@click.option("--lr", type=float, default=None, help="Learning rate (preset: 1e-3 / 2e-4).")
@click.option("--scheduler", type=click.Choice(["constant", "constant_with_warmup", "linear", "cosine"]),
              default=None, help="Learning-rate schedule (preset: linear / constant).")
@click.option("--warmup", type=float, default=None, help="Warm-up as a fraction of the steps (preset: 0.05 / 0.03).")
@click.option("--epochs", type=float, default=None, help="Epochs (preset: 2 / 6).")
@click.option("--max-steps", type=int, default=None, help="Stop after N optimizer steps (0: the epochs decide).")
@click.option("--max-grad-norm", type=float, default=None, help="Gradient clipping (preset: 1.0 / 0.3).")
@click.option("--batch-size", type=int, default=None, help="Rows per worker per step (preset: 4).")
@click.option("--grad-accum", type=int, default=None, help="Gradient accumulation steps (preset: 1).")
@click.option("--max-length", type=int, default=None, help="Tokens per row; longer rows are cut (preset: 512 / 1024).")
@click.option("--4bit/--no-4bit", "load_in_4bit", default=None,
              help="QLoRA 4-bit base model (needs bitsandbytes and --gpu).")
@click.option("--eval-fraction", type=float, default=None, help="Rows held out for the evaluation loss (default 0.1).")
@click.option("--evaluations", type=int, default=None,
              help="Evaluations (each with a checkpoint) per run, the last at the final step (default 3).")
@click.option("--max-rows", type=int, default=None, help="Use at most N rows per adapter.")
@click.option("--seed", type=int, default=None, help="Seed for the split, LoRA init and data order (default 0).")
@config_options
def finetune(data: str, per: str, out: str, only: str | None, **kwargs) -> None:
    """Train one LoRA adapter per culture (or continent) with Ray Train.

    Each adapter is a Ray Train run (TorchTrainer running a Hugging Face Trainer on a peft LoRA model
    of --model): it evaluates first, trains, and keeps the best checkpoint by evaluation loss, which
    is copied to OUT/<name>/ and recorded in OUT/registry.json. Use the adapters with
    `cultura chat --adapter OUT/<name>` or by name with engine.adapter_registry=OUT.
    Exits 1 when some adapters failed.
    """
    from cultura.api import finetune as run_finetune

    config_args = pop_config_args(kwargs)
    prefix = "finetune."
    overrides = {
        "preset": kwargs["preset"], "workers": kwargs["workers"], "use_gpu": kwargs["use_gpu"],
        "cpus_per_worker": kwargs["cpus_per_worker"], "max_concurrent": kwargs["max_concurrent"],
        "storage_path": kwargs["storage"], "lora_r": kwargs["lora_r"], "lora_alpha": kwargs["lora_alpha"],
        "lora_dropout": kwargs["lora_dropout"], "target_modules": csv_list(kwargs["target_modules"]),
        "learning_rate": kwargs["lr"], "lr_scheduler": kwargs["scheduler"], "warmup_ratio": kwargs["warmup"],
        "epochs": kwargs["epochs"], "max_steps": kwargs["max_steps"], "max_grad_norm": kwargs["max_grad_norm"],
        "batch_size": kwargs["batch_size"], "grad_accum": kwargs["grad_accum"], "max_length": kwargs["max_length"],
        "load_in_4bit": kwargs["load_in_4bit"], "eval_fraction": kwargs["eval_fraction"],
        "evaluations": kwargs["evaluations"], "max_rows": kwargs["max_rows"], "seed": kwargs["seed"],
    }
    config = build_config(**config_args, **{prefix + k: v for k, v in overrides.items()})
    s = run_finetune(config, data=data, out=out, per=per, only=csv_list(only), progress=True, echo=click.echo)
    echo_summary(s)
    if s.failures:
        for name, err in s.failures:
            click.echo(f"  failed {name}: {err}", err=True)
        click.echo(f"{len(s.failures)} adapter(s) failed; see the Ray Train logs under {s.out}", err=True)
        sys.exit(1)


def echo_summary(s: Any) -> None:
    """Print a fine-tuning run's summary: each adapter's losses, rows, steps and folder, the registry."""
    click.echo(f"adapters     {len(s.adapters)} trained, {len(s.failures)} failed, {s.concurrent} at a time")
    for e in s.adapters:
        t = s.timings.get(e.name, {})
        click.echo(f"  {e.name:<12} eval loss {e.eval_loss_before:.4f} -> {e.eval_loss:.4f}  "
                   f"({e.train_rows} train / {e.eval_rows} eval rows, {e.steps} steps, "
                   f"{t.get('samples_per_second', 0):.2f} samples/s{_on_node(t.get('node_id'))})  {e.path}")
    click.echo(f"wall time    {s.seconds:.1f} s")
    click.echo(f"registry     {s.registry}")
