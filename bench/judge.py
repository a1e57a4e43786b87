"""How well a model verifies opinions: accuracy and macro-F1 next to the majority-label baseline.

    python bench/judge.py                         # the default model, 180 items from the bundled seeds
    python bench/judge.py --model Qwen/Qwen2.5-7B-Instruct --items 300
    python bench/judge.py --seeds my_seeds.jsonl --engine vllm

The labelled set is built from the seeds' own attitudes (:mod:`cultura.pipelines.refine.judge_check`):
for a seed and a country's answer, a first-person opinion that restates the answer (gold ``Entail``),
takes the option at the other end of the scale (``Contradict``), or answers a seed on another topic
(``Irrelevant``), the labels in turn. Each item is judged exactly as refinement verifies an opinion
(:func:`cultura.pipelines.refine.verify.judge`: option scoring, every cyclic order of the labels), by
one engine in this process. Printed: accuracy, macro-F1, the labels predicted, the mean valid mass,
each label's recall, and the same for always answering the most common gold label.
"""

from __future__ import annotations

import argparse
import os
import time

for key, value in {"HF_HUB_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE"}.items():
    os.environ.setdefault(key, value)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="default", help="model name or folder (default: SmolLM2-135M-Instruct)")
    parser.add_argument("--engine", default="transformers", choices=["transformers", "vllm", "openai"])
    parser.add_argument("--seeds", default="bundled", help="seed file or 'bundled'")
    parser.add_argument("--cultures", default="arabic,bengali,chinese,german,korean,portuguese,spanish,turkish",
                        help="cultures whose primary countries' attitudes make the items")
    parser.add_argument("--items", type=int, default=180, help="labelled items (at least 150 for the figures)")
    parser.add_argument("--batch", type=int, default=16, help="items per engine call")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the transformers engine")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    from cultura.config import engine_config
    from cultura.data.cultures import get_culture
    from cultura.data.seed_files import load_seeds
    from cultura.engines.base import Failure
    from cultura.pipelines.refine.judge_check import labelled_items, score_judge, seed_attitudes_of
    from cultura.pipelines.refine.llm_stage import EngineCaller
    from cultura.pipelines.refine.verify import LABELS, judge

    countries = [get_culture(c.strip()).primary_country for c in args.cultures.split(",") if c.strip()]
    items = labelled_items(seed_attitudes_of(load_seeds(args.seeds), countries), args.items)
    gold = {label: sum(i["expected"] == label for i in items) for label in LABELS}
    print(f"{len(items)} labelled items from {args.seeds} seeds and {', '.join(countries)}: {gold}")
    caller = EngineCaller(engine_config=engine_config(kind=args.engine, model=args.model), num_threads=args.threads)
    start = time.perf_counter()
    judged = []
    try:
        for i in range(0, len(items), args.batch):
            batch = items[i:i + args.batch]
            judged += list(zip(batch, judge(batch, caller.score)))
            print(f"  {len(judged)}/{len(items)} judged, {time.perf_counter() - start:.0f} s", flush=True)
    finally:
        caller.close()
    failed = [item for item, r in judged if isinstance(r, Failure)]
    ran = [(item, r) for item, r in judged if not isinstance(r, Failure)]
    if not ran:
        raise SystemExit(f"every request failed, e.g. {judged[0][1].error if judged else 'no items'}")
    expected = [item["expected"] for item, _ in ran]
    predicted = [r.label for _, r in ran]
    score = score_judge(expected, predicted, [r.valid_mass for _, r in ran])
    recall = {label: sum(p == e == label for e, p in zip(expected, predicted)) / max(1, expected.count(label))
              for label in LABELS}
    print(f"\nmodel {args.model} ({args.engine}), {score.items} items judged in {time.perf_counter() - start:.0f} s"
          + (f", {len(failed)} failed" if failed else ""))
    print(f"{'':24}{'accuracy':>10}{'macro-F1':>10}")
    print(f"{'verification':24}{score.accuracy:>10.3f}{score.macro_f1:>10.3f}")
    print(f"{'always ' + score.majority_label:24}{score.majority_accuracy:>10.3f}{score.majority_macro_f1:>10.3f}")
    print(f"predicted labels {score.predicted}; recall per label "
          + ", ".join(f"{k} {v:.2f}" for k, v in recall.items()))
    print(f"mean valid mass {score.valid_mass:.3f}; the judge is "
          + ("at chance" if score.at_chance else "above the majority baseline")
          + f" (margin: two standard errors, {score.margin:.3f})")


if __name__ == "__main__":
    main()
