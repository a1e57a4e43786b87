"""The batch job every evaluation shares: plan rows answered over Ray Data by engine actors.

Rows (one per question x target x method) carry their plan as JSON. An :class:`EnginePool` holds
``eval.actors`` engine actors (:class:`~cultura.actors.engine_actor.EngineHost`, each with every
adapter the plans name), started once per command on first use: every job of the command and the
``palette`` method's drafts use them, and their start-up is timed apart from the work.

:meth:`EnginePool.answer` is one Ray Data job. The rows are cut into batches sized for the engine
(``eval.batch_size``, by default the engine's ``score_batch_size``), one dataset row each, dealt to
the engine actors in turn; ``map_batches`` tasks (no CPUs of their own) hand each batch to its actor,
two tasks per actor, so an actor has its next batch queued while it scores one. A batch's chats go
to the engine in one ``score_each`` call: identical chats (the base method asks the same thing for
every country, continent agents serve several methods) are scored once, and the transformers
engine reads shared prefixes once (:mod:`cultura.engines.scoring`).

Answers come from option scoring (softmax over the log-probabilities of the option numbers) or, in
``sample`` mode, from N sampled answers read by :func:`cultura.choices.parse_choice`; an
unreadable answer is re-asked up to ``max_reasks`` times and counted, never replaced by a default.
A row the engine refuses or fails (a chat over the context window, text that is not UTF-8) is
answered with its reason in ``error`` and no distribution; the rest of its batch is answered.

Every answer also carries its valid mass: with option scoring, the probability the model put on the
option numbers before renormalising; with sampling, the share of sampled answers that named an
option at the first ask. A mixture's valid mass is the weighted mean of its components'.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Sequence
from typing import Any

from cultura.actors.agents import stop_actors
from cultura.actors.engine_actor import start_engine_actor
from cultura.choices import option_numbers, parse_choice, reask_messages, softmax
from cultura.engines import ChatRequest
from cultura.engines.base import Failure, ScoreRequest, failure_reason, generate_each, score_each
from cultura.errors import CulturaError
from cultura.eval.metrics import mixture
from cultura.metrics import Metrics, counter, histogram
from cultura.ray_utils import init_ray

METRICS = Metrics([
    counter("eval_answers", "Evaluation components answered", ("mode",)),
    counter("eval_reasks", "Sampled evaluation answers re-asked because they could not be read", ()),
    counter("eval_unparsable", "Sampled evaluation answers still unreadable after every re-ask", ()),
    histogram("eval_batch_seconds", "Seconds per evaluation batch", ()),
])
ANSWER_COLUMNS = ("row_id", "status", "probs", "valid_mass", "components", "n_samples", "n_reasks", "n_unparsable",
                  "response", "error")
TASKS_PER_ACTOR = 2  # batches in flight per engine actor: one scored, the next queued


def batch_size(config: Any) -> int:
    """Rows per evaluation batch: ``eval.batch_size``, else the engine's ``score_batch_size``."""
    return config.eval.batch_size or config.engine.score_batch_size


