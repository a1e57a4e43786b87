"""The LLM stages of refinement as Ray Data ``map_batches`` callables on an actor pool.

Each actor reaches a model through an :class:`EngineCaller`: a shared engine actor (placement
``shared``: every worker's calls batch together in one model) or an engine of its own (``dedicated``).
Within a batch every step is ONE batched engine call, decoded greedily, so refinement is
reproducible. A row whose request fails (a prompt the engine refuses, an error in the engine) is
written with its reason in the ``error`` column; the rest of the batch is written as usual.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping, Sequence
from typing import Any

from cultura.engines.base import ChatRequest, Completion, Failure, OptionScores, ScoreRequest, generate_each, score_each
from cultura.errors import CulturaError
from cultura.metrics import Metrics, counter
from cultura.pipelines.refine.judge_check import judged_schema
from cultura.pipelines.refine.opinions import extraction_messages, parse_opinions
from cultura.pipelines.refine.schema import extraction_schema, opinion_schema
from cultura.pipelines.refine.verify import judge, verify_opinions

METRICS = Metrics([
    counter("refine_extracted", "Opinions extracted from the delegates' turns", ("culture",)),
    counter("refine_labels", "First verification labels of opinions: Entail, Contradict, Irrelevant (none: no "
            "seed attitude to verify against)", ("culture", "label")),
    counter("refine_rewrites", "Contradicting opinions rewritten, by outcome (kept-rewrite or dropped)",
            ("culture", "decision")),
    counter("refine_representatives", "Opinions kept as k-means cluster representatives", ("culture",)),
])


class EngineCaller:
    """Greedy chat completions from an engine actor handle, or from an engine built here."""

    def __init__(self, engine_handle: Any = None, engine_config: Any = None, num_threads: int | None = None):
        self._handle, self._engine, self._loop = engine_handle, None, None
        if engine_handle is None:
            from cultura.engines import create_engine

            self._engine = create_engine(engine_config, num_threads=num_threads)
            self._loop = asyncio.new_event_loop()

    def complete(self, chats: Sequence[Sequence[Mapping[str, str]]], max_tokens: int) -> list[Completion | Failure]:
        """One greedy completion per chat, in order, computed together; a chat that fails gives a
        :class:`~cultura.engines.base.Failure` in its place and the others complete."""
        results: list[Completion | Failure | None] = []
        requests = []
        for chat in chats:
            try:
                requests.append(ChatRequest.of(list(chat), max_tokens=max_tokens, temperature=0.0))
                results.append(None)
            except CulturaError as exc:  # a malformed chat fails alone
                results.append(Failure.of(exc))
        if requests:
            if self._engine is not None:
                done = self._loop.run_until_complete(generate_each(self._engine, requests))
            else:
                import ray

                done = ray.get(self._handle.generate_each.remote(requests))
            answers = iter(done)
            results = [next(answers) if r is None else r for r in results]
        return results  # type: ignore[return-value]

    def ask(self, chats: Sequence[Sequence[Mapping[str, str]]], max_tokens: int) -> list[str | Failure]:
        """The answer texts of :meth:`complete` (failures as they are)."""
        return [c.text if isinstance(c, Completion) else c for c in self.complete(chats, max_tokens)]

    def close(self) -> None:
        """Stop an engine built here and close its event loop (an actor handle is left running)."""
        if self._engine is not None:
            self._loop.run_until_complete(self._engine.close())
            self._loop.run_until_complete(asyncio.sleep(0))  # let the cancelled batching tasks finish
            self._loop.close()
            self._engine = None

    def score(self, items: Sequence[tuple[Sequence[Mapping[str, str]], Sequence[str]]]) -> list[OptionScores | Failure]:
        """Option scores of every ``(chat, options)`` item, in one engine call; an item whose request
        fails gives a :class:`~cultura.engines.base.Failure` in its place."""
        requests = [ScoreRequest.of(chat, options) for chat, options in items]
        if not requests:
            return []
        if self._engine is not None:
            return self._loop.run_until_complete(score_each(self._engine, requests))
        import ray

        return ray.get(self._handle.score_each.remote(requests))


class ExtractWorker:
    """Ray Data callable: extraction units in (``unit_schema``), ``extraction_schema`` rows out."""

    def __init__(self, caller: Mapping[str, Any], max_tokens: int, max_chars: int, min_words: int):
        self.caller = EngineCaller(**caller)
        self.max_tokens, self.max_chars, self.min_words = max_tokens, max_chars, min_words

    def __call__(self, batch: Any) -> Any:
        """Extract and parse the opinions of every unit in the batch (one engine call)."""
        import pyarrow as pa

        units = batch.to_pylist()
        chats = [extraction_messages(u["country"], u["seed_text"], u["text"], self.max_chars) for u in units]
        rows = []
        for unit, completion in zip(units, self.caller.complete(chats, self.max_tokens)):
            unit.pop("text")
            if isinstance(completion, Failure):
                rows.append(unit | {"answer": "", "finish_reason": "error", "opinions": [], "rejected": [],
                                    "error": completion.error})
                continue
            opinions, rejected = parse_opinions(completion.text, self.min_words, completion.finish_reason == "length")
            rows.append(unit | {"answer": completion.text, "finish_reason": completion.finish_reason,
                                "opinions": opinions, "rejected": [{"text": t, "reason": r} for t, r in rejected],
                                "error": None})
            METRICS.inc("refine_extracted", len(opinions), culture=unit["culture"])
        return pa.Table.from_pylist(rows, schema=extraction_schema())


class VerifyWorker:
    """Ray Data callable: opinion rows in, the same rows with the verification columns filled."""

    def __init__(self, caller: Mapping[str, Any], rewrite_tokens: int, min_words: int):
        self.caller = EngineCaller(**caller)
        self.rewrite_tokens, self.min_words = rewrite_tokens, min_words

    def __call__(self, batch: Any) -> Any:
        """Label, rewrite and re-verify the batch's opinions (at most three engine calls)."""
        import pyarrow as pa

        rows = batch.to_pylist()
        results = verify_opinions(rows, self.caller.score, self.caller.ask, self.rewrite_tokens, self.min_words)
        for row, result in zip(rows, results):
            METRICS.inc("refine_labels", culture=row["culture"], label=result.get("label") or "none")
            if result.get("rewrite") is not None:
                METRICS.inc("refine_rewrites", culture=row["culture"], decision=result.get("decision"))
        return pa.Table.from_pylist([row | result for row, result in zip(rows, results)], schema=opinion_schema())


