"""Orchestration at scale: `cultura generate` at thousands of dialogues, on a model too small to matter.

The model is a randomly initialised copy of the default's architecture (SmolLM2-135M-Instruct's
LlamaForCausalLM configuration and tokenizer) cut to two layers, built in memory and saved to a
temporary folder that the transformers engine loads like any model. ITS TEXT IS MEANINGLESS: this
bench measures the orchestration (planning, Ray Data, agents, the engine's batching, the writer),
not the model. The seeds are a GlobalOpinionQA-format CSV the bench writes, one question per four
dialogues of the largest size (2,500 questions at 10,000 dialogues, 25,000 at 100,000), with answers
for four countries (Germany, China, Egypt, Spain: four cultures).

The answer-language check is off here (``sampling.language_candidates: 1``): the detector places
the random model's text in no language, so with the default (8) every answer would be re-asked with
7 sampled candidates, and the run would measure the reranking (a run with it on went 9x slower, while
the pipeline/raw ratio stayed put, because the raw ceiling reranks the same way). A real model's
answer already in the asked language costs nothing more.

For each size (default 1,000 and 10,000 dialogues of 2 rounds; questions x 4 cultures), in a process
of its own (so that its peak memory is its own), it prints:

- dialogues/s over the pipeline's wall time (agents started, model loaded, before the clock starts);
- the driver's peak resident memory (VmHWM), next to what it held before the run;
- the object store's peak use (sampled every 0.25 s);
- the pipeline's generated tokens/s as a ratio of the same engine's raw batched throughput: the
  run's own turns (the first ``--ceiling-dialogues`` dialogues) sent straight to the engine actor in
  full batches (target >= 0.8 at every size).

Last, one line: ``scale: ratio 1000=X 10000=Y ...; driver peak LARGEST/SMALLEST = W`` (target W <= 1.10).

    python bench/scale.py                              # 1,000 and 10,000 dialogues
    python bench/scale.py --sizes 1000                 # one size, a few minutes on 2 cores
    python bench/scale.py --sizes 1000,10000,100000 --max-tokens 4   # the survey-scale run
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
from typing import Any

for _key, _value in {"HF_HUB_OFFLINE": "1", "RAY_AUTH_MODE": "disabled", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
                     "OMP_WAIT_POLICY": "PASSIVE"}.items():
    os.environ.setdefault(_key, _value)

CULTURES = ("german", "chinese", "arabic", "spanish")
COUNTRIES = ("Germany", "China", "Egypt", "Spain")  # one country of each culture
OPTIONS = ["Very important", "Rather important", "Not very important", "Not at all important"]
TOPICS = ["family", "friends", "leisure time", "politics", "work", "religion", "tradition", "science", "art",
          "sport", "the environment", "education", "neighbours", "money", "health", "honesty", "courage",
          "thrift", "tolerance", "obedience", "independence", "imagination", "faith", "hard work", "loyalty"]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="1000,10000", help="dialogue counts, comma-separated (multiples of 4)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--max-tokens", type=int, default=16, help="tokens per utterance")
    p.add_argument("--layers", type=int, default=2, help="layers of the random model")
    p.add_argument("--workers", type=int, default=4, help="Ray Data dialogue workers")
    p.add_argument("--batch-size", type=int, default=64, help="dialogues one worker runs together")
    p.add_argument("--ceiling-dialogues", type=int, default=500,
                   help="dialogues whose turns measure the raw batched throughput")
    p.add_argument("--cpus", type=int, default=None, help="CPUs of the local Ray (default: all)")
    p.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)  # a child run: this many dialogues
    p.add_argument("--model-dir", default=None, help=argparse.SUPPRESS)
    p.add_argument("--seeds-file", default=None, help=argparse.SUPPRESS)
    return p.parse_args()


def write_seeds(path: str, questions: int) -> None:
    """A GlobalOpinionQA CSV (question, selections, options, source) of ``questions`` questions, answered
    (as shares of each option) for the four countries."""
    import random

    rng = random.Random(0)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["question", "selections", "options", "source"])
        for i in range(questions):
            topic = TOPICS[i % len(TOPICS)]
            shares = {c: [round(rng.random(), 3) for _ in OPTIONS] for c in COUNTRIES}
            selections = "defaultdict(<class 'list'>, " + repr(shares) + ")"
            writer.writerow([f"Survey item {i + 1}: how important is {topic} in your life?", selections,
                             repr(OPTIONS), "WVS"])


def build_model(folder: str, layers: int) -> None:
    """The default model's configuration and tokenizer with ``layers`` randomly initialised layers."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from cultura.models import resolve_model

    source = resolve_model("default")
    config = AutoConfig.from_pretrained(source)
    config.num_hidden_layers = layers
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(folder, safe_serialization=True)
    AutoTokenizer.from_pretrained(source).save_pretrained(folder)


