"""The Meta Agent's three stages over Ray actors, for one prompt or a batch of prompts.

1. **Cultural drafts**: the gate picks the top-k continents per prompt; each chosen continent agent
   gets one batched call holding every prompt it drafts for, all agents at once (their calls meet in
   the shared engine's batcher).
2. **Self-regulated aggregation** and 3. **final decision**: the Meta Agent reads each prompt's drafts
   with their weights and writes one answer; one batched call for all prompts.

Blend modes: ``aggregate`` (the three stages), ``select`` (only the top-1 agent drafts; its draft is the
answer), ``weighted-merge`` (the chosen continents' adapters merged with the gate weights, one
generation per prompt with the merged adapter, batched across prompts).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from cultura.data.hofstede import CONTINENTS
from cultura.engines.base import ChatRequest
from cultura.language import answer_language
from cultura.palette.merge import merge_adapters, plan_merge
from cultura.palette.meta import aggregation_messages, blended_messages, draft_messages, final_answer
from cultura.sampling import SamplingParams

BLENDS = ("aggregate", "select", "weighted-merge")


@dataclass(frozen=True)
class PaletteResponse:
    """A Palette answer: the text, the gate weights (all five continents), the drafts by continent,
    stage timings in seconds, the target country (given or detected) and ``missing``: the drafting
    (or merged) continents that have no adapter, so the base model spoke with the continent persona."""

    text: str
    weights: dict[str, float]
    drafts: dict[str, str]
    timings: dict[str, float]
    country: str | None = None
    missing: tuple[str, ...] = ()
    selected: tuple[str, ...] = ()
    blend: str = "aggregate"
    merged_adapter: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain values (JSON-ready)."""
        data = asdict(self)
        data["missing"], data["selected"] = list(self.missing), list(self.selected)
        return data


@dataclass
class PaletteHandles:
    """What the stages talk to: the gate actor, one agent per continent, the Meta Agent, and (for
    weighted-merge) an engine actor plus the merge settings. Picklable, so Ray Data workers get it."""

    gate: Any
    agents: dict[str, Any]
    meta: Any
    adapters: dict[str, str] = field(default_factory=dict)  # continent -> adapter folder
    engine: Any = None
    base_model: str = "default"
    merge_cache: str = ""
    merge_round: float = 0.05


@dataclass(frozen=True)
class StageSettings:
    """Sampling and blend for one run of the stages."""

    blend: str
    draft_sampling: SamplingParams
    meta_sampling: SamplingParams


def _split(messages: list[dict[str, str]]) -> tuple[str, list[dict[str, str]]]:
    """(system prompt, the rest) of a chat built by :mod:`cultura.palette.meta`."""
    return messages[0]["content"], messages[1:]


def _drafting(blend: str, selected: tuple[str, ...]) -> tuple[str, ...]:
    if blend == "select":
        return selected[:1]
    if blend == "aggregate":
        return selected
    return ()


def run_stages(handles: PaletteHandles, settings: StageSettings, prompts: Sequence[str],
               countries: Sequence[str | None], languages: Sequence[str | None] | None = None) -> list[PaletteResponse]:
    """Answer every prompt (``countries[i]`` may be None) through the gate and the chosen blend, in
    ``languages[i]`` (a name or code; None or ``auto``: the prompt's own language)."""
    import ray

    languages = [answer_language(lang, p) for p, lang in zip(prompts, languages or [None] * len(prompts))]
    draft_samplings = [replace(settings.draft_sampling, language=lang) for lang in languages]
    meta_samplings = [replace(settings.meta_sampling, language=lang) for lang in languages]
    start = time.perf_counter()
    decisions = ray.get(handles.gate.weights_many.remote(list(prompts), list(countries)))
    timings = {"gate_s": time.perf_counter() - start}

    # stage 1: cultural drafts, one batched call per chosen continent agent, all agents at once
    wanted: dict[str, list[int]] = {c: [] for c in CONTINENTS}
    for i, d in enumerate(decisions):
        for continent in _drafting(settings.blend, d.selected):
            wanted[continent].append(i)
    t = time.perf_counter()
    futures = {}
    for continent, rows in wanted.items():
        if rows:
            chats = [_split(draft_messages(prompts[i], continent, decisions[i].country, languages[i])) for i in rows]
            futures[continent] = handles.agents[continent].respond.remote(
                [conv for _, conv in chats], [draft_samplings[i] for i in rows], [system for system, _ in chats])
    drafts: list[dict[str, str]] = [{} for _ in prompts]
    for continent, future in futures.items():
        for i, completion in zip(wanted[continent], ray.get(future)):
            drafts[i][continent] = completion.text
    if futures:
        timings["drafts_s"] = time.perf_counter() - t

    merged: list[str | None] = [None] * len(prompts)
    texts: list[str]
    if settings.blend == "select":
        texts = [drafts[i][d.selected[0]] for i, d in enumerate(decisions)]
    elif settings.blend == "aggregate":
        # stages 2 and 3: self-regulated aggregation and final decision by the Meta Agent
        t = time.perf_counter()
        chats = [_split(aggregation_messages(prompts[i], drafts[i], d.weights, d.country, language=languages[i]))
                 for i, d in enumerate(decisions)]
        completions = ray.get(handles.meta.respond.remote([conv for _, conv in chats], meta_samplings,
                                                          [system for system, _ in chats]))
        texts = [c.text for c in completions]
        timings["aggregate_s"] = time.perf_counter() - t
    else:
        texts, merged = _weighted_merge(handles, draft_samplings, prompts, decisions, timings, languages)

    # whatever the blend, the user never gets an echoed label or question first
    texts = [final_answer(texts[i], prompts[i], drafts[i], d.weights, d.country) for i, d in enumerate(decisions)]
    timings["total_s"] = time.perf_counter() - start
    responses = []
    for i, d in enumerate(decisions):
        speaking = tuple(drafts[i]) if settings.blend != "weighted-merge" else d.selected
        responses.append(PaletteResponse(
            text=texts[i], weights=dict(d.weights), drafts=drafts[i], timings=dict(timings), country=d.country,
            missing=tuple(c for c in speaking if c not in handles.adapters), selected=d.selected,
            blend=settings.blend, merged_adapter=merged[i]))
    return responses


