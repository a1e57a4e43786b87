"""The experiment file: one YAML document naming a paper's protocol and the variants to compare.

The stage settings are the configuration's own sections (:mod:`cultura.config`), and the evaluation
options the evaluations' own option models (:mod:`cultura.eval.evaluate`), so a misspelled setting is
an error naming its field, exactly as in a configuration file. Example (``experiments/culturepark-smoke.yaml``)::

    name: culturepark-smoke
    paper: culturepark
    cultures: [german, chinese]
    seeds: bundled
    generate: {max_seeds: 16, rounds: 1}
    refine: {judge_check: 0}
    finetune: {max_steps: 8}
    variants: {refine: [generate, verify, diversify]}
    controls: [other-culture]
    methods: [base, prompted, adapter]
    evaluations: {opinions: {}, hofstede: {}}
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cultura.api import load_config
from cultura.config import (
    CulturaConfig,
    CultureKeys,
    DataConfig,
    EngineConfig,
    EvalConfig,
    FinetuneConfig,
    GenerateConfig,
    PaletteConfig,
    RayConfig,
    RefineConfig,
    SamplingConfig,
    TransformersEngineConfig,
    format_validation_error,
)
from cultura.errors import ConfigError, CulturaError
from cultura.eval.evaluate import BenchOptions, HofstedeOptions, ModerationOptions, OpinionsOptions
from cultura.eval.methods import get_methods

REFINE_VARIANTS = ("generate", "verify", "diversify")  # the paper's refinement ablation, in pipeline order
# the configuration sections an experiment file may set, each validated by the config's own model
SECTIONS = ("engine", "sampling", "ray", "data", "generate", "refine", "finetune", "palette", "eval")
# methods the runner trains for: one row per refine variant (and control), not one row in all
TRAINED_METHODS = ("adapter",)


class Strict(BaseModel):
    """Base of the experiment file's own parts: unknown fields are errors."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class Variants(Strict):
    """What the experiment compares: ``refine`` lists the refinement variants, each refined and
    fine-tuned once (``generate``: raw extracted opinions; ``verify``: with the judge's check against
    the seed attitude; ``diversify``: then one representative per k-means cluster)."""

    refine: list[Literal["generate", "verify", "diversify"]] = Field(
        default_factory=lambda: ["diversify"], min_length=1)

    @model_validator(mode="after")
    def _no_repeats(self) -> Variants:
        if len(set(self.refine)) != len(self.refine):
            raise ValueError(f"refine: a variant is listed twice ({', '.join(self.refine)})")
        return self


class Evaluations(Strict):
    """The evaluations to run, each with its own options (``{}`` for the defaults). ``cultures`` /
    ``countries`` left unset take the experiment's cultures (their primary countries for opinions).
    ``bench`` lists benchmarks (``- {benchmark: culturalbench, source: FILE}``), each its own table."""

    opinions: OpinionsOptions | None = None
    hofstede: HofstedeOptions | None = None
    moderation: ModerationOptions | None = None
    bench: list[BenchOptions] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _distinct_benchmarks(self) -> Evaluations:
        names = [table for table, _, _ in self.tables() if table.startswith("bench-")]
        if len(set(names)) != len(names):
            raise ValueError(f"bench: a benchmark is listed twice ({', '.join(names)})")
        return self

    def tables(self) -> list[tuple[str, str, BaseModel]]:
        """(table name, evaluation, options) for each evaluation the file names, in file order; a
        benchmark's table is ``bench-<name>`` (the name of its folder when it is an items folder)."""
        out: list[tuple[str, str, BaseModel]] = []
        for name in type(self).model_fields:
            value = getattr(self, name)
            if value is None:
                continue
            if name == "bench":
                out += [(f"bench-{Path(b.benchmark).name}", name, b) for b in value]
            else:
                out.append((name, name, value))
        return out


class PaletteTraining(Strict):
    """Cultural Palette's continent adapters: a synthesized dataset (``synthesize_palette``), then one
    adapter per continent, used by the Palette and continent methods."""

    prompts: str = Field("bundled", min_length=1, description="'bundled', a PRISM conversations JSONL, or prompts")
    limit: int | None = Field(None, ge=1, description="use the first N prompts")
    samples: int | None = Field(None, ge=1, description="responses per prompt and continent")


