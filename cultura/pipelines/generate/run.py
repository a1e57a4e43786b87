"""CulturePark data generation: seeds x cultures x variations -> dialogues, sharded over Ray Data.

Every dialogue is one row (seed, culture, speakers with their system prompts, script) with a
deterministic id (:mod:`.plan`). The driver counts the plan seed by seed, keeping no rows; the rows not
yet written are planned inside a Ray Dataset, a block of seeds at a time, and ``map_batches`` runs them
on an actor pool of :class:`~cultura.pipelines.generate.dialogue.DialogueWorker`, which advances all
dialogues of a batch turn by turn with one batched call per agent per turn. The driver streams the
finished rows into part files; failed dialogues are counted and left out, so ``resume=True`` retries
them. Resuming reads only the id column of the written parts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cultura.actors.agents import agent_demands, agent_placement_fixes, start_agents
from cultura.cards import data_licence, provenance, write_card
from cultura.data.seed_files import load_seeds
from cultura.errors import CulturaError
from cultura.personas import Persona
from cultura.pipelines.generate.dialogue import DialogueWorker
from cultura.pipelines.generate.plan import (  # noqa: F401  (CALIBRATION, delegate, dialogue_id: re-exported)
    CALIBRATION,
    PlanCount,
    blocks_for,
    count_plan,
    delegate,
    dialogue_id,
    plan_dialogues,
    planned_dataset,
)
from cultura.pipelines.generate.schema import conform, dialogue_schema
from cultura.pipelines.writer import OutputFolder, PartWriter, read_parts
from cultura.placement import Demand, check_placement, cluster_nodes
from cultura.ray_utils import init_ray
from cultura.storage import warn_if_local

DIALOGUES = "dialogues"
# The run parameters that decide what the dialogues are: a resumed run must match them.
IDENTITY = ("cultures", "seeds", "sources", "max_seeds", "split", "attitude", "mode", "script", "rounds", "per_seed",
            "calibration", "main_contact", "main_contact_description", "language", "delegate_adapter",
            "format")


@dataclass
class GenerateSummary:
    """What a generation run did. ``failures`` holds (dialogue id, error) of dialogues not written;
    ``out`` is the output folder (a ``Path``, or the URI it was given as)."""

    out: Path | str
    planned: int = 0
    already_written: int = 0
    dialogues: int = 0
    turns: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    skipped_no_attitude: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    files: list[Any] = field(default_factory=list)
    nodes: dict[str, int] = field(default_factory=dict)  # Ray node id -> dialogues whose delegate ran there

    @property
    def tokens_per_s(self) -> float:
        """Generated tokens per second of generation wall time."""
        return self.completion_tokens / self.seconds if self.seconds > 0 else 0.0

    @property
    def complete(self) -> bool:
        """True when every planned dialogue is now written."""
        return self.already_written + self.dialogues == self.planned

    def as_dict(self) -> dict[str, Any]:
        """Plain values for the manifest and the CLI summary."""
        return {"planned": self.planned, "already_written": self.already_written, "dialogues": self.dialogues,
                "turns": self.turns, "prompt_tokens": self.prompt_tokens,
                "generated_tokens": self.completion_tokens, "seconds": round(self.seconds, 2),
                "tokens_per_s": round(self.tokens_per_s, 2), "failures": len(self.failures),
                "failed": [{"dialogue_id": d, "error": e} for d, e in self.failures],  # not written; --resume retries
                "skipped_no_attitude": self.skipped_no_attitude, "nodes": dict(self.nodes), "out": str(self.out)}


def run_params(gen: Any, config: Any) -> dict[str, Any]:
    """The manifest's parameters: what decides the dialogues, plus the model and sampling used."""
    params = {k: getattr(gen, k) for k in IDENTITY}
    params.update(eval_fraction=config.data.eval_fraction, model=config.engine.model, engine=config.engine.kind, sampling=config.sampling.model_dump())
    return params


def sampling_params(config: Any) -> Any:
    """The engine SamplingParams for generation from ``config.sampling``, in the dialogue's language
    (``generate.language``). Its temperature and top-p stay the configured ones (the paper's)."""
    return config.sampling.params(language=config.generate.language)


