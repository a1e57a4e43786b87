"""One entry point for every evaluation: ``evaluate(config, "hofstede" | "opinions" | "moderation" | "bench", ...)``.

Each evaluation names its own options (an :class:`EvaluationOptions` model: a typo is an error naming
the field) and a runner. :func:`evaluate` validates the methods and options before any model loads,
builds the method context (adapters from the registry, the Cultural MoE gate) and the command's engine
actors, runs the evaluation's Ray Data job, writes the report folder and frees the actors.
Adding an evaluation is one entry in :data:`EVALUATIONS`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cultura.cards import DATA_LICENCES, PAPERS, data_licence, provenance, upstream_of, write_card
from cultura.data.seed_files import read_seeds
from cultura.data.seeds import select_seeds
from cultura.errors import ConfigError, UnknownNameError
from cultura.eval.bench import BenchInputs, read_benchmark, run_bench, select_items
from cultura.eval.context import build_context
from cultura.eval.countries import resolve_countries
from cultura.eval.methods import Method, MethodContext, get_methods, resolve_targets
from cultura.eval.moderation import run_moderation
from cultura.eval.moderation_tasks import TaskFormat, column_option, load_tasks
from cultura.eval.opinions import run_opinions
from cultura.eval.runner import EnginePool
from cultura.eval.vsm_eval import run_hofstede


class EvaluationOptions(BaseModel):
    """Base of each evaluation's options: unknown fields are errors."""

    model_config = ConfigDict(extra="forbid")


class HofstedeOptions(EvaluationOptions):
    """``hofstede``: the 24 VSM 2013 items answered as each culture, indices compared with Hofstede's."""

    cultures: str | list[str] = Field("all", description="'all' (the eight CulturePark cultures) or culture keys "
                                      "or countries")


class OpinionsOptions(EvaluationOptions):
    """``opinions``: per-country answer distributions on held-out survey questions."""

    countries: str | list[str] = Field("palette18", description="a country set (palette18) or countries")
    questions: str = Field("bundled", min_length=1, description="'bundled', 'globalopinionqa' or a seed / "
                           "GlobalOpinionQA file")
    sources: list[str] = Field(default_factory=lambda: ["wvs", "pew"], description="bundled seed sets")
    split: Literal["eval", "train", "all"] = Field("eval", description="seeds scored (eval: held out)")
    limit: int | None = Field(None, ge=1, description="only the first N questions")
    proxy: Literal["culture"] | None = Field(None, description="let a country without data borrow its "
                                             "culture's primary country (marked)")
    allow_overlap: bool = Field(False, description="score adapters on seeds they were trained on (marked)")


class ModerationOptions(EvaluationOptions):
    """``moderation``: P(yes) of culture-prompted yes/no templates, thresholded on a dev split."""

    tasks: str = Field("bundled", min_length=1, description="a folder of task files, one file, or 'bundled'")
    text_column: str | int | None = Field(None, description="column or field of the text (a 1-based number for "
                                          "a file without a header); default: text")
    label_column: str | int | None = Field(None, description="column or field of the label; default: label")
    positive_label: str | None = Field(None, description="the label value meaning positive")
    template: str | None = Field(None, description="yes/no template for every task; default: the file name's "
                                 "first word")
    dev_fraction: float = Field(0.3, gt=0, lt=1, description="share of each label's examples in the dev split")
    cultures: str | list[str] = Field("all", description="'all' or culture keys or countries")
    limit: int | None = Field(None, ge=1, description="only the first N examples per task")


class BenchOptions(EvaluationOptions):
    """``bench``: accuracy on a benchmark's items with options and a gold answer, next to baselines."""

    benchmark: str = Field(min_length=1, description="a benchmark name (read by its loader) or a folder written "
                           "by `cultura data get`")
    source: str | None = Field(None, min_length=1, description="with a name: a local file or folder in the "
                               "published format (default: download)")
    limit: int | None = Field(None, ge=1, description="only the first N scored items (a group kept whole)")
    cultures: str | list[str] = Field("all", description="who answers the items that name no culture (CDEval's "
                                      "orientation items): 'all' (the eight CulturePark cultures) or culture keys "
                                      "or countries")


@dataclass(frozen=True)
class Evaluation:
    """One kind of evaluation: its options, default methods, and how to run it."""

    name: str
    description: str
    options: type[EvaluationOptions]
    default_methods: str
    prepare: Callable[[Any, EvaluationOptions], Any]  # inputs loaded and checked before any model loads
    run: Callable[[Any, Any, Sequence[Method], MethodContext, Path, Any], Any]  # (config, inputs, methods, ctx, report, options)
    data: Callable[[Any, Any, Any], dict[str, Any]]  # (config, inputs, options) -> what the report's card names


