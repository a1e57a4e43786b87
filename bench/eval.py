"""Evaluation throughput: one-at-a-time vs batched option scoring, and the Ray Data job vs a plain loop.

    python bench/eval.py                      # 8 VSM items x 3 countries x the opinion report's 5 methods
    python bench/eval.py --items 24 --countries Germany,Japan,Brazil --methods prompted

All three answer the same plan rows (VSM items standing in for survey questions, x countries x
methods, built and ordered as the evaluation builds them: question by question):

- sequential: an engine in this process, without a prefix cache, scores each row's chats one call
  at a time (how option scoring ran before it was batched);
- plain batched loop: an engine in this process answers the rows batch by batch, each batch as one
  Ray Data task does it (:class:`cultura.eval.runner.BatchAnswerer`: identical chats once, one
  ``score_batch`` call per batch, shared prefixes read once, the prefix cache on);
- Ray Data job: :meth:`cultura.eval.runner.EnginePool.answer` on engine actors started before it
  (their start-up is reported apart; the job's figure is the steady state).

Rows/s counts rows. The sequential figure over distinct chats only (each chat timed at its first
call) is printed too: it leaves out what scoring an identical chat once saves. The report estimate
counts the distinct chats per question of an 18-country (palette18) report with the same methods,
times GlobalOpinionQA's 2,556 questions, at the Ray job's distinct chats per second (it assumes its
questions cost what these VSM items do). The last line is exactly
``batched/sequential = X.XX; ray/plain = Y.YY``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time

for key, value in {"HF_HUB_OFFLINE": "1", "RAY_AUTH_MODE": "disabled", "OMP_WAIT_POLICY": "PASSIVE",
                   "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}.items():
    os.environ.setdefault(key, value)

GLOBALOPINIONQA_QUESTIONS = 2556
REPORT_METHODS = "base,prompted,nearest-continent,uniform-blend,gate-mixture"  # `cultura eval opinions`' default


def plan_rows(items: int, countries: list[str], methods: str, ctx) -> list[dict]:
    """Plan rows for the first ``items`` VSM items x countries x methods, question by question."""
    from cultura.eval.methods import country_target, get_methods
    from cultura.eval.vsm_eval import vsm_questions

    targets = [country_target(c) for c in countries]
    rows = []
    for q in vsm_questions()[:items]:
        for target in targets:
            for method in get_methods(methods):
                rows.append({"row_id": len(rows), "plan": method.build(ctx, target, q.prompt).to_json(),
                             "options": list(q.options)})
    return rows


def chat_key(component: dict, options: list) -> str:
    """What makes two chats the same (as the batch answerer sees it)."""
    return json.dumps([component["messages"], component["adapter"], len(options)], sort_keys=True)


def sequential(rows: list[dict], config) -> tuple[float, float, dict[int, list[float]]]:
    """(seconds for every row's chats, seconds for each distinct chat's first call, row_id -> probs),
    one call at a time on an engine without a prefix cache."""
    from cultura.engines import create_engine
    from cultura.choices import option_numbers, softmax
    from cultura.eval.metrics import mixture

    engine = create_engine(config.engine.model_copy(update={"prefix_cache_mb": 0}),
                           num_threads=int(config.engine_resources.num_cpus))
    first_calls = 0.0
    seen: set[str] = set()
    probs: dict[int, list[float]] = {}

    async def run() -> None:
        nonlocal first_calls
        for row in rows:
            components = json.loads(row["plan"])
            parts = []
            for c in components:
                started = time.perf_counter()
                scores = await engine.score_options(c["messages"], option_numbers(len(row["options"])), c["adapter"])
                if chat_key(c, row["options"]) not in seen:
                    seen.add(chat_key(c, row["options"]))
                    first_calls += time.perf_counter() - started
                parts.append(softmax(scores.logprobs))
            probs[row["row_id"]] = mixture(parts, [c["weight"] for c in components])
        await engine.close()

    started = time.perf_counter()
    asyncio.run(run())
    return time.perf_counter() - started, first_calls, probs


def plain_batched(rows: list[dict], config) -> tuple[float, dict[int, list[float]], dict]:
    """(seconds, row_id -> probs, the engine's scoring totals) of an engine in this process answering
    the rows batch by batch as the Ray Data tasks do."""
    from cultura.engines import create_engine
    from cultura.eval.runner import BatchAnswerer, batch_size

    engine = create_engine(config.engine, num_threads=int(config.engine_resources.num_cpus))
    answerer = BatchAnswerer.on_engine(engine, config.eval)
    size = batch_size(config)
    probs: dict[int, list[float]] = {}

    async def run() -> None:
        for start in range(0, len(rows), size):
            for answer in await answerer.answer(rows[start:start + size]):
                probs[answer["row_id"]] = answer["probs"]
        await engine.close()

    started = time.perf_counter()
    asyncio.run(run())
    return time.perf_counter() - started, probs, engine.score_stats.as_dict()


def ray_job(rows: list[dict], config) -> tuple[float, float, dict[int, list[float]]]:
    """(start-up seconds of the engine actors, seconds of the Ray Data job, row_id -> probs)."""
    from cultura.eval.runner import EnginePool
    from cultura.ray_utils import init_ray

    init_ray(config)
    with EnginePool(config) as pool:
        pool.start()
        started = time.perf_counter()
        answers = pool.answer(rows)
        seconds = time.perf_counter() - started
        return pool.startup_s, seconds, {i: a["probs"] for i, a in answers.items()}


def batch_chats(rows: list[dict], size: int) -> int:
    """Distinct chats summed over the batches of ``size`` rows (what the batched paths score)."""
    total = 0
    for start in range(0, len(rows), size):
        total += len({chat_key(c, r["options"]) for r in rows[start:start + size] for c in json.loads(r["plan"])})
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=8, help="VSM items (1-24)")
    parser.add_argument("--countries", default="Germany,Japan,Brazil")
    parser.add_argument("--methods", default=REPORT_METHODS)
    parser.add_argument("--actors", type=int, default=1, help="engine actors of the Ray Data job")
    args = parser.parse_args()

    from cultura.config import load_config
    from cultura.eval.context import build_context
    from cultura.eval.countries import resolve_countries
    from cultura.eval.runner import batch_size

    config = load_config(overrides={"eval.actors": args.actors})
    ctx = build_context(config)
    rows = plan_rows(args.items, resolve_countries(args.countries), args.methods, ctx)
    components = sum(len(json.loads(r["plan"])) for r in rows)
    distinct = len({chat_key(c, r["options"]) for r in rows for c in json.loads(r["plan"])})
    size = batch_size(config)
    scored = batch_chats(rows, size)
    seq_s, seq_first_s, seq_probs = sequential(rows, config)
    plain_s, plain_probs, stats = plain_batched(rows, config)
    startup_s, ray_s, ray_probs = ray_job(rows, config)
    report = plan_rows(args.items, resolve_countries("palette18"), args.methods, ctx)
    report_chats = batch_chats(report, size) / args.items * GLOBALOPINIONQA_QUESTIONS
    report_rows = len(report) / args.items * GLOBALOPINIONQA_QUESTIONS

    n = len(rows)
    difference = max(abs(a - b) for i in seq_probs for a, b in zip(seq_probs[i], plain_probs[i]))
    agree = max(abs(a - b) for i in plain_probs for a, b in zip(plain_probs[i], ray_probs[i]))
    print(f"rows: {n} ({args.items} VSM items x {args.countries} x {args.methods}); {components} chats to score, "
          f"{distinct} distinct; batches of {size} rows ({scored} chats scored in them)")
    print(f"sequential (each row's chats in turn, no prefix cache): {seq_s:.1f} s, {n / seq_s:.2f} rows/s; "
          f"its {distinct} distinct chats alone: {seq_first_s:.1f} s")
    print(f"plain batched loop: {plain_s:.1f} s, {n / plain_s:.2f} rows/s; {stats['read_tokens']} of "
          f"{stats['prompt_tokens']} prompt tokens read, {stats['shared_prefixes']} shared prefixes, "
          f"{stats['forward_passes']} forward passes; largest difference from sequential: {difference:.1e}")
    print(f"Ray Data job: engine start-up {startup_s:.1f} s (apart), steady {ray_s:.1f} s, {n / ray_s:.2f} rows/s, "
          f"{scored / ray_s:.2f} chats/s; largest difference from the plain loop: {agree:.1e}")
    print(f"per chat scored, identical chats not counted: batched/sequential = "
          f"{seq_first_s / distinct / (plain_s / scored):.2f}")
    hours = report_chats / (scored / ray_s) / 3600
    print(f"report estimate: 18 countries x {len(args.methods.split(','))} methods x {GLOBALOPINIONQA_QUESTIONS} "
          f"questions = {report_rows:,.0f} rows, ~{report_chats:,.0f} chats to score: {hours:.1f} h at the Ray "
          f"job's {scored / ray_s:.2f} chats/s, plus {startup_s:.0f} s start-up")
    print(f"batched/sequential = {seq_s / plain_s:.2f}; ray/plain = {plain_s / ray_s:.2f}")


if __name__ == "__main__":
    main()
