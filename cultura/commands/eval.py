"""``cultura eval``: Hofstede alignment, opinion alignment, content moderation and benchmark accuracy, with reports."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from cultura.commands.common import build_config, config_options, echo_table, pop_config_args


def eval_options(default_methods: str, default_report: str) -> Callable:
    """Options every evaluation shares: methods, report folder, sampling, adapters, actors, seed."""
    options = [
        click.option("--methods", default=default_methods, show_default=True,
                     help="Comma-separated methods, or 'all'; `cultura eval methods` lists them."),
        click.option("--report", "report", default=default_report, show_default=True, type=click.Path(file_okay=False),
                     help="Report folder: report.md, results.parquet/.csv, summary.parquet/.csv, PNG plots."),
        click.option("--sample", "sample", type=click.IntRange(1, 1000), default=None,
                     help="Answer by sampling N answers per question (parsed; unreadable ones re-asked and "
                          "counted) instead of option scoring."),
        click.option("--adapters", default=None, type=click.Path(file_okay=False),
                     help="Adapter registry folder (from `cultura finetune`): culture adapters for the "
                          "'adapter' method, continent adapters for the continent agents."),
        click.option("--actors", type=click.IntRange(1, 1024), default=None,
                     help="Engine actors answering the evaluation, started once for the command (default from "
                          "config: 1)."),
        click.option("--seed", type=int, default=None, help="Sampling seed (default from config: 0)."),
    ]

    def decorate(func: Callable) -> Callable:
        for option in reversed(options):
            func = option(func)
        return config_options(func)

    return decorate


def _run(evaluation: str, kwargs: dict[str, Any], **options: Any) -> Any:
    """Build the configuration from the shared flags and run ``evaluation`` through the API verb."""
    from cultura.api import evaluate

    sample = kwargs.pop("sample")
    config = build_config(**pop_config_args(kwargs), **{
        "eval.actors": kwargs.pop("actors"), "eval.seed": kwargs.pop("seed"),
        "eval.mode": "sample" if sample else None, "eval.samples": sample})
    return evaluate(config, evaluation, methods=kwargs.pop("methods"), report=kwargs.pop("report"),
                    adapters=kwargs.pop("adapters"), **options)


def _finish(done: Any) -> None:
    """The closing lines every evaluation prints: rows answered, time, files, the engine actors."""
    click.echo(f"{done.answered} answers ({done.skipped} not applicable, unreadable or failed) in {done.seconds:.1f} s "
               f"({done.answered / done.seconds if done.seconds else 0:.2f} rows/s); {len(done.files)} files in "
               f"{done.report}/ (open {done.report / 'report.md'})")
    click.echo(done.engines)


@click.group(name="eval")
def eval_() -> None:
    """Evaluate methods (base, prompted, adapter, continent agents, Cultural Palette) and write reports.

    Each evaluation runs as a Ray Data job over questions x targets x methods and writes a report
    folder with report.md, raw results (Parquet and CSV), a summary table and PNG plots.
    """


@eval_.command()
def methods() -> None:
    """List the evaluation methods."""
    from cultura.eval.methods import METHODS

    echo_table([{"method": m.name, "description": m.description} for m in METHODS.values()])


@eval_.command()
@click.option("--cultures", default="all", show_default=True,
              help="'all' (the eight CulturePark cultures) or comma-separated culture keys or countries.")
@eval_options("base,prompted", "reports/hofstede")
def hofstede(cultures: str, **kwargs: Any) -> None:
    """Hofstede alignment: answer the 24 VSM 2013 items as each culture; distance to Hofstede's scores."""
    echo_hofstede(_run("hofstede", kwargs, cultures=cultures))


def echo_hofstede(done: Any) -> None:
    """Print a Hofstede evaluation: distances per target and method, means with r, the closing lines."""
    from cultura.eval.metrics import MIN_TARGETS_FOR_R
    from cultura.eval.vsm_eval import MEAN_COLUMNS

    result = done.result
    echo_table(result.summary, ["target", "method", "items", "PDI", "IDV", "MAS", "UAI", "LTO", "IVR", "distance"])
    click.echo("")
    echo_table(result.by_method, MEAN_COLUMNS)
    if len(result.shared_targets) < MIN_TARGETS_FOR_R:
        click.echo(f"r_*: Pearson r per dimension across targets needs {MIN_TARGETS_FOR_R} or more targets "
                   f"(here {len(result.shared_targets)})")
    _finish(done)


@eval_.command()
@click.option("--countries", default="palette18", show_default=True,
              help="A country set (palette18) or comma-separated countries.")
@click.option("--questions", default="bundled", show_default=True,
              help="'bundled' (the seed attitudes: a smoke test), 'globalopinionqa' (after `cultura data get "
                   "globalopinionqa`), or a file: GlobalOpinionQA CSV, or seeds JSONL/CSV.")
@click.option("--sources", default="wvs,pew", show_default=True, help="Bundled seed sets to use.")
@click.option("--split", type=click.Choice(["eval", "train", "all"]), default="eval", show_default=True,
              help="Seeds scored: the held-out eval split (seeds split by a hash of their id), train, or all.")
@click.option("--limit", type=click.IntRange(1, None), default=None, help="Use only the first N questions.")
@click.option("--proxy", type=click.Choice(["culture"]), default=None,
              help="Let a country without data of its own be scored against its CulturePark culture's primary "
                   "country (marked on every such row). Default: own data only.")
@click.option("--allow-overlap", is_flag=True,
              help="Score adapters on seeds they were trained on (refused otherwise); those rows are marked.")
