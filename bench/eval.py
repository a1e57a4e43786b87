"""Evaluation throughput: the Ray Data job (actor pool, one engine per actor) vs a plain in-process loop.

    python bench/eval.py                      # 12 VSM items x 2 cultures x prompted, option scoring
    python bench/eval.py --items 24 --cultures german,korean,turkish --actors 1

Both answer the same plan rows (``cultura.eval.jobs`` builds them) by option scoring with the
default engine: the plain loop creates one engine in this process and scores the rows one by one;
the Ray Data job is :func:`cultura.eval.runner.answer_rows`. Every job starts its own actor pool, so
its time includes the actors' model loading; the job is run twice and the second run (Ray already
up) is the figure compared with the plain loop's start-up plus answering. Rows/s counts answered
rows; the ratio (Ray Data rows/s / plain rows/s) is printed last.
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


def plan_rows(items: int, cultures: str, method: str) -> list[dict]:
    """Ray Data rows for the first ``items`` VSM items x cultures with one method."""
    from cultura.eval.methods import MethodContext, get_methods
    from cultura.eval.vsm_eval import resolve_targets, vsm_questions

    [m] = get_methods(method)
    rows = []
    for target in resolve_targets(cultures):
        for q in vsm_questions()[:items]:
            rows.append({"row_id": len(rows), "plan": m.build(MethodContext(), target, q.prompt).to_json(),
                         "options": list(q.options)})
    return rows


def plain(rows: list[dict], config) -> tuple[float, float]:
    """(start-up seconds, answering seconds) of one in-process engine scoring the rows in turn."""
    from cultura.engines import create_engine
    from cultura.eval.answers import option_numbers

    t0 = time.perf_counter()
    engine = create_engine(config.engine, num_threads=int(config.engine_resources.num_cpus))
    startup = time.perf_counter() - t0

    async def run() -> None:
        for row in rows:
            for component in json.loads(row["plan"]):
                await engine.score_options(component["messages"], option_numbers(len(row["options"])),
                                           component["adapter"])

    t1 = time.perf_counter()
    asyncio.run(run())
    return startup, time.perf_counter() - t1


def ray_job(rows: list[dict], config) -> tuple[float, float]:
    """(first run seconds, second run seconds) of the Ray Data job; the first includes start-up."""
    from cultura.eval.runner import answer_rows
    from cultura.ray_utils import init_ray

    init_ray(config)
    t0 = time.perf_counter()
    answer_rows(rows, config, {})
    first = time.perf_counter() - t0
    t1 = time.perf_counter()
    answer_rows(rows, config, {})
    return first, time.perf_counter() - t1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=12, help="VSM items per culture (1-24)")
    parser.add_argument("--cultures", default="german,korean")
    parser.add_argument("--method", default="prompted")
    parser.add_argument("--actors", type=int, default=1)
    args = parser.parse_args()

    from cultura.config import load_config

    config = load_config(overrides={"eval.actors": args.actors})
    rows = plan_rows(args.items, args.cultures, args.method)
    start_plain, plain_s = plain(rows, config)
    first, steady = ray_job(rows, config)
    n = len(rows)
    print(f"rows: {n} ({args.items} items x {args.cultures} x {args.method}), option scoring, "
          f"{args.actors} actor(s)")
    plain_total = start_plain + plain_s
    print(f"plain loop: model load {start_plain:.1f} s + answering {plain_s:.1f} s = {plain_total:.1f} s, "
          f"{n / plain_total:.2f} rows/s ({n / plain_s:.2f} rows/s answering only)")
    print(f"Ray Data job: first run {first:.1f} s (Ray start-up included), second run {steady:.1f} s "
          f"(actor start and model load included), {n / steady:.2f} rows/s")
    print(f"ratio Ray Data / plain rows/s (both with model load): {plain_total / steady:.2f}")


if __name__ == "__main__":
    main()
