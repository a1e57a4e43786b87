"""CulturePark data generation: seeds x cultures x variations -> dialogues, sharded over Ray Data.

The driver plans every dialogue (one row each: seed, culture, speakers with their system prompts,
script) and gives each a deterministic id. The rows not yet written become a Ray Dataset;
``map_batches`` runs them on an actor pool of :class:`~cultura.pipelines.generate.dialogue.DialogueWorker`, which
advances all dialogues of a batch turn by turn with one batched call per agent per turn. The driver
streams the finished rows into part files; failed dialogues are counted and left out, so
``resume=True`` retries them.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cultura.actors.agents import agent_demands, agent_placement_fixes, start_agents
from cultura.cards import data_licence, provenance, write_card
from cultura.data.cultures import get_culture
from cultura.data.seed_files import load_seeds
from cultura.errors import CulturaError
from cultura.personas import Persona, culture_persona, main_contact_persona
from cultura.pipelines.generate.dialogue import DialogueWorker
from cultura.pipelines.generate.schema import conform, dialogue_schema
from cultura.pipelines.writer import OutputFolder, PartWriter, read_parts
from cultura.placement import Demand, check_placement, cluster_nodes
from cultura.ray_utils import init_ray
from cultura.storage import warn_if_local

DIALOGUES = "dialogues"
CALIBRATION = "{attitude} You share this view: everything you say must agree with it."
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


def dialogue_id(seed_id: str, culture: str, mode: str, script: str, variation: int) -> str:
    """The deterministic id of a dialogue (same inputs, same id), so output is idempotent."""
    key = json.dumps([seed_id, culture, mode, script, variation])
    return hashlib.sha1(key.encode("utf-8")).hexdigest()[:20]


def delegate(culture: str, name_index: int, language: str, adapter: str | None = None, extra: str = "") -> Persona:
    """A delegate persona whose key is unique per culture and name (one agent actor each)."""
    from dataclasses import replace

    index = name_index % len(get_culture(culture).names)
    persona = culture_persona(culture, index, language=language, extra=extra).with_adapter(adapter)
    return replace(persona, key=f"delegate:{culture}:{index}")


def _speaker(persona: Persona, system_prompt: str) -> dict[str, Any]:
    return {"key": persona.key, "name": persona.name, "role": persona.role, "culture": persona.culture,
            "country": persona.country, "adapter": persona.adapter, "system_prompt": system_prompt}


@dataclass
class Plan:
    """Every dialogue of a run, the agents it needs (uncalibrated personas by key), and the
    (seed, culture) pairs skipped because the culture's attitude on the seed is unknown."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    personas: dict[str, Persona] = field(default_factory=dict)
    skipped: int = 0

    def speaker(self, persona: Persona, system_prompt: str | None = None) -> dict[str, Any]:
        """Register ``persona`` as an agent; its speaker entry uses ``system_prompt`` when given."""
        self.personas.setdefault(persona.key, persona)
        return _speaker(persona, system_prompt or persona.system_prompt)

    def delegate(self, gen: Any, seed: Any, culture: str, name_index: int) -> dict[str, Any]:
        """A delegate speaker; with calibration its system prompt states the culture's attitude."""
        persona = delegate(culture, name_index, gen.language, gen.delegate_adapter)
        if not gen.calibration:
            return self.speaker(persona)
        extra = CALIBRATION.format(attitude=seed.attitude_text(culture, gen.attitude == "pooled"))
        calibrated = delegate(culture, name_index, gen.language, gen.delegate_adapter, extra=extra)
        return self.speaker(persona, calibrated.system_prompt)