class JudgeWorker:
    """Ray Data callable: labelled check items in, the same rows with the judge's ``label``,
    ``probs`` and ``valid_mass`` (or the ``error`` of a failed request)."""

    def __init__(self, caller: Mapping[str, Any]):
        self.caller = EngineCaller(**caller)

    def __call__(self, batch: Any) -> Any:
        """Judge the batch's items (one engine call)."""
        import pyarrow as pa

        rows = batch.to_pylist()
        out = []
        for row, scores in zip(rows, judge(rows, self.caller.score)):
            if isinstance(scores, Failure):
                out.append(row | {"label": None, "probs": None, "valid_mass": None, "error": scores.error})
            else:
                out.append(row | {"label": scores.label, "probs": list(scores.probs), "valid_mass": scores.valid_mass,
                                  "error": None})
        return pa.Table.from_pylist(out, schema=judged_schema())


def caller_settings(config: Any, engine_handle: Any) -> tuple[dict[str, Any], dict[str, float]]:
    """(EngineCaller kwargs, Ray resources per worker) for ``config.placement``.

    ``shared``: workers forward to ``engine_handle`` and ask for no CPU; ``dedicated``: each worker
    builds its own engine and asks for ``config.engine_resources``.
    """
    if engine_handle is not None:
        return {"engine_handle": engine_handle}, {"num_cpus": 0}
    res = config.engine_resources
    threads = max(1, int(res.num_cpus)) if res.num_cpus else None
    return ({"engine_config": config.engine, "num_threads": threads},
            {"num_cpus": res.num_cpus, "num_gpus": res.num_gpus})


def blocks_of(table: Any, rows_per_block: int) -> Any:
    """A Ray Dataset of ``table`` in blocks of ``rows_per_block`` rows.

    The blocks are built in the driver (``from_items``): ``from_arrow`` would run a metadata task
    that needs a free CPU, and an engine actor may hold them all.
    """
    import ray

    ray.data.DataContext.get_current().enable_progress_bars = False
    return ray.data.from_items(table.to_pylist(), override_num_blocks=math.ceil(table.num_rows / rows_per_block))


def map_table(table: Any, worker: type, kwargs: Mapping[str, Any], schema: Any, *, workers: int,
              batch_size: int, resources: Mapping[str, float], progress: str | None = None) -> Any:
    """Run ``worker`` over ``table`` as a Ray Data ``map_batches`` on an actor pool; return the output table.

    The table is cut into blocks of ``batch_size`` rows so up to ``workers`` actors share the work.
    ``progress`` names a progress bar (None: no bar).
    """
    import pyarrow as pa
    import ray

    if table.num_rows == 0:
        return schema.empty_table()
    ds = blocks_of(table, batch_size).map_batches(
        worker, fn_constructor_kwargs=dict(kwargs),
        compute=ray.data.ActorPoolStrategy(size=min(workers, math.ceil(table.num_rows / batch_size))),
        batch_size=batch_size, batch_format="pyarrow", **resources)
    bar = _bar(progress, table.num_rows) if progress else None
    parts = []
    try:
        for part in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
            parts.append(part.cast(schema))
            if bar is not None:
                bar.update(part.num_rows)
    finally:
        if bar is not None:
            bar.close()
    return pa.concat_tables(parts) if parts else schema.empty_table()


def _bar(name: str, total: int) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=name, unit="row", dynamic_ncols=True)
