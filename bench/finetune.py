"""Benchmark: LoRA training samples/s under Ray Train vs a plain Hugging Face Trainer in this process.

Both train the same adapter on the same tokenised rows with the same hyper-parameters, trainer
settings (evaluations, checkpoints) and CPU threads; only the Ray Train run reports its checkpoints
to Ray Train storage. Samples/s is the Trainer's own figure over ``train()`` (model loading, the
initial evaluation and Ray's worker start-up excluded); start-up is reported separately.

    python bench/finetune.py                 # bundled-seed SFT set for 'german', 12 steps, 2 CPUs
    python bench/finetune.py --data runs/ref1 --culture german --steps 30 --cpus 2

Prints both figures and the ratio last (target >= 0.85). Samples per CPU-second is printed too:
on a shared machine it moves far less with other processes' load than samples/s does.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

for _key, _value in {"HF_HUB_OFFLINE": "1", "RAY_AUTH_MODE": "disabled", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
                     "OMP_WAIT_POLICY": "PASSIVE", "TOKENIZERS_PARALLELISM": "false"}.items():
    os.environ.setdefault(_key, _value)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", help="SFT folder (sft/<culture>.jsonl); default: built from the bundled seeds")
    p.add_argument("--culture", default="german", help="which culture's set to train on")
    p.add_argument("--rows", type=int, default=60, help="rows of the set to use")
    p.add_argument("--steps", type=int, default=12, help="optimizer steps per run")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--cpus", type=float, default=2, help="CPUs (torch threads) for each trainer")
    p.add_argument("--evaluations", type=int, default=3, help="evaluations + checkpoints per run")
    p.add_argument("--repeats", type=int, default=1, help="alternating plain/Ray pairs (median reported)")
    return p.parse_args()


def plain_run(plan, job, cpus: float) -> dict[str, float]:
    """Train in this process with a plain HF Trainer; returns start-up seconds and samples/s."""
    import torch

    from cultura.pipelines.finetune.lora_train import build_trainer, load_lora_model, train_with_eval

    torch.set_num_threads(max(1, int(cpus)))
    started = time.time()
    model, tokenizer = load_lora_model(plan.model, plan.hp, use_gpu=False)
    with tempfile.TemporaryDirectory(prefix="bench-finetune-") as scratch:
        trainer = build_trainer(model, tokenizer, job.train_rows, job.eval_rows, plan.hp, scratch, use_gpu=False)
        figures = train_with_eval(trainer)
    return {"startup_seconds": figures["train_started"] - started,
            "samples_per_second": figures["train_samples_per_second"],
            "samples_per_cpu_second": figures["train_samples"] / figures["train_cpu_seconds"],
            "eval_before": figures["eval_loss_before"], "eval_after": figures["eval_loss_best"]}


def ray_run(plan, job, config) -> dict[str, float]:
    """Train the same adapter as a Ray Train run; returns start-up seconds and samples/s."""
    from cultura.pipelines.finetune.train import run_adapter

    entry, timings = run_adapter(plan, job, config)
    return {"startup_seconds": timings["startup_seconds"] + timings["prepare_seconds"],
            "ray_startup_seconds": timings["startup_seconds"],
            "samples_per_second": timings["samples_per_second"],
            "samples_per_cpu_second": timings["samples_per_cpu_second"],
            "eval_before": entry.eval_loss_before, "eval_after": entry.eval_loss}


def main() -> None:
    args = parse_args()
    from cultura.config import load_config
    from cultura.pipelines.finetune.plan import plan_finetune
    from cultura.pipelines.finetune.data import seed_answer_conversations, write_sft_jsonl
    from cultura.ray_utils import init_ray

    with tempfile.TemporaryDirectory(prefix="bench-finetune-") as work:
        data = args.data
        if data is None:
            data = os.path.join(work, "data")
            write_sft_jsonl(data, args.culture, seed_answer_conversations(args.culture, args.rows))
        config = load_config(None, {
            "finetune.max_steps": args.steps, "finetune.batch_size": args.batch_size,
            "finetune.cpus_per_worker": args.cpus, "finetune.workers": 1, "finetune.max_rows": args.rows,
            "finetune.evaluations": args.evaluations,
        })
        plan = plan_finetune(config, data, "culture", os.path.join(work, "adapters"), only=[args.culture])
        job = plan.jobs[0]
        print(f"data: {job.sft.source} ({len(job.train_rows)} train / {len(job.eval_rows)} eval rows), "
              f"{args.steps} steps of {args.batch_size} rows, {args.cpus:g} CPUs per trainer")
        init_ray(config, num_cpus=max(2, int(args.cpus)))
        plain, ray_ = [], []
        for i in range(args.repeats):
            plain.append(plain_run(plan, job, args.cpus))
            print(f"[{i + 1}] plain HF Trainer: {plain[-1]['samples_per_second']:.3f} samples/s "
                  f"(start-up {plain[-1]['startup_seconds']:.1f} s; eval loss "
                  f"{plain[-1]['eval_before']:.3f} -> {plain[-1]['eval_after']:.3f})")
            ray_.append(ray_run(plan, job, config))
            print(f"[{i + 1}] Ray Train:        {ray_[-1]['samples_per_second']:.3f} samples/s "
                  f"(start-up {ray_[-1]['startup_seconds']:.1f} s, of which Ray workers "
                  f"{ray_[-1]['ray_startup_seconds']:.1f} s; eval loss "
                  f"{ray_[-1]['eval_before']:.3f} -> {ray_[-1]['eval_after']:.3f})")
    p = statistics.median(r["samples_per_second"] for r in plain)
    r = statistics.median(x["samples_per_second"] for x in ray_)
    pc = statistics.median(x["samples_per_cpu_second"] for x in plain)
    rc = statistics.median(x["samples_per_cpu_second"] for x in ray_)
    print(f"start-up (excluded): plain {statistics.median(x['startup_seconds'] for x in plain):.1f} s, "
          f"Ray Train {statistics.median(x['startup_seconds'] for x in ray_):.1f} s")
    print(f"samples per CPU-second (robust to other load): plain {pc:.3f}, Ray Train {rc:.3f}, ratio {rc / pc:.3f}")
    print(f"plain HF Trainer samples/s: {p:.3f}")
    print(f"Ray Train samples/s:        {r:.3f}")
    print(f"ratio Ray Train / plain:    {r / p:.3f}")


if __name__ == "__main__":
    main()