@eval_options("base,prompted,nearest-continent,uniform-blend,gate-mixture", "reports/opinions")
def opinions(countries: str, questions: str, sources: str, split: str, limit: int | None, proxy: str | None,
             allow_overlap: bool, **kwargs: Any) -> None:
    """Opinion alignment per country: 1 - Jensen-Shannon distance and top-option agreement, next to the
    uniform, global-majority and global-mean baselines (leave-one-out), with each method's valid mass."""
    from cultura.eval.baselines import BASELINES
    from cultura.eval.opinion_report import MEAN_COLUMNS

    done = _run("opinions", kwargs, countries=countries, questions=questions,
                sources=[s.strip() for s in sources.split(",") if s.strip()], split=split, limit=limit, proxy=proxy,
                allow_overlap=allow_overlap)
    result = done.result
    click.echo(f"questions: {len(done.inputs.seeds)} of the {split} split; {done.inputs.note}")
    echo_table([s for s in result.summary if s["method"] not in BASELINES],
               ["country", "method", "questions", "similarity", "best_baseline", "baseline_similarity", "lift",
                "alignment_pct", "valid_mass"])
    click.echo("")
    echo_table(result.by_method, MEAN_COLUMNS)
    if result.no_data:
        click.echo(f"no data (not scored): {', '.join(result.no_data)}")
    _finish(done)


@eval_.command()
@click.option("--tasks", default="bundled", show_default=True,
              help="A folder of task files (*.jsonl, *.csv, *.tsv), one file (also a tab-separated .txt), or "
                   "'bundled' (small examples). One file is one task; its name picks the yes/no template.")
@click.option("--text-column", default=None,
              help="Column (CSV/TSV header name, or 1-based number for a file without a header) or JSONL field "
                   "holding the text (default: text).")
@click.option("--label-column", default=None,
              help="Column or field holding the label (default: label); a number, like --text-column, for a "
                   "file without a header.")
@click.option("--positive-label", default=None,
              help="The label value that means positive (e.g. OFFENSE); every other value is negative. Default: "
                   "1/0, true/false, yes/no or the template's names (offensive / not_offensive).")
@click.option("--template", default=None,
              help="Yes/no template for every task (offensive, hate, abusive, vulgar, threat, bias, spam); "
                   "default: the task file name's first word.")
@click.option("--dev-fraction", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.3,
              show_default=True, help="Share of each label's examples in the dev split, on which each task's "
                                      "P(yes) threshold is chosen; the rest is scored.")
@click.option("--cultures", default="all", show_default=True,
              help="'all' (the eight CulturePark cultures) or comma-separated culture keys or countries.")
@click.option("--limit", type=click.IntRange(1, None), default=None, help="Use only the first N examples per task.")
@eval_options("base,prompted", "reports/moderation")
def moderation(tasks: str, text_column: str | None, label_column: str | None, positive_label: str | None,
               template: str | None, dev_fraction: float, cultures: str, limit: int | None, **kwargs: Any) -> None:
    """Content moderation: P(yes) of culture-prompted yes/no templates, thresholded on a dev split; macro-F1
    and ROC AUC per task and culture next to the constant-label baselines."""
    done = _run("moderation", kwargs, tasks=tasks, text_column=text_column, label_column=label_column,
                positive_label=positive_label, template=template, dev_fraction=dev_fraction, cultures=cultures,
                limit=limit)
    result = done.result
    echo_table(result.summary, ["task", "target", "method", "dev", "examples", "threshold", "macro_f1", "accuracy",
                                "roc_auc", "best_baseline", "baseline_macro_f1", "lift"])
    click.echo("")
    echo_table(result.by_method)
    _finish(done)


@eval_.command()
@click.argument("benchmark", metavar="NAME|DIR")
@click.option("--from", "source", default=None, type=click.Path(exists=True),
              help="With NAME: read this local file or folder in the benchmark's published format instead of "
                   "downloading it.")
@click.option("--limit", type=click.IntRange(1, None), default=None,
              help="Use only the first N scored items (a group the limit cuts is kept whole).")
@click.option("--cultures", default="all", show_default=True,
              help="Who answers items that name no culture (CDEval): 'all' (the eight CulturePark cultures) or "
                   "comma-separated culture keys or countries.")
@eval_options("base,prompted", "reports/bench")
def bench(benchmark: str, source: str | None, limit: int | None, cultures: str, **kwargs: Any) -> None:
    """Benchmark accuracy: NAME (a benchmark, read by its loader: `cultura data get --help` names them) or DIR (a
    folder written by `cultura data get`). Items with options and a gold answer are asked as numbered
    multiple-choice questions; accuracy per country and method next to the random and most-common
    baselines, with CulturalBench-Hard's all-rows-right question accuracy. Short answers (BLEnD) are
    greedy replies matched against the accepted answers; orientation items (CDEval) give each culture's
    lean per Hofstede dimension beside Hofstede's score; agreement items (CultureBank) compare P(agree)
    with the share that agreed; scale items (WorldValuesBench) are asked as the participant their
    demographics describe and scored per question by the Wasserstein distance to the participants'
    answers, next to uniform and the other continents' answers. Other kinds are counted, not scored."""
    from cultura.eval.bench import COLUMNS_BY_MEASURE, left_out_line

    done = _run("bench", kwargs, benchmark=benchmark, source=source, limit=limit, cultures=cultures)
    click.echo(left_out_line(done.inputs))
    for measure, columns in COLUMNS_BY_MEASURE.items():
        rows = [s for s in done.result.by_method if s["measure"] == measure]
        if rows or (measure == "accuracy" and not done.result.by_method):
            echo_table(rows, columns)
    _finish(done)