def generate_dialogues(config: Any, out: str | Path, *, resume: bool = False, overwrite: bool = False,
                       limit: int | None = None, agents: Any = None, progress: bool = False,
                       on_part: Callable[[Any], None] | None = None) -> GenerateSummary:
    """Generate the dialogues ``config.generate`` describes into ``out``; return the summary.

    ``out`` is a local folder or a filesystem URI (``s3://``, ``gs://``, ``file://``); a plain path on a
    multi-node cluster gets a :class:`~cultura.errors.ClusterWarning` (it is on one machine only).

    ``resume`` finishes a stopped run (same parameters) without repeating written dialogues;
    ``overwrite`` replaces another run; ``limit`` caps the dialogues generated now. ``agents`` is an
    :class:`~cultura.actors.agents.AgentPool` to use instead of starting one (it is not stopped).
    ``on_part`` is called with each part file once it is in place.
    """
    if limit is not None and limit < 1:
        raise CulturaError(f"limit must be >= 1, got {limit}")
    gen = config.generate
    cultures = gen.cultures  # canonical keys: the config validated them
    if gen.mode == "multi" and len(cultures) < 2:
        raise CulturaError("mode 'multi' needs at least two cultures")
    if gen.delegate_adapter:  # fail here, not inside the engine actor once Ray and the agents are up
        from cultura.registry import check_adapter_ref

        check_adapter_ref(gen.delegate_adapter, config.engine)
    seeds = load_seeds(gen.seeds, cultures=cultures if gen.calibration else None, sources=gen.sources,
                       split=None if gen.split == "all" else gen.split, eval_fraction=config.data.eval_fraction,
                       pooled=gen.attitude == "pooled")
    seeds = seeds[: gen.max_seeds] if gen.max_seeds else seeds
    folder, params = OutputFolder(out, DIALOGUES, "generate"), run_params(gen, config)
    resuming = folder.check(params, resume=resume, overwrite=overwrite)  # a bad --out fails before Ray starts
    written = _written_ids(folder, gen.format) if resuming else frozenset()
    count = count_plan(gen, seeds, config.engine.model, config.engine.kind, written, limit)
    if not count.planned:
        raise CulturaError(f"nothing to generate: no seed of the {gen.split!r} split has a known attitude for "
                           f"{', '.join(cultures)}"
                           + (" in multi mode (needs two cultures per seed)" if gen.mode == "multi" else "")
                           + "; pass --no-calibration, --split all or other seeds")
    if agents is None and count.todo:  # before the folder is touched: a run that cannot be placed leaves no trace
        init_ray(config)
        workers = min(gen.workers, blocks_for(count, gen.batch_size))
        check_generate_placement(config, list(count.personas.values()), workers)
    warn_if_local(out, "--out")
    warn_if_local(None if gen.seeds == "bundled" else gen.seeds, "--seeds")
    folder.prepare(params, resume=resume, overwrite=overwrite)
    summary = GenerateSummary(folder.root, planned=count.planned, skipped_no_attitude=count.skipped,
                              already_written=count.written)
    status = "running"
    try:
        if count.todo:
            _run(config, seeds, written, count, folder, summary, agents, progress, on_part)
        status = "complete" if summary.complete else "partial"
    except BaseException:
        status = "interrupted"
        raise
    finally:
        folder.write_manifest({"status": status, "summary": summary.as_dict()})
        write_generation_card(folder, config, count.seed_ids, summary, status)
    return summary


def _written_ids(folder: OutputFolder, fmt: str) -> frozenset[str]:
    """The ids of the dialogues already in ``folder`` (its parts' id column only)."""
    table = read_parts(folder.data, dialogue_schema(), fmt, ["dialogue_id"])
    return frozenset(table.column("dialogue_id").to_pylist())


def write_generation_card(folder: OutputFolder, config: Any, seed_ids: Sequence[str], summary: GenerateSummary,
                          status: str) -> Any:
    """The run folder's card: the model, the seeds and split the dialogues rest on, the paper, the data licence."""
    gen = config.generate
    seed_ids = sorted(set(seed_ids))
    fields = {"stage": "generate", "status": status, **provenance(config, "culturepark"),
              "cultures": list(gen.cultures), "mode": gen.mode, "rounds": gen.rounds, "seeds": gen.seeds,
              "split": gen.split, "eval_fraction": config.data.eval_fraction, "seed_ids": seed_ids,
              "data_licence": data_licence(gen.seeds, seed_ids),
              "dialogues": {"planned": summary.planned, "written": summary.already_written + summary.dialogues},
              "config": config.model_dump(mode="json")}
    body = (f"CulturePark's first stage: {gen.mode}-cultural dialogues of {gen.rounds} rounds seeded with "
            f"{len(seed_ids)} survey questions of the {gen.split!r} split ({gen.seeds} seeds), for "
            f"{', '.join(gen.cultures)}. {fields['dialogues']['written']} of {summary.planned} planned dialogues "
            f"are written ({status}). Rows: `{DIALOGUES}/part-*`; the run's parameters: `manifest.json`; "
            "`cultura refine --in <this folder>` turns them into fine-tuning sets.")
    return write_card(folder.location, "CulturePark dialogues", fields, body)


