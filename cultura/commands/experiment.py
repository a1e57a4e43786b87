"""``cultura experiment``: run a paper's protocol from one experiment file, or show its plan."""

from __future__ import annotations

import click

from cultura.commands.common import echo_table


@click.group()
def experiment() -> None:
    """Experiments: one YAML file names the model, seeds, cultures, stage settings, variants and
    evaluations; one folder holds every stage's output and one report with intervals."""


@experiment.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="The experiment folder: stages/<stage>-<key>/, report.md, results.parquet, plots, README.md "
                   "(the card). Rerunning into it skips every finished stage.")
def run(file: str, out: str) -> None:
    """Run the experiment FILE: generate -> refine (each variant) -> fine-tune -> evaluate, on Ray."""
    from cultura.experiments.run import run_experiment

    summary = run_experiment(file, out, echo=click.echo)
    click.echo(f"\n{summary.ran} stage(s) run, {len(summary.stages) - summary.ran} done before; "
               f"{summary.seconds:.0f} s")
    echo_table(headline_rows(summary.table))
    click.echo(f"report: {summary.out / 'report.md'}")


def headline_rows(table: list[dict]) -> list[dict]:
    """Each table row's headline figure with its interval and how it compares with the base model."""
    from cultura.experiments.report import LAYOUTS

    rows = []
    for row in table:
        figure = LAYOUTS[row["evaluation"]].headline
        mean, low, high = row.get(figure), row.get(f"{figure}_low"), row.get(f"{figure}_high")
        shown = "-" if mean is None else f"{mean:.3f}" + ("" if low is None else f" [{low:.3f}, {high:.3f}]")
        rows.append({"evaluation": row["evaluation"], "row": row["row"], "figure": figure, "mean [95% interval]": shown,
                     "vs base": row.get("vs_base_reads") or "-", "vs control": row.get("vs_control_reads") or "-"})
    return rows


@experiment.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--out", default=None, type=click.Path(file_okay=False),
              help="An experiment folder: mark the stages already done there.")
def plan(file: str, out: str | None) -> None:
    """Validate FILE and list its stages with their keys (nothing runs, no model loads)."""
    from pathlib import Path

    from cultura.experiments.plan import is_done, plan_stages
    from cultura.experiments.spec import load_experiment

    spec = load_experiment(file)
    stages = plan_stages(spec, spec.config())
    echo_table([{"stage": s.name, "key": s.key, "reads": ", ".join(n.name for n in s.needs) or "-",
                 "done": ("yes" if is_done(s.folder(Path(out))) else "no") if out else "-"} for s in stages])