@dataclass
class EvaluationSummary:
    """What :func:`evaluate` returns: the evaluation's result (its report object: ``summary``,
    ``by_method``, ``rows``, ``files``), where the report went, the rows answered and the time taken."""

    evaluation: str
    report: Path
    result: Any
    methods: list[str]
    inputs: Any = None
    seconds: float = 0.0
    engines: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def answered(self) -> int:
        """Rows the model answered."""
        return sum(1 for r in self.result.rows if r["status"] == "ok")

    @property
    def skipped(self) -> int:
        """Rows not applicable, unreadable or failed (each with its reason in the results)."""
        return len(self.result.rows) - self.answered

    @property
    def files(self) -> list[Path]:
        """The report folder's files."""
        return list(self.result.files)


@dataclass(frozen=True)
class OpinionInputs:
    """The countries and questions an opinion evaluation scores, and what the seed source held."""

    countries: list[str]
    seeds: list[Any]
    note: str
    split: str


def _prepare_hofstede(config: Any, options: HofstedeOptions) -> Any:
    return resolve_targets(options.cultures)


def _run_hofstede(config: Any, targets: Any, methods: Sequence[Method], ctx: MethodContext, report: Path,
                  options: HofstedeOptions) -> Any:
    return run_hofstede(config, targets, methods, ctx, report)


def _hofstede_data(config: Any, targets: Any, options: HofstedeOptions) -> dict[str, Any]:
    return {"data": "the 24 items of Hofstede's VSM 2013 and the published country scores",
            "targets": [str(getattr(t, "key", t)) for t in targets], "data_licence": DATA_LICENCES["bundled"]}


def _prepare_opinions(config: Any, options: OpinionsOptions) -> OpinionInputs:
    countries = resolve_countries(options.countries)
    loaded = read_seeds(options.questions, sources=options.sources)
    split = None if options.split == "all" else options.split
    seeds = select_seeds(loaded.seeds, split, config.data.eval_fraction)[: options.limit]
    return OpinionInputs(countries, seeds, loaded.summary(), options.split)


def _run_opinions(config: Any, inputs: OpinionInputs, methods: Sequence[Method], ctx: MethodContext,
                  report: Path, options: OpinionsOptions) -> Any:
    return run_opinions(config, inputs.countries, inputs.seeds, methods, ctx, report, proxy=options.proxy,
                        allow_overlap=options.allow_overlap, data_note=inputs.note)


def _opinions_data(config: Any, inputs: OpinionInputs, options: OpinionsOptions) -> dict[str, Any]:
    ids = [s.id for s in inputs.seeds]
    return {"seeds": options.questions, "split": inputs.split, "eval_fraction": config.data.eval_fraction,
            "countries": list(inputs.countries), "seed_ids": ids, "data_licence": data_licence(options.questions, ids)}


@dataclass(frozen=True)
class ModerationInputs:
    """The moderation tasks (examples per task) and the cultures answering them."""

    tasks: Any
    targets: Any


def _prepare_moderation(config: Any, options: ModerationOptions) -> ModerationInputs:
    fmt = TaskFormat(text_column=_column(options.text_column) or "text",
                     label_column=_column(options.label_column) or "label",
                     positive_label=options.positive_label, template=options.template)
    return ModerationInputs(load_tasks(options.tasks, options.limit, fmt), resolve_targets(options.cultures))


def _column(value: str | int | None) -> str | int | None:
    """A column named by header / field name, or by a 1-based number (an int, or digits in a string)."""
    return column_option(str(value)) if value is not None else None


def _run_moderation(config: Any, inputs: ModerationInputs, methods: Sequence[Method], ctx: MethodContext,
                    report: Path, options: ModerationOptions) -> Any:
    return run_moderation(config, inputs.tasks, inputs.targets, methods, ctx, report, options.dev_fraction)


def _moderation_data(config: Any, inputs: ModerationInputs, options: ModerationOptions) -> dict[str, Any]:
    bundled = options.tasks == "bundled"
    return {"data": "cultura's bundled moderation examples" if bundled else str(options.tasks),
            "examples": {task: len(rows) for task, rows in inputs.tasks.items()},
            "data_licence": DATA_LICENCES["bundled"] if bundled else "as the task files' source states"}


def _prepare_bench(config: Any, options: BenchOptions) -> BenchInputs:
    items, source, notes = read_benchmark(options.benchmark, options.source)
    chosen, left_out = select_items(items, options.limit, resolve_targets(options.cultures))
    name = items[0].benchmark if items else options.benchmark
    return BenchInputs(name, chosen, left_out, source, len(items), notes)


def _run_bench(config: Any, inputs: BenchInputs, methods: Sequence[Method], ctx: MethodContext, report: Path,
               options: BenchOptions) -> Any:
    return run_bench(config, inputs, methods, ctx, report)


def _bench_data(config: Any, inputs: BenchInputs, options: BenchOptions) -> dict[str, Any]:
    items = list({item.id: item for item, _ in inputs.items}.values())  # an orientation item once per culture
    return {"benchmark": inputs.benchmark, "source": inputs.source, "split": sorted({i.split for i in items}),
            "item_ids": [i.id for i in items], "data_licence": sorted({i.licence for i in items}),
            **({"benchmark_paper": PAPERS[inputs.benchmark].reference} if inputs.benchmark in PAPERS else {})}


