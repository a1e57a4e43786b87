"""Running an experiment: every planned stage through the stage verbs of :mod:`cultura.api`, in order.

Each stage writes into its own folder (:meth:`~cultura.experiments.plan.Stage.folder`) and marks it done
last, so a rerun of the same file skips what finished and a changed setting reruns only its stage and
those downstream. The table, ``results.parquet``, the plots and the card are written at the end from
the stage folders (:mod:`cultura.experiments.report`), so a resumed run reports exactly as a fresh one.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cultura import api
from cultura.config import CulturaConfig
from cultura.errors import CulturaError
from cultura.experiments.plan import Stage, is_done, mark_done, plan_stages
from cultura.experiments.report import METHOD_ROWS, write_experiment_report
from cultura.experiments.spec import ExperimentSpec, load_experiment
from cultura.registry import load_registry, register_adapter

SPEC_FILE = "experiment.yaml"  # the validated experiment, as it ran, in the output folder


@dataclass
class StageRun:
    """What happened to one stage in this run: ``ran`` or ``skipped`` (done before), and its time."""

    stage: Stage
    folder: Path
    status: str
    seconds: float = 0.0


@dataclass
class ExperimentSummary:
    """What :func:`run_experiment` returns: the stages as they ran, the report's files and its table."""

    name: str
    out: Path
    stages: list[StageRun] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    table: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ran(self) -> int:
        """Stages run now (the others were done before)."""
        return sum(1 for s in self.stages if s.status == "ran")


def run_experiment(source: str | os.PathLike | Mapping[str, Any] | ExperimentSpec, out: str | os.PathLike, *,
                   echo: Callable[[str], None] | None = None, **overrides: Any) -> ExperimentSummary:
    """Run an experiment: every stage on Ray as its command does, then one report.

    Args:
        source: the experiment (a YAML file, a dict, or an :class:`~cultura.experiments.spec.ExperimentSpec`).
        out: the experiment folder; a stage finished there by an earlier run (same settings, same
            upstream) is skipped. A folder holding something else is refused.
        echo: called with a line as each stage starts and ends.
        **overrides: top-level fields of the file replaced (``cultures=[...]``; a section's dict is
            merged: ``finetune={"max_steps": 4}``).

    Writes ``out/report.md`` (one table per evaluation), ``out/results.parquet``, one plot per
    evaluation, ``out/README.md`` (the card) and ``out/experiment.yaml``; returns an
    :class:`ExperimentSummary`. Example::

        summary = cultura.run_experiment("experiments/culturepark-smoke.yaml", "runs/smoke")
        print(summary.table)
    """
    spec = load_experiment(source, **overrides)
    config = spec.config()
    root = Path(out)
    _claim(root, spec)
    stages = plan_stages(spec, config)
    summary = ExperimentSummary(spec.name, root)
    started = time.perf_counter()
    for number, stage in enumerate(stages, 1):
        folder = stage.folder(root)
        if is_done(folder):
            summary.stages.append(StageRun(stage, folder, "skipped"))
            _say(echo, f"[{number}/{len(stages)}] {stage.name}: done before ({folder.name})")
            continue
        _say(echo, f"[{number}/{len(stages)}] {stage.name} ...")
        begun = time.perf_counter()
        RUNNERS[stage.kind](stage, folder, config, root)
        seconds = time.perf_counter() - begun
        mark_done(folder, stage, seconds)
        summary.stages.append(StageRun(stage, folder, "ran", seconds))
        _say(echo, f"[{number}/{len(stages)}] {stage.name}: {seconds:.0f} s")
    summary.files, summary.table = write_experiment_report(root, spec, config, summary.stages)
    summary.seconds = time.perf_counter() - started
    return summary


def _say(echo: Callable[[str], None] | None, line: str) -> None:
    if echo is not None:
        echo(line)