def _weighted_merge(handles: PaletteHandles, samplings: Sequence[SamplingParams], prompts: Sequence[str],
                    decisions: Sequence[Any], timings: dict[str, float],
                    languages: Sequence[str]) -> tuple[list[str], list[str | None]]:
    """Merge each prompt's continent adapters (cached by rounded weights), then one batched generation.

    Merges not yet on disk run as Ray tasks (one per distinct weight vector, in parallel).
    """
    import ray

    t = time.perf_counter()
    plans = [plan_merge(handles.base_model, handles.adapters, d.weights, handles.merge_round, handles.merge_cache)
             for d in decisions]
    todo = {str(folder): weights for folder, weights in plans if not (folder / "adapter_model.safetensors").is_file()}
    if todo:
        task = ray.remote(num_cpus=0)(merge_adapters)
        ray.get([task.remote(handles.base_model, handles.adapters, weights, folder) for folder, weights in todo.items()])
    timings["merge_s"] = time.perf_counter() - t
    t = time.perf_counter()
    requests = [ChatRequest.of(blended_messages(prompts[i], weights, d.country, languages[i]), adapter=str(folder),
                               **asdict(samplings[i]))
                for i, (d, (folder, weights)) in enumerate(zip(decisions, plans))]
    completions = ray.get(handles.engine.generate.remote(requests))
    timings["generate_s"] = time.perf_counter() - t
    return [c.text for c in completions], [str(folder) for folder, _ in plans]


def result_schema() -> Any:
    """The Arrow schema of :meth:`Palette.respond_batch`'s rows: the prompt, the target country, the
    answer, the gate weights and drafts per continent (null where a continent did not draft), the
    stage timings, the continents without an adapter, the blend and the merged adapter (if any)."""
    import pyarrow as pa

    return pa.schema([
        pa.field("prompt", pa.string(), nullable=False),
        pa.field("country", pa.string()),
        pa.field("text", pa.string(), nullable=False),
        pa.field("selected", pa.list_(pa.string()), nullable=False),
        pa.field("weights", pa.struct([pa.field(c, pa.float64(), nullable=False) for c in CONTINENTS]), nullable=False),
        pa.field("drafts", pa.struct([pa.field(c, pa.string()) for c in CONTINENTS]), nullable=False),
        pa.field("timings", pa.map_(pa.string(), pa.float64()), nullable=False),
        pa.field("missing", pa.list_(pa.string()), nullable=False),
        pa.field("blend", pa.string(), nullable=False),
        pa.field("merged_adapter", pa.string()),
    ])


def result_row(prompt: str, response: PaletteResponse) -> dict[str, Any]:
    """One row of :func:`result_schema` for a prompt and its response."""
    return {"prompt": prompt, "country": response.country, "text": response.text,
            "selected": list(response.selected), "weights": dict(response.weights),
            "drafts": {c: response.drafts.get(c) for c in CONTINENTS}, "timings": list(response.timings.items()),
            "missing": list(response.missing), "blend": response.blend, "merged_adapter": response.merged_adapter}


class PaletteBatchWorker:
    """A Ray Data stage (``map_batches``) running :func:`run_stages` over batches of prompts.

    Holds only actor handles (no model), so it is cheap to start; rows carry ``prompt`` and ``country``.
    """

    def __init__(self, handles: PaletteHandles, settings: StageSettings):
        self.handles, self.settings = handles, settings

    def __call__(self, batch: Any) -> Any:
        """Answer a batch (an Arrow table with ``prompt`` and ``country``) as a :func:`result_schema` table."""
        import pyarrow as pa

        prompts = [str(p) for p in batch.column("prompt").to_pylist()]
        countries = (batch.column("country").to_pylist() if "country" in batch.column_names
                     else [None] * len(prompts))
        countries = [c or None for c in countries]
        responses = run_stages(self.handles, self.settings, prompts, countries)
        return pa.Table.from_pylist([result_row(p, r) for p, r in zip(prompts, responses)], schema=result_schema())
