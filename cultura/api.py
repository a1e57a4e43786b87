"""cultura's Python API: a configuration, an engine, and one verb per stage.

Every verb takes a configuration (a :class:`~cultura.config.CulturaConfig`, a YAML path, or None for the
defaults) plus keyword overrides, and returns its stage's summary object. An override is a field of the
verb's own configuration section (``rounds=2`` for :func:`generate` sets ``generate.rounds``) or a whole
section as a dict (``sampling={"max_tokens": 32}``, ``engine={"model": "Qwen/Qwen2.5-7B-Instruct"}``);
a misspelled one is a :class:`~cultura.errors.ConfigError` naming it. ``None`` leaves a setting as it is.

Example (the whole CulturePark path on the default model; a few minutes on 2 cores)::

    import cultura

    config = cultura.load_config(sampling={"max_tokens": 24})
    gen = cultura.generate(config, out="runs/api/gen", cultures=["german", "chinese"], max_seeds=8, rounds=1)
    ref = cultura.refine(config, source=gen.out, out="runs/api/ref", judge_check=0)
    ada = cultura.finetune(config, data=ref.out, out="runs/api/adapters", max_steps=4)
    res = cultura.evaluate(config, "hofstede", cultures=["german"], methods=["base", "adapter"],
                           adapters="runs/api/adapters", report="runs/api/report")
    print(res.result.by_method)

The command line (``cultura SUBCOMMAND``) parses its flags into the same overrides and calls these verbs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel

from cultura.config import CulturaConfig
from cultura.config import load_config as _load
from cultura.engines import create_engine as build
from cultura.errors import ConfigError
from cultura.eval.evaluate import evaluate as run_evaluation
from cultura.eval.evaluate import get_evaluation
from cultura.pipelines.finetune import finetune as run_finetune
from cultura.pipelines.generate import generate_dialogues
from cultura.pipelines.palette_data import synthesize_palette as run_synthesis
from cultura.pipelines.refine import refine as run_refine
from cultura.ray_utils import polite_threads

ConfigLike = CulturaConfig | str | os.PathLike | None


def load_config(path: str | os.PathLike | None = None, overrides: Mapping[str, Any] | None = None,
                **sections: Any) -> CulturaConfig:
    """The configuration: the profile's defaults, then the YAML file at ``path``, then overrides.

    Args:
        path: a YAML configuration file (README: Configuration), or None for the defaults.
        overrides: dotted field names to values (``{"engine.kind": "vllm"}``), as the CLI's flags give them.
        **sections: a section name to a dict of its fields (``sampling={"max_tokens": 32}``) or a top-level
            field to its value (``placement="dedicated"``).

    Returns the validated :class:`~cultura.config.CulturaConfig`; an invalid value raises
    :class:`~cultura.errors.ConfigError` naming the field.

    Example: ``cultura.load_config(engine={"model": "default"}, sampling={"temperature": 0})``.
    """
    dotted = dict(overrides or {})
    dotted.update(_dotted(sections))
    return _load(path, dotted)


def with_overrides(config: ConfigLike, section: str | None = None, **overrides: Any) -> CulturaConfig:
    """``config`` (a configuration, a YAML path, or None) with ``overrides`` applied and validated again.

    A key that is a field of ``section`` sets that field; a section name takes a dict of its fields; a
    top-level field its value. Unknown keys raise :class:`~cultura.errors.ConfigError` listing the
    fields of ``section``. ``None`` values are skipped.
    """
    base = config if isinstance(config, CulturaConfig) else _load(config)
    fields = CulturaConfig.model_fields
    own = type(getattr(base, section)).model_fields if section else {}
    dotted: dict[str, Any] = {}
    unknown: list[str] = []
    for key, value in overrides.items():
        if value is None:
            continue
        if key in own:
            dotted[f"{section}.{key}"] = value
        elif key in fields:
            dotted.update(_dotted({key: value}))
        else:
            unknown.append(key)
    if unknown:
        where = f"the {section} section's fields ({', '.join(own)}) or " if section else ""
        raise ConfigError(f"unknown setting(s) {', '.join(sorted(unknown))}: use {where}a section name "
                          f"({', '.join(f for f in fields if f not in ('profile', 'home'))}) with a dict")
    if not dotted:
        return base
    return _load(None, {**_dotted(base.model_dump(exclude_unset=True)), **dotted})


def _dotted(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested dict flattened into dotted keys; dicts under a dict-valued field (``engine.adapters``)
    stay whole, since a dotted key cannot tell them from sections."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and _is_section(name):
            flat.update(_dotted(value, f"{name}."))
        elif value is not None:
            flat[name] = value
    return flat


def _is_section(dotted: str) -> bool:
    """Whether ``dotted`` names a configuration section (a model, or a union of models such as the
    per-kind engine settings), not a dict-valued field."""
    models: list[type[BaseModel]] = [CulturaConfig]
    for part in dotted.split("."):
        fields = [m.model_fields[part] for m in models if part in m.model_fields]
        if not fields:
            return False
        models = [m for info in fields for m in _models_of(info.annotation)]
    return bool(models)


def _models_of(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation admits (``A``, ``A | None``, ``Annotated[A | B, ...]``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if get_origin(annotation) in (dict, list, tuple, set):
        return []
    return [m for arg in get_args(annotation) for m in _models_of(arg)]


def create_engine(config: ConfigLike = None, num_threads: int | None = None, **engine: Any) -> Any:
    """An LLM engine (the :class:`~cultura.engines.base.Engine` protocol) in this process.

    Args:
        config: the configuration (its ``engine`` section), a YAML path, or None for the defaults.
        num_threads: torch threads of a local engine (default: the CPUs this process may use).
        **engine: ``engine`` section fields to override (``model=``, ``kind=``, ``adapters=``, ``dtype=``).

    Returns the engine; ``await engine.generate([ChatRequest...])`` and ``await engine.score_options(...)``
    answer requests, ``await engine.close()`` frees it. Example::

        from cultura.engines import ChatRequest
        from cultura.engines.base import run_sync
        engine = cultura.create_engine(model="default")
        [answer] = run_sync(engine.generate([ChatRequest.of([{"role": "user", "content": "Hi"}], max_tokens=8)]))
    """
    polite_threads()
    return build(with_overrides(config, "engine", **engine).engine, num_threads=num_threads)


def generate(config: ConfigLike = None, *, out: str | Path, resume: bool = False, overwrite: bool = False,
             limit: int | None = None, progress: bool = False, on_part: Callable[[Any], None] | None = None,
             **overrides: Any) -> Any:
    """CulturePark dialogues on Ray Data (``cultura generate``).

    Args:
        config: the configuration, a YAML path, or None for the defaults.
        out: output folder or URI: ``OUT/dialogues/part-*.parquet`` and ``OUT/manifest.json``.
        resume: finish a stopped run in ``out`` without repeating a written dialogue.
        overwrite: replace another run in ``out``.
        limit: generate at most this many dialogues now.
        progress: show a progress bar.
        on_part: called with each part file once it is in place.
        **overrides: ``generate`` section fields (``cultures``, ``rounds``, ``max_seeds``, ``per_seed``, ...)
            or sections as dicts.

    Returns a :class:`~cultura.pipelines.generate.run.GenerateSummary` (``dialogues``, ``planned``,
    ``turns``, ``failures``, ``out``). Example: ``cultura.generate(out="runs/g", cultures=["german"], rounds=1)``.
    """
    return generate_dialogues(with_overrides(config, "generate", **overrides), out, resume=resume,
                              overwrite=overwrite, limit=limit, progress=progress, on_part=on_part)


def refine(config: ConfigLike = None, *, source: str | Path, out: str | Path, overwrite: bool = False,
           progress: bool = False, **overrides: Any) -> Any:
    """CulturePark refinement (``cultura refine``): extract -> verify -> diversify -> SFT sets.

    Args:
        config: the configuration, a YAML path, or None for the defaults.
        source: a generation run folder (what :func:`generate` wrote).
        out: output folder or URI: ``opinions.parquet``, ``sft/<culture>.jsonl`` and ``.parquet``, ``summary.json``.
        overwrite: replace an earlier refinement in ``out``.
        progress: show progress bars.
        **overrides: ``refine`` section fields (``stages``, ``preset``, ``k``, ``judge_check``, ...) or sections.

    Returns a :class:`~cultura.pipelines.refine.summary.RefineSummary` (``table()``, ``totals()``,
    ``sft_files``, ``out``). Example: ``cultura.refine(source="runs/g", out="runs/r", stages="verify")``.
    """
    return run_refine(with_overrides(config, "refine", **overrides), source, out, overwrite=overwrite,
                      progress=progress)


def finetune(config: ConfigLike = None, *, data: str | Path, out: str | Path, per: str = "culture",
             only: Sequence[str] | None = None, progress: bool = False, echo: Callable[[str], None] | None = None,
             **overrides: Any) -> Any:
    """One LoRA adapter per culture or continent with Ray Train (``cultura finetune``).

    Args:
        config: the configuration, a YAML path, or None for the defaults.
        data: a refinement folder (``per="culture"``) or a Palette dataset folder (``per="continent"``).
        out: adapters folder or URI: ``OUT/<name>/`` (PEFT) and ``OUT/registry.json``.
        per: ``"culture"`` or ``"continent"``.
        only: train only these cultures or continents.
        progress: show each run's progress; echo: called with each progress line instead of printing.
        **overrides: ``finetune`` section fields (``preset``, ``lora_r``, ``epochs``, ``max_steps``, ...) or
            sections.

    Returns a :class:`~cultura.pipelines.finetune.run.FinetuneSummary` (``adapters``, ``failures``,
    ``registry``). Example: ``cultura.finetune(data="runs/r", out="adapters", max_steps=10)``.
    """
    return run_finetune(with_overrides(config, "finetune", **overrides), data, per, out, only=only,
                        progress=progress, echo=echo)


def synthesize_palette(config: ConfigLike = None, *, out: str | Path, prompts: str = "bundled",
                       limit: int | None = None, samples: int | None = None, overwrite: bool = False,
                       progress: bool = False, **overrides: Any) -> Any:
    """A Cultural Palette dataset (``cultura palette-data``): every continent answers every prompt, a
    judge rates the answers on Hofstede's dimensions, the closest answer per continent is chosen.

    Args:
        config: the configuration, a YAML path, or None for the defaults.
        out: output folder or URI: ``palette.parquet``, ``palette.jsonl``, ``manifest.json``.
        prompts: ``"bundled"``, a PRISM conversations JSONL, or a JSONL/CSV of prompts.
        limit: use the first N prompts; samples: responses per prompt and continent.
        overwrite: replace a dataset already in ``out``; progress: show a progress bar.
        **overrides: ``palette`` section fields (``max_tokens``, ``max_distance``, ``workers``, ...) or sections.

    Returns a :class:`~cultura.pipelines.palette_data.PaletteDataSummary` (``prompts``, ``rows``, ``files``).
    """
    return run_synthesis(with_overrides(config, "palette", **overrides), out, prompts, limit=limit,
                         samples=samples, overwrite=overwrite, progress=progress)


def evaluate(config: ConfigLike = None, evaluation: str = "opinions", *, methods: str | Sequence[str] | None = None,
             report: str | Path | None = None, adapters: str | None = None, **options: Any) -> Any:
    """Evaluate methods and write a report folder (``cultura eval hofstede|opinions|moderation|bench``).

    Args:
        config: the configuration, a YAML path, or None for the defaults.
        evaluation: ``"hofstede"``, ``"opinions"``, ``"moderation"`` or ``"bench"``.
        methods: method names (``"base,prompted"``, a list, or ``"all"``; ``cultura eval methods`` lists them);
            default: the evaluation's own.
        report: the report folder (``report.md``, ``results.parquet``, plots); default ``reports/<evaluation>``.
        adapters: an adapter registry folder (from :func:`finetune`) for the ``adapter`` and continent methods.
        **options: the evaluation's options (hofstede: ``cultures``; opinions: ``countries``, ``questions``,
            ``split``, ``limit``, ``proxy``, ``allow_overlap``; moderation: ``tasks``, ``cultures``,
            ``text_column``, ``label_column``, ``positive_label``, ``template``, ``dev_fraction``, ``limit``;
            bench: ``benchmark``, ``source``, ``limit``),
            then ``eval`` section fields (``actors``, ``mode``, ``samples``, ``seed``) or sections as dicts.

    Returns an :class:`~cultura.eval.evaluate.EvaluationSummary`: ``result`` is the evaluation's report
    (``summary``, ``by_method``, ``rows``, ``files``). Example::

        cultura.evaluate(None, "opinions", countries="Germany,Japan", methods="base,prompted", limit=5)
    """
    own = get_evaluation(evaluation).options.model_fields
    settings = {k: options.pop(k) for k in list(options) if k not in own}
    return run_evaluation(with_overrides(config, "eval", **settings), evaluation, methods=methods, report=report,
                          adapters=adapters, **options)


def serve(config: ConfigLike = None, **overrides: Any) -> str:
    """Start the Serve app (Ingress -> Gate -> five ContinentAgents -> MetaAgent, culture agents) and
    return the base URL of its OpenAI-compatible API (``http://127.0.0.1:8000/v1``) without blocking.

    Args:
        config: the configuration, a YAML path, or None for the defaults.
        **overrides: ``serve`` section fields (``host``, ``port``, ``app_name``, limits, per-deployment
            scaling) or sections as dicts.

    The app runs until ``ray.serve.delete(config.serve.app_name)`` or ``ray.serve.shutdown()``.
    Example: ``url = cultura.serve(port=8000)``, then any OpenAI client with ``base_url=url``.
    """
    # Imported here: importing the cultura.serve package binds it onto the cultura namespace, where it
    # would shadow this verb (cultura.serve) for everyone who imported the API first.
    from cultura.serve.app import start

    return start(with_overrides(config, "serve", **overrides))