def _run(config: Any, seeds: Sequence[Any], written: frozenset[str], count: PlanCount, folder: OutputFolder,
         summary: GenerateSummary, agents: Any, progress: bool, on_part: Callable[[Any], None] | None) -> None:
    """Start agents (unless given), run the Ray Data pipeline over the dialogues ``count`` says run
    now and stream its rows into part files."""
    import ray

    gen = config.generate
    init_ray(config)
    pool = agents or start_agents(list(count.personas.values()), config)
    missing = sorted(set(count.personas) - set(pool.agents))
    if missing:
        raise CulturaError(f"the agent pool has no agent for {', '.join(missing)}")
    writer = PartWriter(folder.data, dialogue_schema(), gen.format, gen.rows_per_file, on_file=on_part)
    bar = _progress_bar(count.todo) if progress else None
    ray.data.DataContext.get_current().enable_progress_bars = False  # the driver shows its own
    if progress:
        _quiet_ray_data_console()
    start = time.perf_counter()
    try:
        blocks = blocks_for(count, gen.batch_size)
        planned = planned_dataset(gen, seeds, config.engine.model, config.engine.kind, written, count, gen.batch_size)
        ds = planned.map_batches(
            DialogueWorker,
            fn_constructor_kwargs={"agents": {k: pool.names.get(k, h) for k, h in pool.agents.items()},
                                   "sampling": sampling_params(config)},
            # one batch per worker at a time: a batch queued behind another on a busy worker would
            # wait for it, while an idle worker (still starting up) gets nothing
            compute=ray.data.ActorPoolStrategy(size=min(gen.workers, blocks), max_tasks_in_flight_per_actor=1),
            batch_size=gen.batch_size, batch_format="pyarrow", num_cpus=gen.worker_num_cpus,
        )
        # a batch is whole dialogues: on a slow or busy machine it may rightly take longer than
        # Ray Data's no-progress timeout (30 min), so the timeout is off for this dataset
        ds.context.execution_no_progress_timeout_s = -1
        for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
            writer.add(_tally(summary, batch))
            summary.seconds = time.perf_counter() - start
            if bar is not None:
                bar.update(batch.num_rows)
                bar.set_postfix(tok_s=f"{summary.tokens_per_s:.1f}", failed=len(summary.failures))
        writer.close()
        summary.seconds = time.perf_counter() - start
    finally:
        summary.files = list(writer.files)
        if bar is not None:
            bar.close()
        if agents is None:
            pool.stop()


def check_generate_placement(config: Any, personas: Sequence[Persona], workers: int) -> None:
    """Fail at once when the run's agents, engine actor and Ray Data workers cannot be placed on the
    cluster (naming the shortfall and the fixes); warn when they wait for the autoscaler."""
    gen = config.generate
    workers_demand = Demand("Ray Data dialogue workers", workers, {"CPU": gen.worker_num_cpus})
    demands = [*agent_demands(config, len(personas)), workers_demand]
    delegates = sum(p.role == "delegate" for p in personas)
    fixes = agent_placement_fixes(config, len(personas), cluster_nodes(),
                                  f"{delegates} of them delegates; pass fewer --cultures or a lower --per-seed "
                                  "(each variation speaks through its own delegate)", [workers_demand])
    if gen.worker_num_cpus > 0:
        fixes.append("lighter dialogue workers: generate.worker_num_cpus: 0 (they hold no model) or fewer --workers")
    check_placement("this generate run", demands, fixes)


def _tally(summary: GenerateSummary, batch: Any) -> Any:
    """Count a batch of finished rows into ``summary``; return its successful rows (dialogue schema)."""
    import pyarrow.compute as pc

    failed = pc.is_valid(batch.column("error"))
    bad = batch.filter(failed)
    summary.failures += zip(bad.column("dialogue_id").to_pylist(), bad.column("error").to_pylist())
    done = conform(batch.filter(pc.invert(failed)))
    if done.num_rows:
        summary.dialogues += done.num_rows
        summary.turns += pc.sum(pc.list_value_length(done.column("turns"))).as_py()
        summary.prompt_tokens += pc.sum(done.column("prompt_tokens")).as_py()
        summary.completion_tokens += pc.sum(done.column("completion_tokens")).as_py()
        for nodes in done.column("node_id").to_pylist():
            for node in (nodes or "").split(","):
                if node:
                    summary.nodes[node] = summary.nodes.get(node, 0) + 1
    return done


def _quiet_ray_data_console() -> None:
    """Keep Ray Data's INFO lines off the console while a progress bar runs (its log file keeps them)."""
    import importlib
    import logging

    importlib.import_module("ray.data")  # importing it configures the "ray.data" logger

    for handler in logging.getLogger("ray.data").handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setLevel(logging.WARNING)
            handler.addFilter(lambda record: "Progress bars disabled" not in record.getMessage())


def _progress_bar(total: int) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="dialogue", desc="generate", dynamic_ncols=True)


def read_dialogues(out: str | Path, fmt: str | None = None) -> Any:
    """Read a generation run's dialogues (all parts) as one Arrow table with the dialogue schema.

    ``fmt`` defaults to the format recorded in the run's manifest.
    """
    folder = OutputFolder(out, DIALOGUES, "generate")
    if fmt is None:
        manifest = folder.manifest() or {}
        fmt = manifest.get("params", {}).get("format", "parquet")
    return read_parts(folder.data, dialogue_schema(), fmt)
