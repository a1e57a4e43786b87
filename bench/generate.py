"""Benchmark CulturePark generation: the Ray Data pipeline against its ceiling and a naive loop.

All three use the same shared engine actor on the default model (SmolLM2-135M-Instruct):

(a) pipeline  ``generate_dialogues``: N dialogues x R rounds, dialogue workers on a Ray Data actor
              pool, one batched agent call per agent per turn;
(b) ceiling   the very same turns (prompts rebuilt from the pipeline's output) sent straight to the
              engine in full batches of ``engine.max_batch_size``, turn by turn, no dialogue logic;
(c) naive     the dialogues one after another, one request per turn (what the reference
              implementation does); run on the first ``--naive-dialogues`` dialogues, as a rate.

Prints aggregate generated tokens/s for each, then the ratios a/b (target >= 0.8) and a/c (>= 4).

    python bench/generate.py                   # 64 dialogues x 4 rounds, 32 tokens per turn
    python bench/generate.py --dialogues 16 --rounds 2 --naive-dialogues 2   # a quick look
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time

for _key, _value in {"HF_HUB_OFFLINE": "1", "RAY_AUTH_MODE": "disabled", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
                     "OMP_WAIT_POLICY": "PASSIVE"}.items():
    os.environ.setdefault(_key, _value)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dialogues", type=int, default=64, help="dialogues for (a) and (b)")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--max-tokens", type=int, default=32, help="tokens per utterance")
    p.add_argument("--workers", type=int, default=4, help="Ray Data actor-pool size")
    p.add_argument("--batch-size", type=int, default=16, help="dialogues per worker batch")
    p.add_argument("--engine-batch", type=int, default=None, help="engine.max_batch_size (default: the config's)")
    p.add_argument("--naive-dialogues", type=int, default=8, help="dialogues for (c), run one after another")
    p.add_argument("--cpus", type=int, default=None, help="CPUs for the local Ray (default: all)")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    import ray

    from cultura.actors.agents import start_agents
    from cultura.config import load_config
    from cultura.data.seed_files import load_seeds
    from cultura.engines.base import ChatRequest
    from cultura.pipelines.generate.dialogue import run_dialogues
    from cultura.pipelines.generate.run import generate_dialogues, plan_dialogues, read_dialogues, sampling_params
    from cultura.ray_utils import init_ray
    from turns import batched_throughput, turn_requests

    config = load_config(None, {
        "generate.rounds": args.rounds, "generate.workers": args.workers, "generate.batch_size": args.batch_size,
        "sampling.max_tokens": args.max_tokens,
        **({"engine.max_batch_size": args.engine_batch} if args.engine_batch else {}),
    })
    args.engine_batch = config.engine.max_batch_size
    gen = config.generate
    plan = plan_dialogues(gen, load_seeds(gen.seeds, sources=gen.sources), config.engine.model, config.engine.kind)
    rows = plan.rows[: args.dialogues]
    if len(rows) < args.dialogues:
        raise SystemExit(f"only {len(rows)} dialogues can be planned")
    personas = [plan.personas[k] for k in dict.fromkeys(s["key"] for r in rows for s in r["speakers"])]
    init_ray(config, **({"num_cpus": args.cpus} if args.cpus else {}))
    pool = start_agents(personas, config)
    engine = pool.engine
    sampling = sampling_params(config)
    out = tempfile.mkdtemp(prefix="cultura-bench-")

    def engine_figures(label: str) -> None:
        """The shared engine's batches, rows and prefix-cache figures so far (transformers engine)."""
        info = ray.get(engine.info.remote())
        if info.get("prefix_cache"):
            cache = info["prefix_cache"]
            d = info["decode"]
            print(f"{label}: {info['batches_run']} batches, {info['rows_run']} rows; prefix cache {cache['hits']} "
                  f"hits, {cache['misses']} misses, {cache['reused_tokens']} prompt tokens not re-read, "
                  f"{cache['bytes'] / 2**20:.0f} MiB held; read {d['prefill_tokens']} prompt tokens "
                  f"({d['prefill_positions']} positions with padding) in {d['prefill_seconds']:.0f} s, "
                  f"{d['decode_steps']} decode steps ({d['decode_rows']} rows) in {d['decode_seconds']:.0f} s", flush=True)
    try:
        warm = ChatRequest.of([{"role": "user", "content": "Hello"}], max_tokens=4)
        ray.get(engine.generate.remote([warm] * args.engine_batch))  # load the model before timing
        print(f"{args.dialogues} dialogues x {args.rounds} rounds, {args.max_tokens} tokens per turn, "
              f"{len(personas)} agents, engine batch {args.engine_batch}, "
              f"{args.workers} workers x {args.batch_size} dialogues", flush=True)

        # (a) the pipeline
        start = time.perf_counter()
        summary = generate_dialogues(config, out, limit=args.dialogues, agents=pool)
        a_seconds = time.perf_counter() - start
        a_rate = summary.completion_tokens / a_seconds
        print(f"(a) pipeline : {summary.completion_tokens:6d} tokens in {a_seconds:7.1f} s = {a_rate:7.1f} tok/s "
              f"({summary.dialogues} dialogues, {summary.turns} turns, {len(summary.failures)} failures)", flush=True)
        engine_figures("engine during (a)")

        # (b) the same turns, straight to the engine in full batches, turn index by turn index; each
        # phase starts with no cached prompt states, as a run of its own would
        requests = turn_requests(read_dialogues(out).to_pylist(), sampling)
        b_tokens, b_seconds = batched_throughput(engine, requests, args.engine_batch)
        b_rate = b_tokens / b_seconds
        print(f"(b) ceiling  : {b_tokens:6d} tokens in {b_seconds:7.1f} s = {b_rate:7.1f} tok/s "
              f"({len(requests)} requests in batches of {args.engine_batch})", flush=True)

        # (c) naive: one dialogue after another, one request per turn, same engine
        def one_request_per_turn(groups):
            answers = {}
            for key, (convs, systems, _) in groups.items():
                answers[key] = [ray.get(engine.generate.remote([ChatRequest(
                    ({"role": "system", "content": s}, *c), sampling)]))[0] for c, s in zip(convs, systems)]
            return answers

        ray.get(engine.clear_prefix_cache.remote())
        start = time.perf_counter()
        per_dialogue, c_tokens = [], 0
        for row in rows[: args.naive_dialogues]:
            t0 = time.perf_counter()
            [done] = run_dialogues([row], one_request_per_turn)
            per_dialogue.append(time.perf_counter() - t0)
            c_tokens += done["completion_tokens"]
        c_seconds = time.perf_counter() - start
        c_rate = c_tokens / c_seconds
        print(f"(c) naive    : {c_tokens:6d} tokens in {c_seconds:7.1f} s = {c_rate:7.1f} tok/s "
              f"({len(per_dialogue)} dialogues, median {statistics.median(per_dialogue):.1f} s each)", flush=True)
        engine_figures("engine over (a)-(c)")
        print(f"a/b = {a_rate / b_rate:.2f}  (target >= 0.80)")
        print(f"a/c = {a_rate / c_rate:.2f}  (target >= 4)")
    finally:
        pool.stop()
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