def plan_dialogues(gen: Any, seeds: Sequence[Any], model: str, engine: str) -> Plan:
    """Plan every dialogue of a run (``gen`` is a :class:`~cultura.config.GenerateConfig`).

    ``cross``: the main contact and one delegate; ``in``: two delegates of one culture; ``multi``:
    the main contact and one delegate of each culture. With calibration a delegate needs its
    culture's attitude on the seed (its primary country's data, or its countries' pooled with
    ``gen.attitude == "pooled"``); a seed without one skips that culture. Each row records the
    attitude and the country whose data gave it (``attitude_country``).
    """
    cultures = gen.cultures  # canonical keys: the config validated them
    contact = main_contact_persona(gen.main_contact, gen.main_contact_description, language=gen.language)
    pooled = gen.attitude == "pooled"
    plan = Plan()
    for seed in seeds:
        found = {c: seed.culture_attitude(c, pooled) for c in cultures}
        usable = [c for c in cultures if not gen.calibration or found[c] is not None]
        plan.skipped += len(cultures) - len(usable)
        base = {"seed_id": seed.id, "seed_source": seed.source, "seed_text": seed.text, "seed_kind": seed.kind,
                "options": list(seed.options), "mode": gen.mode, "script": gen.script,
                "calibration": gen.calibration, "rounds": gen.rounds, "model": model, "engine": engine,
                "adapter": gen.delegate_adapter, "question": seed.prompt_text()}
        for v in range(gen.per_seed):
            groups: list[tuple[str, list[dict]]] = []  # culture, speakers
            if gen.mode == "multi" and len(usable) >= 2:
                people = [plan.speaker(contact), *(plan.delegate(gen, seed, c, v) for c in usable)]
                groups.append(("+".join(usable), people))
            elif gen.mode == "cross":
                groups += [(c, [plan.speaker(contact), plan.delegate(gen, seed, c, v)]) for c in usable]
            elif gen.mode == "in":
                groups += [(c, [plan.delegate(gen, seed, c, 2 * v + i) for i in (0, 1)]) for c in usable]
            for culture, speakers in groups:
                multi = "+" in culture
                attitude = None if multi or found[culture] is None else found[culture]
                data = "; ".join(f"{c}: {found[c].source}" for c in usable if found[c]) if multi else (
                    attitude.source if attitude else None)
                plan.rows.append(base | {"dialogue_id": dialogue_id(seed.id, culture, gen.mode, gen.script, v),
                                         "culture": culture, "country": None if multi else speakers[-1]["country"],
                                         "attitude": attitude.answer if attitude else None,
                                         "attitude_country": data, "variation": v, "speakers": speakers})
    return plan


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
    plan = plan_dialogues(gen, seeds, config.engine.model, config.engine.kind)
    rows = plan.rows
    if not rows:
        raise CulturaError(f"nothing to generate: no seed of the {gen.split!r} split has a known attitude for "
                           f"{', '.join(cultures)}"
                           + (" in multi mode (needs two cultures per seed)" if gen.mode == "multi" else "")
                           + "; pass --no-calibration, --split all or other seeds")
    folder, params = OutputFolder(out, DIALOGUES, "generate"), run_params(gen, config)
    folder.check(params, resume=resume, overwrite=overwrite)  # a bad --out fails before Ray starts
    if agents is None:  # before the output folder is touched: a run that cannot be placed leaves no trace
        from cultura.ray_utils import init_ray

        init_ray(config)
        check_generate_placement(config, list(plan.personas.values()),
                                 min(gen.workers, math.ceil(len(rows) / gen.batch_size)))
    warn_if_local(out, "--out")
    warn_if_local(None if gen.seeds == "bundled" else gen.seeds, "--seeds")
    folder.prepare(params, resume=resume, overwrite=overwrite)
    written = set(read_parts(folder.data, dialogue_schema(), gen.format, ["dialogue_id"])
                  .column("dialogue_id").to_pylist())
    todo = [r for r in rows if r["dialogue_id"] not in written]
    todo = todo[:limit] if limit else todo
    summary = GenerateSummary(folder.root, planned=len(rows), skipped_no_attitude=plan.skipped,
                              already_written=len({r["dialogue_id"] for r in rows} & written))
    status = "running"
    try:
        if todo:
            personas = [plan.personas[k] for k in dict.fromkeys(s["key"] for r in todo for s in r["speakers"])]
            _run(config, todo, personas, folder, summary, agents, progress, on_part)
        status = "complete" if summary.complete else "partial"
    except BaseException:
        status = "interrupted"
        raise
    finally:
        folder.write_manifest({"status": status, "summary": summary.as_dict()})
        write_generation_card(folder, config, rows, summary, status)
    return summary


def write_generation_card(folder: OutputFolder, config: Any, rows: Sequence[dict], summary: GenerateSummary,
                          status: str) -> Any:
    """The run folder's card: the model, the seeds and split the dialogues rest on, the paper, the data licence."""
    gen = config.generate
    seed_ids = sorted({r["seed_id"] for r in rows})
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


def _run(config: Any, todo: list[dict], personas: list[Persona], folder: OutputFolder, summary: GenerateSummary,
         agents: Any, progress: bool, on_part: Callable[[Any], None] | None) -> None:
    """Start agents (unless given), run the Ray Data pipeline and stream its rows into part files."""
    import ray

    gen = config.generate
    init_ray(config)
    pool = agents or start_agents(personas, config)
    missing = sorted({s["key"] for r in todo for s in r["speakers"]} - set(pool.agents))
    if missing:
        raise CulturaError(f"the agent pool has no agent for {', '.join(missing)}")
    writer = PartWriter(folder.data, dialogue_schema(), gen.format, gen.rows_per_file, on_file=on_part)
    bar = _progress_bar(len(todo)) if progress else None
    ray.data.DataContext.get_current().enable_progress_bars = False  # the driver shows its own
    if progress:
        _quiet_ray_data_console()
    start = time.perf_counter()
    try:
        blocks = max(1, math.ceil(len(todo) / gen.batch_size))
        ds = ray.data.from_items(todo, override_num_blocks=blocks).map_batches(
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
