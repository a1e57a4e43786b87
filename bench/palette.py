"""Cultural Palette performance on the default model (a script; prints figures, ratios last).

1. Latency: one ``respond`` (aggregate blend, top-k continents) against one single-agent generation
   with the same max_tokens, median of ``--runs`` runs each. The top-k drafts run concurrently in one
   engine batch, then the Meta Agent writes the answer, so the floor of the ratio is about 2.
   Target: <= 2.5.
2. Throughput: ``respond_batch`` over ``--prompts`` prompts (Ray Data, every stage batched across
   prompts) against the same number of sequential ``respond`` calls. Target: >= 3x.

    python bench/palette.py [--runs 5] [--max-tokens 32] [--prompts 64] [--top-k 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

for _key, _value in (("HF_HUB_OFFLINE", "1"), ("RAY_AUTH_MODE", "disabled"),
                     ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0"), ("OMP_WAIT_POLICY", "PASSIVE")):
    os.environ.setdefault(_key, _value)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="timed runs per latency figure (median)")
    parser.add_argument("--max-tokens", type=int, default=32, help="tokens per draft, answer and single generation")
    parser.add_argument("--prompts", type=int, default=64, help="prompts for the throughput comparison (0: skip)")
    parser.add_argument("--top-k", type=int, default=3, help="continents that draft")
    parser.add_argument("--workers", type=int, default=2, help="respond_batch: Ray Data actors")
    parser.add_argument("--batch-size", type=int, default=32, help="respond_batch: prompts per batch")
    parser.add_argument("--engine-batch", type=int, default=64, help="engine micro-batch size (max_batch_size)")
    parser.add_argument("--config", default=None, help="YAML configuration file")
    return parser.parse_args()


def single_generation(pal, prompt: str) -> tuple[float, int]:
    """One continent agent's generation for one prompt: (seconds, generated tokens)."""
    import ray

    from cultura.palette.meta import draft_messages

    messages = draft_messages(prompt, "Asia")
    settings = pal.settings()
    start = time.perf_counter()
    [completion] = ray.get(pal.handles.agents["Asia"].respond.remote(
        [messages[1:]], settings.draft_sampling, [messages[0]["content"]]))
    return time.perf_counter() - start, completion.completion_tokens


def main() -> None:
    args = parse_args()
    from cultura.config import load_config
    from cultura.data.prompts import load_prompts
    from cultura.palette import Palette

    config = load_config(args.config, {
        "palette.max_tokens": args.max_tokens, "palette.top_k": args.top_k, "palette.blend": "aggregate",
        "palette.workers": args.workers, "palette.batch_size": args.batch_size,
        "engine.max_batch_size": args.engine_batch})
    texts = [p.text for p in load_prompts("bundled")]
    with Palette(config) as pal:
        started = time.perf_counter()
        pal.respond(texts[0])  # warm-up: model, gate embedder, agents
        single_generation(pal, texts[0])
        print(f"start-up and warm-up      {time.perf_counter() - started:.1f} s")

        respond_s, single_s, single_tokens = [], [], []
        for i in range(args.runs):
            prompt = texts[(i + 1) % len(texts)]
            start = time.perf_counter()
            response = pal.respond(prompt)
            respond_s.append(time.perf_counter() - start)
            seconds, tokens = single_generation(pal, prompt)
            single_s.append(seconds)
            single_tokens.append(tokens)
        print(f"respond (aggregate, k={args.top_k})  median {statistics.median(respond_s):.2f} s "
              f"over {args.runs} runs (last: {', '.join(f'{k} {v:.2f}' for k, v in response.timings.items())})")
        print(f"single generation         median {statistics.median(single_s):.2f} s "
              f"({statistics.mean(single_tokens):.1f} tokens on average, max_tokens {args.max_tokens})")

        throughput = None
        if args.prompts:
            batch = [texts[i % len(texts)] for i in range(args.prompts)]
            start = time.perf_counter()
            for prompt in batch:
                pal.respond(prompt)
            sequential = time.perf_counter() - start
            start = time.perf_counter()
            rows = pal.respond_batch(batch).take_all()
            batched = time.perf_counter() - start
            assert len(rows) == len(batch)
            print(f"{args.prompts} sequential respond     {sequential:.1f} s ({args.prompts / sequential:.2f} prompts/s)")
            print(f"respond_batch of {args.prompts}       {batched:.1f} s ({args.prompts / batched:.2f} prompts/s, "
                  f"{args.workers} workers x {args.batch_size} prompts, engine batch {args.engine_batch})")
            throughput = sequential / batched

    print(f"latency ratio respond / single generation: {statistics.median(respond_s) / statistics.median(single_s):.2f} "
          "(target <= 2.5)")
    if throughput is not None:
        print(f"throughput ratio respond_batch / sequential: {throughput:.2f}x (target >= 3)")


if __name__ == "__main__":
    main()
