"""``cultura refine``: generated dialogues -> verified, diversified fine-tuning sets per culture."""

from __future__ import annotations

from typing import Any

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
@click.option("--preset", type=click.Choice(["paper", "culture"]), default=None,
              help="Clustering preset. paper (default, CulturePark): k-means per culture and seed question, "
                   "k = 10 per question (15 above 500 verified opinions per culture, 20 above 750), the longest "
                   "member of each cluster kept, so every seed question with a verified opinion keeps one. "
                   "culture: one k-means per culture, the member nearest the centroid kept.")
@click.option("--cluster-by", type=click.Choice(["seed", "culture"]), default=None,
              help="Group opinions per (culture, seed question) or per culture before k-means (default: the "
                   "preset's).")
@click.option("--k", callback=_k, default=None,
              help="Clusters per group, or 'auto' (default): per seed question as --preset paper says; per "
                   "culture one per --opinions-per-cluster opinions, at least 2.")
@click.option("--opinions-per-cluster", type=click.IntRange(min=1), default=None,
              help="For --cluster-by culture and --k auto: opinions per cluster (default 50).")
@click.option("--representative", type=click.Choice(["centroid", "longest"]), default=None,
              help="Opinion kept per cluster: the longest (paper) or the one nearest the centroid (default: the "
                   "preset's).")
@click.option("--judge-check", type=click.IntRange(min=0), default=None,
              help="Labelled items built from the run's seeds on which the verification judge is scored next to "
                   "the majority-label baseline (default 60; 0: no check).")
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
    from cultura.api import refine as run_refine

    config_args = pop_config_args(kwargs)
    overrides = {
        "refine.stages": kwargs["stages"], "refine.preset": kwargs["preset"], "refine.cluster_by": kwargs["cluster_by"],
        "refine.k": kwargs["k"],
        "refine.opinions_per_cluster": kwargs["opinions_per_cluster"],
        "refine.representative": kwargs["representative"], "refine.embedder": kwargs["embedder"],
        "refine.judge_check": kwargs["judge_check"],
        "refine.workers": kwargs["workers"], "refine.batch_size": kwargs["batch_size"],
        "refine.extract_max_tokens": kwargs["max_tokens"],
    }
    config = build_config(**config_args, **overrides)
    echo_summary(run_refine(config, source=source, out=out, overwrite=overwrite, progress=True))


def echo_summary(summary: Any) -> None:
    """Print a refinement's summary: per-culture counts, verification labels, the judge check, clustering."""
    echo_table(summary.table(), ["culture", "dialogues", "extracted", "entail", "contradict", "irrelevant",
                                 "valid_mass", "verified", "diversified", "seeds", "sft"])
    totals = summary.totals()
    if summary.stages != "generate":
        mass = totals.get("valid_mass")
        click.echo(f"verification      labels from option scoring: {totals.get('entail', 0)} entail, "
                   f"{totals.get('contradict', 0)} contradict ({totals.get('rewritten', 0)} rewritten, "
                   f"{totals.get('rewrite_kept', 0)} rewrites kept), {totals.get('irrelevant', 0)} irrelevant; "
                   f"mean valid mass {'-' if mass is None else f'{mass:.3f}'}; {totals.get('no_attitude', 0)} "
                   "without a seed attitude")
    if summary.judge:
        j = summary.judge
        click.echo(f"judge check       {j['items']} labelled items: accuracy {j['accuracy']:.3f}, macro-F1 "
                   f"{j['macro_f1']:.3f}; majority baseline ('{j['majority_label']}') accuracy "
                   f"{j['majority_accuracy']:.3f}, macro-F1 {j['majority_macro_f1']:.3f}"
                   + ("; AT CHANCE" if j["at_chance"] else ""))
    if summary.clustering and summary.stages == "diversify":
        click.echo(f"clustering        per {summary.clustering['cluster_by']}, representative "
                   f"{summary.clustering['representative']}; (culture, seed question) pairs with a representative: "
                   f"{totals.get('seeds_kept', 0)} of the {totals.get('seeds_verified', 0)} with verified opinions")
    click.echo("seconds           " + ", ".join(f"{k} {v:.1f}" for k, v in summary.seconds.items()))
    for note in summary.notes:
        click.echo(f"note              {note}")
    click.echo(f"output            {summary.out}/opinions.parquet; SFT sets in {summary.out}/sft "
               f"({len(summary.sft_files) // 2} cultures); {summary.out}/summary.json")
