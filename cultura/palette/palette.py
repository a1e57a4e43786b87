"""Cultural Palette on Ray: five continent agents, the Cultural MoE gate and the Meta Agent.

``Palette(config).respond(prompt, country)`` answers one prompt; ``respond_batch`` answers a Ray
Dataset of prompts, batching every stage across prompts. Agents follow ``config.placement`` (shared
engine actor or one engine per agent); the gate runs in its own light actor that holds the sentence
embedder, so the driver never imports torch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from cultura.actors.agents import start_agents, stop_actors
from cultura.data.hofstede import CONTINENTS, resolve_country
from cultura.errors import CulturaError
from cultura.language import answer_language
from cultura.palette.adapters import continent_adapters
from cultura.palette.gate import CulturalGate, validate_prompt
from cultura.palette.meta import meta_persona
from cultura.palette.stages import (
    BLENDS,
    PaletteBatchWorker,
    PaletteHandles,
    PaletteResponse,
    StageSettings,
    run_stages,
)
from cultura.paths import cultura_home
from cultura.personas import continent_persona
from cultura.ray_utils import init_ray

__all__ = ["Palette", "PaletteResponse", "GateHost"]


class GateHost:
    """A Ray actor holding a :class:`CulturalGate` with its embedder loaded once."""

    def __init__(self, palette_config: Any):
        self.gate = CulturalGate.from_config(palette_config)
        self.gate.weights_many(["warm-up"])  # load the embedder and embed the descriptions now

    def weights_many(self, prompts: list[str], countries: list[str | None]) -> list[Any]:
        """The gate's decisions (see :meth:`CulturalGate.weights_many`)."""
        return self.gate.weights_many(prompts, countries)


