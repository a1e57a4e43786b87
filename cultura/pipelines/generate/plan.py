"""Planning a generation run's dialogues, seed by seed, without holding them all.

A dialogue is one row (seed, culture, speakers with their system prompts, script) with a
deterministic id (:func:`dialogue_id`). :class:`Planner` plans one seed's rows at a time, so the same
code serves a whole small plan in memory (:func:`plan_dialogues`, for tests and benches), the driver's
counting pass over a run (:func:`count_plan`: how many are planned, written, left, which agents the
rows left need, and where a ``limit`` stops; it keeps counts, never rows) and the Ray Dataset that
plans the rows left inside Ray Data's workers, a block of seeds at a time (:func:`planned_dataset`).
The driver's memory is then the seeds and the written ids, whatever the number of dialogues; each
block carries its own seeds, so a worker never reads the whole seed list.
"""

from __future__ import annotations

import hashlib
import json
import math
import pickle
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from cultura.data.cultures import get_culture
from cultura.personas import Persona, culture_persona, main_contact_persona

CALIBRATION = "{attitude} You share this view: everything you say must agree with it."


def dialogue_id(seed_id: str, culture: str, mode: str, script: str, variation: int) -> str:
    """The deterministic id of a dialogue (same inputs, same id), so output is idempotent."""
    key = json.dumps([seed_id, culture, mode, script, variation])
    return hashlib.sha1(key.encode("utf-8")).hexdigest()[:20]


def delegate(culture: str, name_index: int, language: str, adapter: str | None = None, extra: str = "") -> Persona:
    """A delegate persona whose key is unique per culture and name (one agent actor each)."""
    index = name_index % len(get_culture(culture).names)
    persona = culture_persona(culture, index, language=language, extra=extra).with_adapter(adapter)
    return replace(persona, key=f"delegate:{culture}:{index}")


def _speaker(persona: Persona, system_prompt: str) -> dict[str, Any]:
    return {"key": persona.key, "name": persona.name, "role": persona.role, "culture": persona.culture,
            "country": persona.country, "adapter": persona.adapter, "system_prompt": system_prompt}


class Planner:
    """Plans the dialogues of one seed at a time (``gen`` is a :class:`~cultura.config.GenerateConfig`).

    ``cross``: the main contact and one delegate; ``in``: two delegates of one culture; ``multi``:
    the main contact and one delegate of each culture. With calibration a delegate needs its
    culture's attitude on the seed (its primary country's data, or its countries' pooled with
    ``gen.attitude == "pooled"``); a seed without one skips that culture (counted in ``skipped``).
    Each row records the attitude and the country whose data gave it (``attitude_country``).
    ``personas`` collects the uncalibrated persona of every speaker planned, by key.
    """

    def __init__(self, gen: Any, model: str, engine: str):
        self.gen, self.model, self.engine = gen, model, engine
        self.contact = main_contact_persona(gen.main_contact, gen.main_contact_description, language=gen.language)
        self.personas: dict[str, Persona] = {}
        self.skipped = 0

    def speaker(self, persona: Persona, system_prompt: str | None = None) -> dict[str, Any]:
        """Register ``persona`` as an agent; its speaker entry uses ``system_prompt`` when given."""
        self.personas.setdefault(persona.key, persona)
        return _speaker(persona, system_prompt or persona.system_prompt)

    def delegate(self, seed: Any, culture: str, name_index: int) -> dict[str, Any]:
        """A delegate speaker; with calibration its system prompt states the culture's attitude."""
        gen = self.gen
        persona = delegate(culture, name_index, gen.language, gen.delegate_adapter)
        if not gen.calibration:
            return self.speaker(persona)
        extra = CALIBRATION.format(attitude=seed.attitude_text(culture, gen.attitude == "pooled"))
        calibrated = delegate(culture, name_index, gen.language, gen.delegate_adapter, extra=extra)
        return self.speaker(persona, calibrated.system_prompt)

    def rows(self, seed: Any) -> list[dict[str, Any]]:
        """The dialogues of one seed, in a fixed order (variation, then culture)."""
        gen = self.gen
        cultures = gen.cultures  # canonical keys: the config validated them
        found = {c: seed.culture_attitude(c, gen.attitude == "pooled") for c in cultures}
        usable = [c for c in cultures if not gen.calibration or found[c] is not None]
        self.skipped += len(cultures) - len(usable)
        base = {"seed_id": seed.id, "seed_source": seed.source, "seed_text": seed.text, "seed_kind": seed.kind,
                "options": list(seed.options), "mode": gen.mode, "script": gen.script,
                "calibration": gen.calibration, "rounds": gen.rounds, "model": self.model, "engine": self.engine,
                "adapter": gen.delegate_adapter, "question": seed.prompt_text()}
        rows = []
        for v in range(gen.per_seed):
            groups: list[tuple[str, list[dict]]] = []  # culture, speakers
            if gen.mode == "multi" and len(usable) >= 2:
                people = [self.speaker(self.contact), *(self.delegate(seed, c, v) for c in usable)]
                groups.append(("+".join(usable), people))
            elif gen.mode == "cross":
                groups += [(c, [self.speaker(self.contact), self.delegate(seed, c, v)]) for c in usable]
            elif gen.mode == "in":
                groups += [(c, [self.delegate(seed, c, 2 * v + i) for i in (0, 1)]) for c in usable]
            for culture, speakers in groups:
                multi = "+" in culture
                attitude = None if multi or found[culture] is None else found[culture]
                data = "; ".join(f"{c}: {found[c].source}" for c in usable if found[c]) if multi else (
                    attitude.source if attitude else None)
                rows.append(base | {"dialogue_id": dialogue_id(seed.id, culture, gen.mode, gen.script, v),
                                    "culture": culture, "country": None if multi else speakers[-1]["country"],
                                    "attitude": attitude.answer if attitude else None,
                                    "attitude_country": data, "variation": v, "speakers": speakers})
        return rows


