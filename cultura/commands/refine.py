"""``cultura refine``: generated dialogues -> verified, diversified fine-tuning sets per culture."""

from __future__ import annotations

import click

from cultura.commands.common import build_config, config_options, echo_table, pop_config_args


def _k(ctx: click.Context, param: click.Parameter, value: str | None) -> int | str | None:
    if value is None or value == "auto":
        return value
    try:
        k = int(value)
    except ValueError:
        raise click.BadParameter(f"must be a whole number >= 1 or 'auto', got {value!r}") from None
    if k < 1:
        raise click.BadParameter(f"must be >= 1 or 'auto', got {k}")
    return k


@click.command()
@click.option("--in", "source", required=True,
              help="A generation run: the --out folder of `cultura generate` (manifest.json, dialogues/); "
                   "a local folder or a URI (s3://, gs://, file://).")
@click.option("--out", required=True,
              help="Output folder: opinions.parquet, extractions.parquet, sft/<culture>.jsonl and .parquet, "
                   "summary.json; a local folder or a URI (s3://, gs://, file://).")
@click.option("--stages", type=click.Choice(["generate", "verify", "diversify"]), default=None,
              help="How far to refine (the paper's ablation): generate = extracted opinions; verify = only "
                   "those that entail the seed attitude (contradicting ones rewritten and re-verified); "
                   "diversify = one per k-means cluster (default).")
@click.option("--k", callback=_k, default=None,
              help="Clusters per culture, or 'auto' (default): one per --opinions-per-cluster opinions, "
                   "at least 2.")
@click.option("--opinions-per-cluster", type=click.IntRange(min=1), default=None,
              help="For --k auto: opinions per cluster (default 50; the paper: 10-20 clusters for 500-1000).")
@click.option("--representative", type=click.Choice(["centroid", "longest"]), default=None,
              help="Opinion kept per cluster: nearest the centroid (default) or the longest (as in the paper).")
@click.option("--embedder", default=None,
              help="Sentence-transformers model (name or folder); default: the bundled all-MiniLM-L6-v2.")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Ray Data actors of the LLM stages (default 1).")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Rows per LLM batch (default 16).")
@click.option("--max-tokens", type=click.IntRange(min=8), default=None,
              help="Tokens of one extraction answer (default 160).")
@click.option("--overwrite", is_flag=True, help="Replace an earlier refinement in --out.")
@config_options
def refine(source: str, out: str, overwrite: bool, **kwargs) -> None:
    """Extract, verify and diversify opinions from generated dialogues; write one SFT set per culture.

    Prints how many items survived each stage, per culture. Empty results are reported, not errors.
    """
    from cultura.pipelines.refine.run import refine as run_refine

    config_args = pop_config_args(kwargs)
    overrides = {
        "refine.stages": kwargs["stages"], "refine.k": kwargs["k"],
        "refine.opinions_per_cluster": kwargs["opinions_per_cluster"],
        "refine.representative": kwargs["representative"], "refine.embedder": kwargs["embedder"],
        "refine.workers": kwargs["workers"], "refine.batch_size": kwargs["batch_size"],
        "refine.extract_max_tokens": kwargs["max_tokens"],
    }
    config = build_config(**config_args, **overrides)
    summary = run_refine(config, source, out, overwrite=overwrite, progress=True)
    echo_table(summary.table(), ["culture", "dialogues", "extracted", "verified", "diversified", "sft"])
    totals = summary.totals()
    if summary.stages != "generate":
        click.echo(f"verification      {totals.get('entail', 0)} entail, {totals.get('contradict', 0)} contradict "
                   f"({totals.get('rewritten', 0)} rewritten, {totals.get('rewrite_kept', 0)} rewrites kept), "
                   f"{totals.get('irrelevant', 0)} irrelevant; {totals.get('unrecognised', 0)} unreadable labels "
                   f"counted as irrelevant; {totals.get('no_attitude', 0)} without a seed attitude")
    click.echo("seconds           " + ", ".join(f"{k} {v:.1f}" for k, v in summary.seconds.items()))
    for note in summary.notes:
        click.echo(f"note              {note}")
    click.echo(f"output            {summary.out}/opinions.parquet; SFT sets in {summary.out}/sft "
               f"({len(summary.sft_files) // 2} cultures); {summary.out}/summary.json")
