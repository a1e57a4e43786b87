"""The experiment's stages, each keyed by a hash of the settings that decide its output.

A stage's key hashes its own settings and the keys of the stages it reads, so a changed setting changes
the key of its stage and of everything downstream and nothing else; its folder is
``OUT/stages/<name>-<key>``. A stage is finished when its folder holds the done marker, written last
(:func:`mark_done`): a rerun skips finished stages, and an added variant adds only its own stages.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cultura.config import CulturaConfig
from cultura.data.cultures import get_culture
from cultura.experiments.spec import ExperimentSpec

DONE = ".done.json"
KEY_LENGTH = 12
# the refinement ablation's row names, as the CulturePark paper's table writes them
VARIANT_LABELS = {"generate": "Generate", "verify": "+Verify", "diversify": "+Diversify"}
# methods answered by the continent agents (their adapters come from the Palette training, when asked for)
CONTINENT_METHODS = ("home-continent", "nearest-continent", "uniform-blend", "gate-mixture", "palette")


@dataclass(frozen=True)
class Stage:
    """One stage: ``kind`` says which verb runs it, ``settings`` what decides its output, ``needs`` the
    stages it reads (in order), ``params`` what the runner passes on (variant, evaluation, row labels)."""

    name: str
    kind: str  # generate | refine | finetune | palette-data | palette-adapters | eval
    settings: dict[str, Any]
    needs: tuple[Stage, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """The hash of the settings and of every upstream stage's key."""
        text = json.dumps({"kind": self.kind, "settings": self.settings, "needs": [s.key for s in self.needs]},
                          sort_keys=True, default=str)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:KEY_LENGTH]

    def folder(self, root: str | Path) -> Path:
        """``root/stages/<name>-<key>``."""
        return Path(root) / "stages" / f"{self.name}-{self.key}"


def is_done(folder: Path) -> bool:
    """Whether the stage in ``folder`` finished (its done marker is there)."""
    return (folder / DONE).is_file()


def mark_done(folder: Path, stage: Stage, seconds: float) -> None:
    """Write the done marker, last: the stage's settings, key and time taken."""
    record = {"stage": stage.name, "key": stage.key, "settings": stage.settings, "seconds": round(seconds, 1),
              "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    tmp = folder / f"{DONE}.tmp"
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    tmp.replace(folder / DONE)


def variant_label(method: str, variant: str) -> str:
    """A table row's name for a trained method's variant: ``adapter (+Verify)``."""
    return f"{method} ({VARIANT_LABELS[variant]})"


def plan_stages(spec: ExperimentSpec, config: CulturaConfig) -> list[Stage]:
    """Every stage of the experiment, each after the stages it reads."""
    dump = config.model_dump(mode="json")
    model = {k: dump["engine"][k] for k in ("kind", "model", "dtype", "trust_remote_code")}
    stages: list[Stage] = []
    adapters: dict[str, Stage] = {}
    if spec.trains_adapters:
        generate = Stage("generate", "generate", {"engine": dump["engine"], "sampling": dump["sampling"],
                                                  "data": dump["data"], "generate": dump["generate"]})
        stages.append(generate)
        for variant in spec.variants.refine:
            refine = Stage(f"refine-{variant}", "refine", {"refine": {**dump["refine"], "stages": variant},
                                                            "engine": model}, (generate,), {"variant": variant})
            finetune = Stage(f"finetune-{variant}", "finetune", {"finetune": dump["finetune"], "engine": model},
                             (refine,), {"variant": variant})
            stages += [refine, finetune]
            adapters[variant] = finetune
    continent: tuple[Stage, ...] = ()
    if spec.palette_training is not None:
        training = spec.palette_training.model_dump()
        data = Stage("palette-data", "palette-data", {"palette": dump["palette"], "engine": model,
                                                      "sampling": dump["sampling"], "prompts": training})
        trained = Stage("palette-adapters", "palette-adapters", {"finetune": dump["finetune"], "engine": model},
                        (data,))
        stages += [data, trained]
        continent = (trained,)
    for table, evaluation, options in spec.evaluations.tables():
        stages += _eval_stages(spec, dump, table, evaluation, _options(spec, evaluation, options), adapters,
                               continent)
    return stages


def _options(spec: ExperimentSpec, evaluation: str, options: Any) -> dict[str, Any]:
    """An evaluation's options with the experiment's cultures where the file leaves them unset."""
    values = options.model_dump(mode="json")
    if evaluation == "opinions" and "countries" not in options.model_fields_set:
        values["countries"] = list(dict.fromkeys(get_culture(c).primary_country for c in spec.cultures))
    elif evaluation in ("hofstede", "moderation", "bench") and "cultures" not in options.model_fields_set:
        values["cultures"] = list(spec.cultures)
    if evaluation == "opinions" and "questions" not in options.model_fields_set:
        values["questions"] = spec.seeds
    return values


def _eval_stages(spec: ExperimentSpec, dump: dict[str, Any], table: str, evaluation: str, options: dict[str, Any],
                 adapters: dict[str, Stage], continent: Sequence[Stage]) -> list[Stage]:
    """One table's stages (an evaluation, or one benchmark of ``bench``): the untrained methods together,
    then each variant's adapter and control."""
    common = {"evaluation": evaluation, "options": options, "eval": dump["eval"], "engine": dump["engine"],
              "data": dump["data"]}
    named = {"evaluation": evaluation, "table": table}
    untrained = [m for m in spec.methods if m not in ("adapter",)]
    stages = []
    if untrained:
        settings = {**common, "methods": untrained}
        if any(m in CONTINENT_METHODS for m in untrained):
            settings.update(palette=dump["palette"], sampling=dump["sampling"])
        stages.append(Stage(f"eval-{table}-methods", "eval", settings, tuple(continent),
                            {**named, "methods": untrained, "labels": {}}))
    for variant, trained in adapters.items():
        own = variant_label("adapter", variant)
        stages.append(Stage(f"eval-{table}-adapter-{variant}", "eval", {**common, "methods": ["adapter"]},
                            (trained,), {**named, "methods": ["adapter"], "labels": {"adapter": own},
                                         "variant": variant}))
        if "other-culture" in spec.controls:
            other = f"other-culture {own}"
            stages.append(Stage(f"eval-{table}-other-culture-{variant}", "eval",
                                {**common, "methods": ["adapter"], "rotate": list(spec.cultures)}, (trained,),
                                {**named, "methods": ["adapter"], "labels": {"adapter": other},
                                 "variant": variant, "rotate": True, "control_of": own}))
    return stages