@dataclass
class Plan:
    """Every dialogue of a run, the agents it needs (uncalibrated personas by key), and the
    (seed, culture) pairs skipped because the culture's attitude on the seed is unknown."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    personas: dict[str, Persona] = field(default_factory=dict)
    skipped: int = 0


def plan_dialogues(gen: Any, seeds: Sequence[Any], model: str, engine: str) -> Plan:
    """Plan every dialogue of a run in memory (see :class:`Planner`); for small plans and tests."""
    planner = Planner(gen, model, engine)
    rows = [row for seed in seeds for row in planner.rows(seed)]
    return Plan(rows, planner.personas, planner.skipped)


@dataclass
class PlanCount:
    """What the driver knows of a run's plan without holding its rows: dialogues ``planned``, how
    many of them are ``written`` already, how many run now (``todo``), the (seed, culture) pairs
    ``skipped``, the ids of the seeds with a dialogue, the agents the dialogues left need (in order of
    first use), and where the dialogues run now end (``stop``: see :func:`planned_dataset`)."""

    planned: int = 0
    written: int = 0
    todo: int = 0
    skipped: int = 0
    seed_ids: list[str] = field(default_factory=list)
    personas: dict[str, Persona] = field(default_factory=dict)
    stop: tuple[int, int] | None = None  # (seed index, rows left of that seed) where a limit ends the run


def _rows_left(rows: list[dict[str, Any]], written: frozenset[str] | set[str]) -> list[dict[str, Any]]:
    return [r for r in rows if r["dialogue_id"] not in written]


def count_plan(gen: Any, seeds: Sequence[Any], model: str, engine: str, written: frozenset[str] | set[str],
               limit: int | None = None) -> PlanCount:
    """Plan the run seed by seed and keep only counts (see :class:`PlanCount`); ``written`` holds the
    ids already in the output, ``limit`` caps the dialogues run now (the first ones left, in plan order)."""
    planner = Planner(gen, model, engine)
    count = PlanCount()
    for index, seed in enumerate(seeds):
        rows = planner.rows(seed)
        if rows:
            count.seed_ids.append(seed.id)
        count.planned += len(rows)
        left = _rows_left(rows, written)
        count.written += len(rows) - len(left)
        if count.stop is None and left:
            taken = left if limit is None else left[:limit - count.todo]
            count.todo += len(taken)
            for row in taken:
                for speaker in row["speakers"]:
                    count.personas.setdefault(speaker["key"], planner.personas[speaker["key"]])
            if limit is not None and count.todo >= limit:
                count.stop = (index, len(taken))
    count.skipped = planner.skipped
    return count


def seeds_per_block(gen: Any, batch_size: int) -> int:
    """Seeds planned together in one block of the Dataset: about ``batch_size`` dialogues' worth."""
    per_seed = gen.per_seed * (1 if gen.mode == "multi" else len(gen.cultures))
    return max(1, batch_size // max(1, per_seed))


def plan_block(item: dict[str, Any], *, gen: Any, model: str, engine: str, written: Any,
               stop: tuple[int, int] | None) -> Iterator[dict[str, Any]]:
    """The dialogues left of the block's seeds (a Ray Data ``flat_map`` function): ``item["seeds"]``
    holds them pickled, ``item["first"]`` is the first one's index in the run, ``written`` is an object
    ref of the written ids; the rows stop at ``stop``."""
    planner = Planner(gen, model, engine)
    written = _written_in_worker(written)
    for index, seed in enumerate(pickle.loads(item["seeds"]), start=int(item["first"])):
        rows = _rows_left(planner.rows(seed), written)
        if stop is not None and index == stop[0]:
            yield from rows[:stop[1]]
            return
        yield from rows


_WRITTEN_IN_WORKER: dict[str, frozenset[str]] = {}  # the last run's written ids, by object id


def _written_in_worker(written: Any) -> frozenset[str]:
    # a Ray Data worker plans many blocks: on a resumed run it reads the written ids once, not per
    # block (keyed by the object's id, so the cache does not hold the object itself in the store)
    import ray

    key = written.hex()
    if key not in _WRITTEN_IN_WORKER:
        _WRITTEN_IN_WORKER.clear()
        _WRITTEN_IN_WORKER[key] = ray.get(written)
    return _WRITTEN_IN_WORKER[key]


def planned_dataset(gen: Any, seeds: Sequence[Any], model: str, engine: str, written: frozenset[str] | set[str],
                    count: PlanCount, batch_size: int) -> Any:
    """A Ray Dataset of the dialogues ``count`` says run now, planned in Ray Data's workers: one block
    per :func:`seeds_per_block` seeds (carrying those seeds alone), up to the seed where a limit stops
    the run."""
    import ray

    end = len(seeds) if count.stop is None else count.stop[0] + 1
    step = seeds_per_block(gen, batch_size)
    blocks = [{"first": first, "seeds": pickle.dumps(list(seeds[first:min(end, first + step)]))}
              for first in range(0, end, step)]
    # planning takes milliseconds a block: it asks for no CPU, which the agents and dialogue workers hold
    return ray.data.from_items(blocks, override_num_blocks=max(1, len(blocks))).flat_map(
        plan_block, fn_kwargs={"gen": gen, "model": model, "engine": engine,
                               "written": ray.put(frozenset(written)), "stop": count.stop}, num_cpus=0)


def blocks_for(count: PlanCount, batch_size: int) -> int:
    """Batches of ``batch_size`` the dialogues run now make (at least one)."""
    return max(1, math.ceil(count.todo / batch_size))