EVALUATIONS: dict[str, Evaluation] = {
    e.name: e for e in [
        Evaluation("hofstede", "VSM 2013 answers -> Hofstede indices, distance to the published scores",
                   HofstedeOptions, "base,prompted", _prepare_hofstede, _run_hofstede, _hofstede_data),
        Evaluation("opinions", "answer distributions per country on held-out survey questions, next to baselines",
                   OpinionsOptions, "base,prompted,nearest-continent,uniform-blend,gate-mixture", _prepare_opinions,
                   _run_opinions, _opinions_data),
        Evaluation("moderation", "content moderation macro-F1 and ROC AUC per task and culture",
                   ModerationOptions, "base,prompted", _prepare_moderation, _run_moderation, _moderation_data),
        Evaluation("bench", "benchmark accuracy (items with options and a gold answer) next to trivial baselines",
                   BenchOptions, "base,prompted", _prepare_bench, _run_bench, _bench_data),
    ]
}


def get_evaluation(name: str) -> Evaluation:
    """The evaluation called ``name``; UnknownNameError listing the others."""
    if name not in EVALUATIONS:
        raise UnknownNameError("evaluation", name, list(EVALUATIONS))
    return EVALUATIONS[name]


def evaluation_options(evaluation: Evaluation, options: dict[str, Any]) -> EvaluationOptions:
    """``options`` validated against the evaluation's option model (None values take the default)."""
    given = {k: v for k, v in options.items() if v is not None}
    try:
        return evaluation.options.model_validate(given)
    except ValidationError as err:
        lines = [f"invalid options for the {evaluation.name} evaluation:"]
        for e in err.errors():
            where = ".".join(str(p) for p in e["loc"]) or "(root)"
            msg = "unknown option" if e["type"] == "extra_forbidden" else e["msg"]
            lines.append(f"  {where}: {msg}")
        known = ", ".join(evaluation.options.model_fields)
        raise ConfigError("\n".join(lines) + f"\n  (options of {evaluation.name}: {known})") from None


def evaluate(config: Any, evaluation: str, *, methods: str | Sequence[str] | None = None,
             report: str | Path | None = None, adapters: str | None = None,
             **options: Any) -> EvaluationSummary:
    """Run one evaluation and write its report folder; returns an :class:`EvaluationSummary`.

    ``evaluation`` is a name of :data:`EVALUATIONS`; ``methods`` a comma-separated string or a list of
    method names or ``"all"`` (default: the evaluation's own); ``report`` the report folder (default
    ``reports/<evaluation>``); ``adapters`` an adapter registry folder (culture adapters for the
    ``adapter`` method, continent adapters for the continent agents). ``options`` are the evaluation's
    own (:class:`HofstedeOptions`, :class:`OpinionsOptions`, :class:`ModerationOptions`,
    :class:`BenchOptions`). Everything is
    checked before any model loads; the engine actors started here are stopped before returning.
    """
    kind = get_evaluation(evaluation)
    chosen = get_methods(methods if isinstance(methods, str) else ",".join(methods) if methods else
                         kind.default_methods)
    checked = evaluation_options(kind, options)
    inputs = kind.prepare(config, checked)
    folder = Path(report) if report is not None else Path("reports") / evaluation
    started = time.perf_counter()
    ctx = build_context(config, adapters)
    with EnginePool(config, ctx.adapters) as pool:
        ctx.engines = pool
        result = kind.run(config, inputs, chosen, ctx, folder, checked)
    result.files.append(write_report_card(folder, kind, config, chosen, checked, kind.data(config, inputs, checked),
                                          adapters))
    return EvaluationSummary(evaluation, folder, result, [m.name for m in chosen], inputs,
                             time.perf_counter() - started, pool.summary())


def write_report_card(folder: Path, kind: Evaluation, config: Any, methods: Sequence[Method],
                      options: EvaluationOptions, data: dict[str, Any], adapters: str | None) -> Path:
    """The report folder's card: the evaluation and its options, the methods and the papers they follow,
    the model, engine and dtype, the adapters, and the data the numbers rest on with its licence."""
    papers = sorted({m.paper for m in methods if m.paper})
    fields = {"stage": "evaluate", "evaluation": kind.name, "methods": [m.name for m in methods],
              **provenance(config), "papers": [f"{PAPERS[p].name} {PAPERS[p].reference}" for p in papers],
              **data, "adapters": adapters, "adapters_trained_on": upstream_of(adapters) if adapters else None,
              "options": options.model_dump(mode="json"), "config": {"eval": config.eval.model_dump(mode="json")}}
    body = (f"{kind.description}. Methods: {', '.join(m.name for m in methods)}. The numbers are in `report.md`, "
            "every answer in `results.parquet` (and `.csv`).")
    return write_card(folder, f"cultura evaluation: {kind.name}", fields, body)