class EnginePool:
    """The engine actors of one command: started on first use (:meth:`start`), shared by every job of
    the command, freed by :meth:`close` (or a ``with`` block). ``startup_s`` is the seconds their
    start took (model load included); ``answer_s`` and ``rows`` add up the jobs that followed."""

    def __init__(self, config: Any, adapters: dict[str, str] | None = None):
        self.config = config
        # adapters go into the engine configuration, so an actor Ray restarts knows them too
        self.engine_config = config.engine.model_copy(update={"adapters": {**config.engine.adapters,
                                                                             **(adapters or {})}})
        self.handles: list[Any] = []
        self.names: list[str] = []
        self.startup_s = 0.0
        self.answer_s = 0.0
        self.rows = 0

    def start(self) -> list[Any]:
        """The engine actors, started and waited for on the first call."""
        if self.handles:
            return self.handles
        import ray

        init_ray(self.config)
        started = time.perf_counter()
        run = uuid.uuid4().hex[:12]
        self.names = [f"cultura-eval-engine-{run}-{i}" for i in range(self.config.eval.actors)]
        self.handles = [start_engine_actor(self.engine_config, self.config.engine_resources, name=name)
                        for name in self.names]
        try:
            ray.get([h.info.remote() for h in self.handles])
        except BaseException:
            self.close()
            raise
        self.startup_s = time.perf_counter() - started
        return self.handles

    def answer(self, rows: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
        """Answer plan rows as one Ray Data job on this pool; returns row_id -> answer."""
        if not rows:
            return {}
        import ray

        engines = self.start()
        started = time.perf_counter()
        size = batch_size(self.config)
        batches = [{"actor": k % len(engines), "rows": json.dumps(rows[start:start + size])}
                   for k, start in enumerate(range(0, len(rows), size))]
        answered = ray.data.from_items(batches, override_num_blocks=len(batches)).map_batches(
            answer_batches, fn_kwargs={"engines": engines, "eval_config": self.config.eval},
            compute=ray.data.TaskPoolStrategy(size=min(len(batches), TASKS_PER_ACTOR * len(engines))),
            num_cpus=0, batch_size=1)
        out = {int(r["row_id"]): _plain(r) for r in answered.take_all()}
        self.answer_s += time.perf_counter() - started
        self.rows += len(out)
        return out

    def summary(self) -> str:
        """One line: the actors' start-up, then the rows answered and the steady rate."""
        if not self.names:
            return "engine actors: none needed"
        rate = f", {self.rows / self.answer_s:.2f} rows/s" if self.answer_s else ""
        return (f"engine actors: {len(self.names)} started in {self.startup_s:.1f} s; "
                f"{self.rows} rows answered in {self.answer_s:.1f} s{rate}")

    def close(self) -> None:
        """Stop the engine actors."""
        stop_actors(self.handles)
        self.handles = []

    def __enter__(self) -> EnginePool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def answer_batches(batch: dict[str, Any], engines: Sequence[Any], eval_config: Any) -> dict[str, list[Any]]:
    """Ray Data task: answer each batch of rows (a JSON list) on its engine actor; one output row per
    input row, in the :data:`ANSWER_COLUMNS` layout."""
    out: dict[str, list[Any]] = {column: [] for column in ANSWER_COLUMNS}
    for actor, rows in zip(batch["actor"], batch["rows"]):
        started = time.perf_counter()
        answerer = BatchAnswerer.on_actor(engines[int(actor)], eval_config)
        for answer in asyncio.run(answerer.answer(json.loads(rows))):
            for column in ANSWER_COLUMNS:
                out[column].append(answer[column])
        METRICS.observe("eval_batch_seconds", time.perf_counter() - started)
    return out


class BatchAnswerer:
    """Answers one batch of plan rows. ``score_each(requests)`` and ``generate_each(requests)`` are
    awaitable calls of :func:`~cultura.engines.base.score_each` and
    :func:`~cultura.engines.base.generate_each` on an engine (an actor's, or one in this process)."""

    def __init__(self, score_each: Any, generate_each: Any, eval_config: Any):
        self.score_each, self.generate_each, self.cfg = score_each, generate_each, eval_config

    @classmethod
    def on_actor(cls, handle: Any, eval_config: Any) -> BatchAnswerer:
        """An answerer on an engine actor (:class:`~cultura.actors.engine_actor.EngineHost`)."""
        return cls(handle.score_each.remote, handle.generate_each.remote, eval_config)

    @classmethod
    def on_engine(cls, engine: Any, eval_config: Any) -> BatchAnswerer:
        """An answerer on an engine in this process."""
        return cls(lambda requests: score_each(engine, requests), lambda requests: generate_each(engine, requests),
                   eval_config)

    async def answer(self, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """One answer per row; a row that fails carries its reason in ``error``."""
        plans: list[list[dict[str, Any]] | str] = []
        for row in rows:
            try:
                plans.append(_components(row))
            except Exception as exc:  # a malformed row fails alone
                plans.append(failure_reason(exc))
        chats = {_key(c, row["options"]): (c, [str(o) for o in row["options"]])
                 for row, plan in zip(rows, plans) if not isinstance(plan, str) for c in plan}
        keys = [k for k in chats if chats[k][1]]
        open_keys = [k for k in chats if not chats[k][1]]  # no options: a free-text reply
        if self.cfg.mode == "score":
            found = await self._score([chats[k] for k in keys])
        else:
            found = await asyncio.gather(*(self._sample(*chats[k]) for k in keys))
        found += await self._reply([chats[k][0] for k in open_keys])
        METRICS.inc("eval_answers", len(keys), mode=self.cfg.mode)
        METRICS.inc("eval_answers", len(open_keys), mode="reply")
        results = dict(zip(keys + open_keys, found))
        return [_failed(row, plan) if isinstance(plan, str) else
                _combine(row, plan, [results[_key(c, row["options"])] for c in plan]) for row, plan in zip(rows, plans)]

    async def _score(self, chats: list[tuple[dict[str, Any], list[str]]]) -> list[dict[str, Any]]:
        requests = [ScoreRequest.of(c["messages"], option_numbers(len(options)), c["adapter"]) for c, options in chats]
        scores = await self.score_each(requests) if requests else []
        return [{"error": s.error} if isinstance(s, Failure) else
                {"probs": softmax(s.logprobs), "valid_mass": s.valid_mass, "n_samples": 0, "n_reasks": 0,
                 "n_unparsable": 0} for s in scores]

    async def _reply(self, components: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Free-text replies (short-answer items), greedy: one generation per component."""
        requests = [ChatRequest.of(c["messages"], adapter=c["adapter"], max_tokens=self.cfg.answer_tokens,
                                   temperature=0.0, seed=self.cfg.seed) for c in components]
        completions = await self.generate_each(requests) if requests else []
        return [{"error": c.error} if isinstance(c, Failure) else
                {"response": c.text.strip(), "probs": None, "valid_mass": None, "n_samples": 1, "n_reasks": 0,
                 "n_unparsable": 0} for c in completions]

    async def _sample(self, component: dict[str, Any], options: list[str]) -> dict[str, Any]:
        try:
            picks = await asyncio.gather(*(self._sample_one(component, options, i) for i in range(self.cfg.samples)))
        except Exception as exc:  # the engine refused or failed this chat
            return {"error": failure_reason(exc)}
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
        messages: Sequence[dict[str, str]] = component["messages"]
        for attempt in range(self.cfg.max_reasks + 1):
            seed = self.cfg.seed + index * 1000 + attempt
            request = ChatRequest.of(messages, adapter=component["adapter"], max_tokens=self.cfg.max_tokens,
                                     temperature=self.cfg.temperature, top_p=self.cfg.top_p, seed=seed)
            [completion] = await self.generate_each([request])
            if isinstance(completion, Failure):
                raise CulturaError(completion.error)
            choice = parse_choice(completion.text, options)
            if choice is not None:
                return choice, attempt
            messages = reask_messages(component["messages"], completion.text, len(options))
        return None, self.cfg.max_reasks


def _components(row: dict[str, Any]) -> list[dict[str, Any]]:
    """A row's plan components (label, messages, adapter, weight); a malformed plan raises."""
    components = json.loads(row["plan"])
    if not components or not all(isinstance(c, dict) and {"label", "messages", "adapter", "weight"} <= c.keys()
                                 for c in components):
        raise CulturaError("the plan must list components with label, messages, adapter and weight")
    if not row["options"] and len(components) != 1:
        raise CulturaError("a free-text reply comes from one chat: a mixture of several cannot give one")
    return components


def _key(component: dict[str, Any], options: Sequence[Any]) -> str:
    """What makes two components the same chat to answer."""
    return json.dumps([component["messages"], component["adapter"], [str(o) for o in options]], sort_keys=True)


def _failed(row: dict[str, Any], reason: str) -> dict[str, Any]:
    return {"row_id": row["row_id"], "status": "failed", "probs": None, "valid_mass": None, "components": "[]", "n_samples": 0,
            "n_reasks": 0, "n_unparsable": 0, "response": None, "error": reason}


def _combine(row: dict[str, Any], components: list[dict[str, Any]], results: list[dict[str, Any]]) -> dict[str, Any]:
    """A row's answer from its components' results: the mixture of their distributions and valid
    masses by weight, or the reason no distribution could be given."""
    summary = [{"label": c["label"], "adapter": c["adapter"], "weight": c["weight"], **r}
               for c, r in zip(components, results)]
    failed = [f"{s['label']}: {s['error']}" for s in summary if "error" in s]
    if failed:
        return _failed(row, "; ".join(failed)) | {"components": json.dumps(summary)}
    counts = {key: sum(s[key] for s in summary) for key in ("n_samples", "n_reasks", "n_unparsable")}
    if not row["options"]:  # a free-text reply: one component (checked by _components)
        return {"row_id": row["row_id"], "status": "ok", "probs": None, "valid_mass": None,
                "components": json.dumps(summary), "response": summary[0]["response"], "error": "", **counts}
    weights = [s["weight"] for s in summary]
    valid_mass = sum(w * s["valid_mass"] for w, s in zip(weights, summary)) / sum(weights)
    unreadable = [s["label"] for s in summary if s["probs"] is None]
    probs = None if unreadable else mixture([s["probs"] for s in summary], weights)
    error = f"no readable answer from {', '.join(unreadable)}" if unreadable else ""
    return {"row_id": row["row_id"], "status": "unreadable" if unreadable else "ok", "probs": probs,
            "valid_mass": valid_mass, "components": json.dumps(summary), "response": None, "error": error, **counts}


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """Arrow/numpy values from Ray Data back to plain Python."""
    out = dict(row)
    probs = out.get("probs")
    out["probs"] = None if probs is None else [float(p) for p in probs]
    out["valid_mass"] = None if out.get("valid_mass") is None else float(out["valid_mass"])
    for key in ("n_samples", "n_reasks", "n_unparsable"):
        out[key] = int(out[key])
    return out
