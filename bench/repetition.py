"""Does the repetition guard keep persona answers from looping? Answers with and without it.

    python bench/repetition.py                              # transformers engine, default model
    .venv-vllm/bin/python bench/repetition.py --engine vllm
    python bench/repetition.py --show --json bench-repetition.json

Every culture persona answers every question (as ``cultura chat`` asks it) at each temperature, once
with the repetition penalty off (1.0) and once with the configured default
(``sampling.repetition_penalty``). An answer loops when a run of 8 words recurs 3 times or more
(:func:`cultura.engines.repetition.loops`); the table shows, per temperature and penalty, how many
answers loop and the most repeated 8-word run of each answer. Sampled rows use the seed ``--seed``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time

QUESTIONS = ["How important is family in your life?", "What do you think about working hard?",
             "Should women have the same rights as men?", "How do you feel about religion?"]


def run(args: argparse.Namespace) -> list[dict]:
    """One row per (temperature, penalty, culture, question): the answer and its repetition figures."""
    from cultura.config import SamplingConfig, engine_config
    from cultura.engines import create_engine
    from cultura.engines.base import ChatRequest
    from cultura.engines.repetition import loops, most_repeated_span
    from cultura.personas import culture_persona

    penalties = (1.0, args.penalty or SamplingConfig().repetition_penalty)
    cases = [(t, p, c, q) for t in args.temperatures for p in penalties for c in args.cultures for q in args.questions]
    requests = [ChatRequest.of(culture_persona(c).messages(q), max_tokens=args.max_tokens, temperature=t, seed=args.seed,
                               repetition_penalty=p) for t, p, c, q in cases]
    engine = create_engine(engine_config(kind=args.engine, model=args.model))

    async def answer() -> list:
        try:
            return await engine.generate(requests)
        finally:
            await engine.close()

    start = time.perf_counter()
    completions = asyncio.run(answer())
    print(f"{len(requests)} answers in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return [{"temperature": t, "repetition_penalty": p, "culture": c, "question": q, "text": done.text,
             "most_repeated_8_words": most_repeated_span(done.text), "loops": loops(done.text)}
            for (t, p, c, q), done in zip(cases, completions)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", choices=["transformers", "vllm"], default="transformers")
    parser.add_argument("--model", default="default")
    parser.add_argument("--cultures", type=lambda s: s.split(","), default=["german", "chinese", "arabic"])
    parser.add_argument("--questions", type=lambda s: s.split("|"), default=QUESTIONS,
                        help="questions separated by '|'")
    parser.add_argument("--temperatures", type=lambda s: [float(t) for t in s.split(",")], default=[0.0, 0.7],
                        help="comma-separated (default 0 and the configured 0.7)")
    parser.add_argument("--penalty", type=float, default=None, help="the guarded penalty (default: the configured one)")
    parser.add_argument("--max-tokens", type=int, default=160, help="as `cultura chat` (default 160)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--show", action="store_true", help="print every answer")
    parser.add_argument("--json", default=None, help="write the rows to this file")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    rows = run(args)
    groups: dict[tuple[float, float], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["temperature"], row["repetition_penalty"]), []).append(row)
    print(f"{'temperature':>11}  {'penalty':>7}  {'looping':>8}  most repeated 8-word run per answer")
    for (t, p), group in groups.items():
        print(f"{t:>11g}  {p:>7g}  {sum(r['loops'] for r in group):>3} / {len(group):<2}  "
              f"{[r['most_repeated_8_words'] for r in group]}")
    if args.show:
        for row in rows:
            print(f"\n--- T={row['temperature']:g} penalty={row['repetition_penalty']:g} {row['culture']}: "
                  f"{row['question']}\n{row['text']}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=2, ensure_ascii=False)


if __name__ == "__main__":
    main()