class ExperimentSpec(Strict):
    """One experiment: what to run, on which model and data, and which variants to compare."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]{1,64}$")
    description: str = ""
    paper: Literal["culturepark", "palette"] = "culturepark"
    profile: Literal["local", "cluster"] = "local"
    cultures: CultureKeys = Field(min_length=1, description="culture keys or countries dialogues are generated for")
    seeds: str = Field("bundled", min_length=1, description="'bundled', 'globalopinionqa', or a seed / "
                       "GlobalOpinionQA file: dialogues use its train split, opinions score its eval split")
    engine: EngineConfig = Field(default_factory=TransformersEngineConfig)
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    ray: RayConfig = Field(default_factory=RayConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    generate: GenerateConfig = Field(default_factory=GenerateConfig)
    refine: RefineConfig = Field(default_factory=RefineConfig)
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig)
    palette: PaletteConfig = Field(default_factory=PaletteConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    palette_training: PaletteTraining | None = None
    variants: Variants = Field(default_factory=Variants)
    controls: list[Literal["other-culture"]] = Field(default_factory=list, description="other-culture: each "
                                                     "culture answered by another culture's adapter (rotated)")
    methods: list[str] = Field(default_factory=lambda: ["base", "prompted", "adapter"], min_length=1)
    evaluations: Evaluations

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentSpec:
        try:
            get_methods(",".join(self.methods))
        except CulturaError as exc:  # an unknown method: the error lists the known ones
            raise ValueError(f"methods: {exc}") from None
        taken = [f for f in ("cultures", "seeds", "split") if f in self.generate.model_fields_set]
        if taken:
            raise ValueError(f"generate.{taken[0]}: set by the experiment itself (cultures and seeds at the top "
                             "level; dialogues always use the train split, evaluations the held-out one)")
        if not self.evaluations.tables():
            raise ValueError("evaluations: name at least one of opinions, hofstede, moderation, bench")
        if self.controls and "adapter" not in self.methods:
            raise ValueError("controls: the other-culture control needs the 'adapter' method")
        if self.controls and len(self.cultures) < 2:
            raise ValueError("controls: the other-culture control needs two or more cultures")
        if "refine" in self.model_fields_set and "stages" in self.refine.model_fields_set:
            raise ValueError("refine.stages: set by variants.refine (one refinement per variant)")
        return self

    @property
    def trains_adapters(self) -> bool:
        """Whether the protocol generates, refines and fine-tunes (the ``adapter`` method is asked for)."""
        return any(m in TRAINED_METHODS for m in self.methods)

    def config(self) -> CulturaConfig:
        """The cultura configuration the stages run under: the profile's defaults, then every section the
        file sets, with the experiment's cultures and seeds and the train split for generation."""
        sections = {name: getattr(self, name).model_dump(exclude_unset=True) for name in SECTIONS
                    if name in self.model_fields_set}
        generate = sections.setdefault("generate", {})
        generate.update(cultures=list(self.cultures), seeds=self.seeds, split="train")
        return load_config(None, profile=self.profile, **sections)


def load_experiment(source: str | os.PathLike | Mapping[str, Any] | ExperimentSpec,
                    **overrides: Any) -> ExperimentSpec:
    """The experiment from a YAML file, a dict or a spec, with top-level ``overrides`` applied
    (``cultures=[...]``, ``generate={"rounds": 1}``: a section's dict is merged into the file's).

    Raises :class:`~cultura.errors.ConfigError` naming the file and each invalid field.
    """
    import yaml

    if isinstance(source, ExperimentSpec):
        data, where = source.model_dump(exclude_unset=True), "experiment"
    elif isinstance(source, Mapping):
        data, where = dict(source), "experiment"
    else:
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"experiment file not found: {path}")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise ConfigError(f"experiment file {path} is not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"experiment file {path} must hold a mapping at the top level")
        where = str(path)
    for key, value in overrides.items():
        if value is None:
            continue
        if isinstance(value, Mapping) and isinstance(data.get(key), Mapping):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    try:
        return ExperimentSpec.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, where).replace("invalid configuration", "invalid experiment",
                                                                         1)) from None