def sample_store(gcs_address: str, period: float, stop: Any, peak: Any) -> None:
    """Keep the largest object-store use seen in ``peak`` until ``stop`` is set (runs in its own process:
    each sample opens a gRPC channel, which would otherwise count in the driver's memory)."""
    from ray._private.internal_api import get_memory_info_reply, get_state_from_address

    state = get_state_from_address(gcs_address)
    while not stop.wait(period):
        try:
            used = get_memory_info_reply(state, timeout_seconds=5).store_stats.object_store_bytes_used
        except Exception:  # a slow raylet: skip this sample
            continue
        peak.value = max(peak.value, used)


class StoreSampler:
    """Samples the object store's bytes in use every ``period`` seconds, in a process of its own."""

    def __init__(self, period: float = 0.25):
        import multiprocessing

        import ray

        context = multiprocessing.get_context("spawn")
        self.stop, self.peak = context.Event(), context.Value("q", 0)
        self.process = context.Process(target=sample_store, daemon=True,
                                       args=(ray.get_runtime_context().gcs_address, period, self.stop, self.peak))
        self.process.start()

    def close(self) -> int:
        """Stop sampling; the peak in bytes."""
        self.stop.set()
        self.process.join(timeout=30)
        return self.peak.value


def memory_mib(field: str) -> float:
    """A memory figure of this process in MiB from /proc/self/status: ``VmRSS`` (now) or ``VmHWM`` (its
    peak; unlike ``ru_maxrss`` it does not carry over the parent's peak through fork and exec)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def child(args: argparse.Namespace) -> None:
    """One size: plan, run and measure; prints one JSON line."""
    import ray

    from cultura.actors.agents import start_agents
    from cultura.config import load_config
    from cultura.data.seed_files import load_seeds
    from cultura.engines.base import ChatRequest
    from cultura.pipelines.generate.plan import count_plan
    from cultura.pipelines.generate.run import generate_dialogues, read_dialogues, sampling_params
    from cultura.ray_utils import init_ray
    from turns import batched_throughput, turn_requests

    config = load_config(None, {
        "engine.model": args.model_dir, "generate.cultures": list(CULTURES), "generate.seeds": args.seeds_file,
        "generate.max_seeds": args.one // len(CULTURES), "generate.rounds": args.rounds,
        "generate.workers": args.workers, "generate.batch_size": args.batch_size, "generate.rows_per_file": 1000,
        "sampling.max_tokens": args.max_tokens, "sampling.temperature": 0.0,
        "sampling.language_candidates": 1})  # the random model's text is in no language: see the docstring
    gen = config.generate
    init_ray(config, **({"num_cpus": args.cpus} if args.cpus else {}))
    seeds = load_seeds(gen.seeds, cultures=CULTURES)[: gen.max_seeds]
    # the agents the run needs, counted as the run counts them (holding no rows: VmHWM is the whole process's peak)
    count = count_plan(gen, seeds, config.engine.model, config.engine.kind, frozenset())
    pool = start_agents(list(count.personas.values()), config)
    engine = pool.engine
    out = tempfile.mkdtemp(prefix="cultura-scale-")
    try:
        warm = ChatRequest.of([{"role": "user", "content": "Hello"}], max_tokens=2)
        ray.get(engine.generate.remote([warm] * config.engine.max_batch_size))  # the model loaded before the clock
        del count, seeds  # the run plans again, as a user's run does
        before = memory_mib("VmRSS")
        sampler = StoreSampler()
        summary = generate_dialogues(config, out, agents=pool)
        store_peak = sampler.close()
        peak = memory_mib("VmHWM")
        sample = read_dialogues(out).slice(0, args.ceiling_dialogues).to_pylist()
        tokens, seconds = batched_throughput(engine, turn_requests(sample, sampling_params(config)),
                                             config.engine.max_batch_size)
        print(json.dumps({
            "dialogues": summary.dialogues, "planned": summary.planned, "failures": len(summary.failures),
            "seconds": summary.seconds, "dialogues_per_s": summary.dialogues / summary.seconds,
            "tokens_per_s": summary.tokens_per_s, "raw_tokens_per_s": tokens / seconds,
            "driver_rss_before_mib": before, "driver_peak_rss_mib": peak, "store_peak_mib": store_peak / 2**20,
            "agents": len(pool.agents)}), flush=True)
    finally:
        pool.stop()
        ray.shutdown()
        import shutil

        shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    args = parse_args()
    if args.one:
        return child(args)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if not sizes or any(n < len(CULTURES) or n % len(CULTURES) for n in sizes):
        raise SystemExit(f"--sizes: dialogue counts, each a multiple of {len(CULTURES)}")
    questions = max(sizes) // len(CULTURES)
    work = tempfile.mkdtemp(prefix="cultura-scale-bench-")
    model_dir, seeds_file = os.path.join(work, "model"), os.path.join(work, "goqa.csv")
    write_seeds(seeds_file, questions)
    build_model(model_dir, args.layers)
    print(f"model: SmolLM2-135M-Instruct's architecture, {args.layers} layers, randomly initialised: its text is "
          "meaningless; this measures the orchestration, not the model", flush=True)
    print(f"seeds: {questions} GlobalOpinionQA-format questions x {len(CULTURES)} cultures; {args.rounds} rounds, "
          f"{args.max_tokens} tokens per utterance, {args.workers} workers x {args.batch_size} dialogues; "
          "answer-language check off (the text is in no language)", flush=True)
    results = {}
    try:
        for n in sizes:
            cmd = [sys.executable, os.path.abspath(__file__), "--one", str(n), "--model-dir", model_dir,
                   "--seeds-file", seeds_file, "--rounds", str(args.rounds), "--max-tokens", str(args.max_tokens),
                   "--workers", str(args.workers), "--batch-size", str(args.batch_size),
                   "--ceiling-dialogues", str(args.ceiling_dialogues), *(["--cpus", str(args.cpus)] if args.cpus else [])]
            run = subprocess.run(cmd, capture_output=True, text=True)
            lines = [line for line in run.stdout.splitlines() if line.startswith("{")]
            if run.returncode != 0 or not lines:
                raise SystemExit(f"the {n}-dialogue run failed:\n{run.stderr[-3000:]}")
            r = results[n] = json.loads(lines[-1])
            print(f"{n:6d} dialogues: {r['dialogues']} written ({r['failures']} failed) in {r['seconds']:.1f} s = "
                  f"{r['dialogues_per_s']:.1f} dialogues/s; pipeline {r['tokens_per_s']:.0f} tok/s = "
                  f"{r['tokens_per_s'] / r['raw_tokens_per_s']:.2f} x the engine's raw batched "
                  f"{r['raw_tokens_per_s']:.0f} tok/s; driver peak RSS {r['driver_peak_rss_mib']:.0f} MiB "
                  f"({r['driver_rss_before_mib']:.0f} before the run); object store peak {r['store_peak_mib']:.0f} MiB",
                  flush=True)
    finally:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    if results:
        small, large = min(results), max(results)
        ratios = " ".join(f"{n}={r['tokens_per_s'] / r['raw_tokens_per_s']:.2f}" for n, r in sorted(results.items()))
        growth = results[large]["driver_peak_rss_mib"] / results[small]["driver_peak_rss_mib"]
        print(f"scale: ratio {ratios}; driver peak {large}/{small} = {growth:.2f} (targets: ratio >= 0.80, "
              "driver peak <= 1.10)")


if __name__ == "__main__":
    main()