def _claim(root: Path, spec: ExperimentSpec) -> None:
    """Record the experiment in ``root``; refuse a folder that holds another experiment (by name)."""
    import yaml

    record = root / SPEC_FILE
    if record.is_file():
        earlier = yaml.safe_load(record.read_text(encoding="utf-8")) or {}
        if earlier.get("name") != spec.name:
            raise CulturaError(f"{root} holds experiment {earlier.get('name')!r}, not {spec.name!r}: "
                               "use another --out folder")
    elif root.exists() and any(root.iterdir()):
        raise CulturaError(f"{root} is not empty and holds no experiment: use another --out folder")
    root.mkdir(parents=True, exist_ok=True)
    tmp = record.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(spec.model_dump(mode="json", exclude_unset=True), sort_keys=False),
                   encoding="utf-8")
    tmp.replace(record)


def _fresh(folder: Path) -> Path:
    """``folder``, emptied of what an interrupted earlier try left there."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    return folder


def _run_generate(stage: Stage, folder: Path, config: CulturaConfig, root: Path) -> None:
    resume = (folder / "manifest.json").is_file()  # an interrupted generation goes on where it stopped
    result = api.generate(config, out=folder, resume=resume, overwrite=not resume)
    if result.failures:
        raise CulturaError(f"stage {stage.name}: {len(result.failures)} dialogue(s) failed (first: "
                           f"{result.failures[0][1]}); run the experiment again to retry them")


def _run_refine(stage: Stage, folder: Path, config: CulturaConfig, root: Path) -> None:
    [generated] = stage.needs
    api.refine(config, source=generated.folder(root), out=_fresh(folder), stages=stage.params["variant"])


def _run_finetune(stage: Stage, folder: Path, config: CulturaConfig, root: Path) -> None:
    [refined] = stage.needs
    result = api.finetune(config, data=refined.folder(root), out=_fresh(folder), per="culture")
    _no_failures(stage, result)


def _run_palette_data(stage: Stage, folder: Path, config: CulturaConfig, root: Path) -> None:
    prompts = stage.settings["prompts"]
    api.synthesize_palette(config, out=_fresh(folder), prompts=prompts["prompts"], limit=prompts["limit"],
                           samples=prompts["samples"])


def _run_palette_adapters(stage: Stage, folder: Path, config: CulturaConfig, root: Path) -> None:
    [data] = stage.needs
    result = api.finetune(config, data=data.folder(root), out=_fresh(folder), per="continent")
    _no_failures(stage, result)


def _no_failures(stage: Stage, result: Any) -> None:
    if result.failures:
        names = ", ".join(f"{name} ({error})" for name, error in result.failures)
        raise CulturaError(f"stage {stage.name}: training failed for {names}; run the experiment again to retry")


def _run_eval(stage: Stage, folder: Path, config: CulturaConfig, root: Path) -> None:
    report = _fresh(folder)
    adapters = None
    if stage.needs:
        adapters = str(stage.needs[0].folder(root))
        if stage.params.get("rotate"):
            adapters = str(rotated_registry(Path(adapters), stage.settings["rotate"], report / "rotated-adapters"))
    result = api.evaluate(config, stage.params["evaluation"], methods=stage.params["methods"], report=report,
                          adapters=adapters, **stage.settings["options"])
    (report / METHOD_ROWS).write_text(json.dumps(result.result.by_method, indent=1, default=str) + "\n",
                                      encoding="utf-8")


def rotated_registry(source: Path, cultures: list[str], out: Path) -> Path:
    """An adapter registry in ``out`` where each culture of ``cultures`` is answered by the next one's
    adapter (the last by the first's): the other-culture control. Nothing is copied; entries point at
    the trained adapters."""
    entries = {e.target: e for e in load_registry(source).values() if e.kind == "culture"}
    trained = [c for c in cultures if c in entries]
    if len(trained) < 2:
        raise CulturaError(f"the other-culture control needs adapters for two or more cultures in {source}, "
                           f"found {', '.join(trained) or 'none'}")
    out.mkdir(parents=True, exist_ok=True)
    for culture, other in zip(trained, trained[1:] + trained[:1]):
        entry = entries[other]
        register_adapter(out, dataclasses.replace(entry, name=f"{culture}-as-{other}", target=culture))
    return out


RUNNERS: dict[str, Callable[[Stage, Path, CulturaConfig, Path], None]] = {
    "generate": _run_generate,
    "refine": _run_refine,
    "finetune": _run_finetune,
    "palette-data": _run_palette_data,
    "palette-adapters": _run_palette_adapters,
    "eval": _run_eval,
}