class Palette:
    """Continent agents, gate and Meta Agent as Ray actors; see the module docstring.

    Use as a context manager, or call :meth:`close` to free the actors. ``engine``: an engine actor
    (its name, or a handle) the agents forward to with ``shared`` placement instead of one started
    here (:meth:`close` leaves it).
    """

    def __init__(self, config: Any, engine: Any = None):
        import ray

        self.config = config
        p = config.palette
        if p.blend not in BLENDS:  # the config validates this; a direct caller may not have
            raise CulturaError(f"palette.blend must be one of {', '.join(BLENDS)}, got {p.blend!r}")
        CulturalGate.from_config(p, embedder=lambda texts: None)  # validates the gate parameters before starting anything
        self.adapters = continent_adapters(config)
        init_ray(config)
        personas = [continent_persona(c, self.adapters.get(c)) for c in CONTINENTS] + [meta_persona()]
        self._pool = start_agents(personas, config, engine)
        if isinstance(engine, str):  # agents take the name (see start_agents); the stages want the handle
            engine = ray.get_actor(engine)
        self._gate = ray.remote(GateHost).options(num_cpus=0, max_restarts=3, max_task_retries=3).remote(
            p)
        self._own_engine = None
        self.handles = PaletteHandles(
            gate=self._gate, agents={c: self._pool[f"continent:{c}"] for c in CONTINENTS}, meta=self._pool["meta"],
            adapters=dict(self.adapters), engine=self._pool.engine or engine, base_model=config.engine.model,
            merge_cache=str(cultura_home(config.home) / "palette" / "merged"), merge_round=p.merge_round)

    # ----- settings -------------------------------------------------------------------------
    def settings(self, blend: str | None = None) -> StageSettings:
        """Sampling for drafts and Meta Agent from ``config.palette`` and ``config.sampling``."""
        p, s = self.config.palette, self.config.sampling
        blend = blend or p.blend
        if blend not in BLENDS:
            raise CulturaError(f"blend must be one of {', '.join(BLENDS)}, got {blend!r}")
        if blend == "weighted-merge":
            self._ensure_engine()
        draft = s.params(max_tokens=p.max_tokens, temperature=p.temperature)
        meta = s.params(max_tokens=p.max_tokens, temperature=p.meta_temperature)
        return StageSettings(blend, draft, meta)

    def _ensure_engine(self) -> None:
        """weighted-merge generates on an engine actor: the shared one, or one started for it."""
        if self.config.engine.kind == "openai":
            raise CulturaError("weighted-merge merges LoRA weights, which an OpenAI-compatible engine cannot "
                               "load; use --blend aggregate or a transformers/vllm engine")
        if not self.adapters:
            raise CulturaError("weighted-merge needs continent adapters: none is registered (train them with "
                               "`cultura finetune`, set palette.adapters or palette.continent_adapters), "
                               "or use --blend aggregate")
        if self.handles.engine is None:
            from cultura.actors.engine_actor import start_engine_actor

            self._own_engine = start_engine_actor(self.config.engine, self.config.engine_resources)
            self.handles.engine = self._own_engine

    # ----- answering ------------------------------------------------------------------------
    def respond(self, prompt: str, country: str | None = None, blend: str | None = None,
                language: str | None = None) -> PaletteResponse:
        """Answer one prompt for a target country (a name, alias or demonym; None: detect or none), in
        ``language`` (a name or ISO 639 code; None or ``auto``: the prompt's own language).

        An empty prompt, an unknown country or language is a CulturaError (with close matches).
        """
        prompt = validate_prompt(prompt)
        country = resolve_country(country) if country else None
        return run_stages(self.handles, self.settings(blend), [prompt], [country],
                          [answer_language(language, prompt)])[0]

    def respond_many(self, prompts: Sequence[str], countries: Sequence[str | None] | None = None,
                     blend: str | None = None) -> list[PaletteResponse]:
        """Answer a list of prompts in one pass of the stages (no Ray Data), in order."""
        prompts, countries = _validated(prompts, countries)
        return run_stages(self.handles, self.settings(blend), prompts, countries)

    def respond_batch(self, data: Any, countries: Sequence[str | None] | None = None,
                      blend: str | None = None) -> Any:
        """Answer many prompts as a Ray Dataset (rows of :func:`~cultura.palette.stages.result_schema`).

        ``data`` is a Ray Dataset with a ``prompt`` column (and optionally ``country``), or a list of
        prompt strings (with ``countries``) or of ``{"prompt", "country"}`` dicts. Batches of
        ``palette.batch_size`` prompts run on ``palette.workers`` Ray Data actors; within a batch every
        stage is one batched call per agent. The Dataset is lazy: iterate, ``take_all`` or write it.
        """
        import ray

        p = self.config.palette
        if not isinstance(data, ray.data.Dataset):
            data = ray.data.from_items(_rows(data, countries))
        if "prompt" not in data.columns():
            raise CulturaError(f"respond_batch needs a 'prompt' column; the dataset has {', '.join(data.columns())}")
        return data.map_batches(
            PaletteBatchWorker, fn_constructor_kwargs={"handles": self.handles, "settings": self.settings(blend)},
            compute=ray.data.ActorPoolStrategy(size=p.workers), batch_size=p.batch_size,
            batch_format="pyarrow", num_cpus=0)

    # ----- lifetime -------------------------------------------------------------------------
    def close(self) -> None:
        """Kill the gate, the agents, and the engine actors this Palette started."""
        self._pool.stop()
        stop_actors([h for h in (self._gate, self._own_engine) if h is not None])
        self._own_engine = None

    def __enter__(self) -> Palette:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _validated(prompts: Sequence[str], countries: Sequence[str | None] | None) -> tuple[list[str], list[str | None]]:
    """Prompts stripped and countries resolved; an empty prompt or unknown country is an error naming the row."""
    prompts = list(prompts)
    countries = list(countries) if countries is not None else [None] * len(prompts)
    if len(countries) != len(prompts):
        raise CulturaError(f"{len(prompts)} prompts but {len(countries)} countries")
    out_p, out_c = [], []
    for i, (prompt, country) in enumerate(zip(prompts, countries)):
        try:
            out_p.append(validate_prompt(prompt))
            out_c.append(resolve_country(country) if country else None)
        except CulturaError as exc:
            raise CulturaError(f"row {i + 1}: {exc}") from None
    return out_p, out_c


def _rows(data: Iterable[Any], countries: Sequence[str | None] | None) -> list[dict[str, Any]]:
    """``{"prompt", "country"}`` rows from prompt strings (+ countries) or dicts, validated."""
    items = list(data)
    if items and all(isinstance(i, dict) for i in items):
        prompts = [i.get("prompt") for i in items]
        countries = [i.get("country") for i in items]
    elif all(isinstance(i, str) for i in items):
        prompts = items
    else:
        raise CulturaError("respond_batch takes a Ray Dataset, a list of prompts, or a list of {'prompt', 'country'} dicts")
    prompts, countries = _validated(prompts, countries)
    if not prompts:
        raise CulturaError("respond_batch got no prompts")
    return [{"prompt": p, "country": c} for p, c in zip(prompts, countries)]
