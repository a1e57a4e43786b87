"""The batch job every evaluation shares: answer plan rows over Ray Data with an engine per actor.

Rows (one per question x target x method) carry their plan as JSON. ``map_batches`` runs
:class:`PlanAnswerer`, a callable class on an ``ActorPoolStrategy`` pool; each actor holds one
engine (the ``ray.data.llm`` pattern) with every adapter the plans name, and caches identical chats
(the base method asks the same thing for every culture). Answers come from option scoring (softmax
over the log-probabilities of the option numbers) or, in ``sample`` mode, from N sampled answers
read by :func:`cultura.eval.answers.parse_choice`; an unreadable answer is re-asked up to
``max_reasks`` times and counted, never replaced by a default.

Every answer also carries its valid mass: with option scoring, the probability the model put on the
option numbers before renormalising; with sampling, the share of sampled answers that named an
option at the first ask. A mixture's valid mass is the weighted mean of its components'.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from typing import Any

from cultura.eval.answers import option_numbers, parse_choice, reask_messages
from cultura.eval.metrics import mixture, softmax
from cultura.metrics import Metrics, counter, histogram

METRICS = Metrics([
    counter("eval_answers", "Evaluation components answered", ("mode",)),
    counter("eval_reasks", "Sampled evaluation answers re-asked because they could not be read", ()),
    counter("eval_unparsable", "Sampled evaluation answers still unreadable after every re-ask", ()),
    histogram("eval_batch_seconds", "Seconds per evaluation batch", ()),
])


class PlanAnswerer:
    """Ray Data callable class: one engine per actor; answers a batch of plan rows.

    Each input row has ``row_id``, ``plan`` (JSON list of components: label, messages, adapter,
    weight) and ``options`` (the option texts). The output row adds ``probs`` (the mixture over the
    options), ``valid_mass``, ``components`` (JSON: each component's distribution, valid mass and
    counts) and the sample counts.
    """

    def __init__(self, engine_config: Any, adapters: dict[str, str], eval_config: Any,
                 num_threads: int | None = None):
        from cultura.engines import create_engine

        self.engine = create_engine(engine_config, num_threads=num_threads)
        for name, path in adapters.items():
            self.engine.add_adapter(name, path)
        self.cfg = eval_config
        self.loop = asyncio.new_event_loop()
        self.cache: dict[str, asyncio.Future] = {}

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        start = time.perf_counter()
        rows = [dict(zip(batch, values)) for values in zip(*batch.values())]
        answered = self.loop.run_until_complete(self._answer_rows(rows))
        METRICS.observe("eval_batch_seconds", time.perf_counter() - start)
        return {
            "row_id": [r["row_id"] for r in rows],
            "probs": [a["probs"] for a in answered],
            "valid_mass": [a["valid_mass"] for a in answered],
            "components": [json.dumps(a["components"]) for a in answered],
            "n_samples": [a["n_samples"] for a in answered],
            "n_reasks": [a["n_reasks"] for a in answered],
            "n_unparsable": [a["n_unparsable"] for a in answered],
            "error": [a["error"] for a in answered],
        }

    async def _answer_rows(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(self._answer_row(r) for r in rows)))

    async def _answer_row(self, row: dict[str, Any]) -> dict[str, Any]:
        components = json.loads(row["plan"])
        options = [str(o) for o in row["options"]]
        results = await asyncio.gather(*(self._answer_component(c, options) for c in components))
        summary = [{"label": c["label"], "adapter": c["adapter"], "weight": c["weight"], **r}
                   for c, r in zip(components, results)]
        failed = [s["label"] for s in summary if s["probs"] is None]
        probs = None
        error = ""
        if failed:
            error = f"no readable answer from {', '.join(failed)}"
        else:
            probs = mixture([s["probs"] for s in summary], [s["weight"] for s in summary])
        weights = [s["weight"] for s in summary]
        valid_mass = sum(w * s["valid_mass"] for w, s in zip(weights, summary)) / sum(weights)
        return {"probs": probs, "valid_mass": valid_mass, "components": summary, "error": error,
                "n_samples": sum(s["n_samples"] for s in summary),
                "n_reasks": sum(s["n_reasks"] for s in summary),
                "n_unparsable": sum(s["n_unparsable"] for s in summary)}

    async def _answer_component(self, component: dict[str, Any], options: list[str]) -> dict[str, Any]:
        key = json.dumps([component["messages"], component["adapter"], options, self.cfg.mode], sort_keys=True)
        if key not in self.cache:  # concurrent rows asking the same chat share one task
            work = self._score if self.cfg.mode == "score" else self._sample
            self.cache[key] = asyncio.ensure_future(work(component, options))
            METRICS.inc("eval_answers", mode=self.cfg.mode)
        return await self.cache[key]

    async def _score(self, component: dict[str, Any], options: list[str]) -> dict[str, Any]:
        scores = await self.engine.score_options(component["messages"], option_numbers(len(options)),
                                                 component["adapter"])
        return {"probs": softmax(scores.logprobs), "valid_mass": scores.valid_mass,
                "n_samples": 0, "n_reasks": 0, "n_unparsable": 0}

    async def _sample(self, component: dict[str, Any], options: list[str]) -> dict[str, Any]:
        picks = await asyncio.gather(*(self._sample_one(component, options, i) for i in range(self.cfg.samples)))
        counts = [0] * len(options)
        reasks = sum(r for _, r in picks)
        unparsable = sum(1 for choice, _ in picks if choice is None)
        for choice, _ in picks:
            if choice is not None:
                counts[choice] += 1
        parsed = sum(counts)
        METRICS.inc("eval_reasks", reasks)
        METRICS.inc("eval_unparsable", unparsable)
        first_ask = sum(1 for choice, r in picks if choice is not None and r == 0)
        return {"probs": [c / parsed for c in counts] if parsed else None, "valid_mass": first_ask / self.cfg.samples,
                "n_samples": self.cfg.samples, "n_reasks": reasks, "n_unparsable": unparsable}

    async def _sample_one(self, component: dict[str, Any], options: list[str], index: int) -> tuple[int | None, int]:
        """One sampled answer: (0-based choice or None after every re-ask, number of re-asks)."""
        from cultura.engines import ChatRequest

        messages: Sequence[dict[str, str]] = component["messages"]
        for attempt in range(self.cfg.max_reasks + 1):
            seed = self.cfg.seed + index * 1000 + attempt
            request = ChatRequest.of(messages, adapter=component["adapter"], max_tokens=self.cfg.max_tokens,
                                     temperature=self.cfg.temperature, top_p=self.cfg.top_p, seed=seed)
            [completion] = await self.engine.generate([request])
            choice = parse_choice(completion.text, options)
            if choice is not None:
                return choice, attempt
            messages = reask_messages(component["messages"], completion.text, len(options))
        return None, self.cfg.max_reasks


def answer_rows(rows: list[dict[str, Any]], config: Any, adapters: dict[str, str]) -> dict[int, dict[str, Any]]:
    """Answer plan rows as a Ray Data job; returns row_id -> answer (probs, components, counts).

    Starts (or joins) Ray per ``config.ray``. The actor pool has ``config.eval.actors`` actors, each
    with ``config.engine_resources`` (CPUs, GPUs) and its own engine.
    """
    if not rows:
        return {}
    import ray

    from cultura.ray_utils import init_ray

    init_ray(config)
    resources = config.engine_resources
    threads = max(1, int(resources.num_cpus)) if resources.num_cpus else None
    dataset = ray.data.from_items(rows, override_num_blocks=max(1, min(len(rows), 4 * config.eval.actors)))
    answered = dataset.map_batches(
        PlanAnswerer,
        fn_constructor_kwargs={"engine_config": config.engine, "adapters": adapters,
                               "eval_config": config.eval, "num_threads": threads},
        compute=ray.data.ActorPoolStrategy(size=config.eval.actors),
        num_cpus=resources.num_cpus,
        num_gpus=resources.num_gpus,
        batch_size=config.eval.batch_size,
    )
    return {int(r["row_id"]): _plain(r) for r in answered.take_all()}


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """Arrow/numpy values from Ray Data back to plain Python."""
    out = dict(row)
    probs = out.get("probs")
    out["probs"] = None if probs is None else [float(p) for p in probs]
    out["valid_mass"] = float(out["valid_mass"])
    for key in ("n_samples", "n_reasks", "n_unparsable"):
        out[key] = int(out[key])
    return out
