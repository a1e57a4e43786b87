"""``cultura generate``: CulturePark dialogues between a main contact and cultural delegates."""

from __future__ import annotations

import sys
from typing import Any

import click

from cultura.commands.common import (build_config, config_options, csv_list, pop_config_args,
                                     repetition_penalty_option)


@click.command()
@click.option("--out", required=True,
              help="Output folder: dialogues/part-*.parquet (or .jsonl) and manifest.json. A local folder or a "
                   "URI (s3://, gs://, file:// on a shared mount); on a multi-node cluster use a URI every node reaches.")
@click.option("--cultures", default=None,
              help="Comma-separated cultures: CulturePark keys (arabic, bengali, chinese, german, korean, "
                   "portuguese, spanish, turkish) or Hofstede countries. Default: the eight. A culture's "
                   "delegates are calibrated with its primary country's data (german: Germany); a country's "
                   "with its own.")
@click.option("--seeds", default=None, help="'bundled' (default), 'globalopinionqa' (the cached download) or a seed "
                                            "file (.jsonl, .csv, GlobalOpinionQA .csv), as a path or URI.")
@click.option("--sources", default=None, help="Bundled seed sources, comma-separated: wvs,pew (default both).")
@click.option("--max-seeds", type=int, default=None, help="Use only the first N seeds.")
@click.option("--split", type=click.Choice(["train", "eval", "all"]), default=None,
              help="Seeds of this split (default train: evaluation holds out eval; see `cultura data seeds --split`).")
@click.option("--attitude", type=click.Choice(["primary", "pooled"]), default=None,
              help="A culture's attitude: its primary country's data (default) or every country of the "
                   "culture pooled (mean of their distributions).")
@click.option("--mode", type=click.Choice(["cross", "in", "multi"]), default=None,
              help="cross: main contact with one delegate (default); in: two delegates of one culture; "
                   "multi: main contact with one delegate of every culture.")
@click.option("--script", type=click.Choice(["self-guidance", "free"]), default=None,
              help="self-guidance: guided rounds (default); free: each answers the other's last words.")
@click.option("--rounds", type=int, default=None, help="Rounds per dialogue (>= 1; default 4).")
@click.option("--per-seed", type=int, default=None, help="Dialogues per seed and culture (default 1).")
@click.option("--calibration/--no-calibration", default=None,
              help="Tell each delegate its culture's attitude on the seed (default on; off for the ablation).")
@click.option("--main-contact", default=None, help="The main contact's name (default Lily).")
@click.option("--language", default=None, help="Language the delegates speak (default English).")
@click.option("--adapter", default=None, help="LoRA adapter for the delegates (name or folder).")
@click.option("--max-tokens", type=int, default=None, help="Most tokens per utterance (default from config: 128).")
@click.option("--temperature", type=float, default=None, help="Sampling temperature (default from config: 0.7).")
@repetition_penalty_option
@click.option("--workers", type=int, default=None, help="Dialogue workers in the Ray Data actor pool (default 2).")
@click.option("--batch-size", type=int, default=None, help="Dialogues one worker runs together (default 16).")
@click.option("--format", "fmt", type=click.Choice(["parquet", "jsonl"]), default=None,
              help="Output format (default parquet).")
@click.option("--rows-per-file", type=int, default=None, help="Dialogues per part file (default 256).")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Generate at most N dialogues now (finish later with --resume).")
@click.option("--resume", is_flag=True, help="Finish the run in --out: skip the dialogues already written.")
@click.option("--overwrite", is_flag=True, help="Replace the run in --out.")
@config_options
def generate(out: str, limit: int | None, resume: bool, overwrite: bool, **kwargs) -> None:
    """Generate cross-cultural dialogues from seed questions, sharded over Ray Data.

    Every dialogue is written exactly once; a run stopped midway is finished with --resume.
    Exits 1 when some dialogues failed (they are not written; --resume retries them).
    """
    from cultura.api import generate as run_generate

    config_args = pop_config_args(kwargs)
    overrides = {
        "generate.cultures": csv_list(kwargs["cultures"]), "generate.seeds": kwargs["seeds"],
        "generate.sources": csv_list(kwargs["sources"]), "generate.max_seeds": kwargs["max_seeds"],
        "generate.split": kwargs["split"], "generate.attitude": kwargs["attitude"],
        "generate.mode": kwargs["mode"], "generate.script": kwargs["script"], "generate.rounds": kwargs["rounds"],
        "generate.per_seed": kwargs["per_seed"], "generate.calibration": kwargs["calibration"],
        "generate.main_contact": kwargs["main_contact"], "generate.language": kwargs["language"],
        "generate.delegate_adapter": kwargs["adapter"], "generate.workers": kwargs["workers"],
        "generate.batch_size": kwargs["batch_size"], "generate.format": kwargs["fmt"],
        "generate.rows_per_file": kwargs["rows_per_file"], "sampling.max_tokens": kwargs["max_tokens"],
        "sampling.temperature": kwargs["temperature"], "sampling.repetition_penalty": kwargs["repetition_penalty"],
    }
    config = build_config(**config_args, **overrides)
    s = run_generate(config, out=out, resume=resume, overwrite=overwrite, limit=limit, progress=True)
    echo_summary(s, config.generate.format)
    if s.failures:
        for did, err in s.failures[:5]:
            click.echo(f"  failed {did}: {err}", err=True)
        click.echo(f"{len(s.failures)} dialogues failed and were not written; run again with --resume to retry them",
                   err=True)
        sys.exit(1)


def echo_summary(s: Any, fmt: str) -> None:
    """Print a generation run's summary: dialogues, turns, tokens, throughput, nodes, failures, output."""
    click.echo(f"dialogues         {s.dialogues} written now, {s.already_written} before, {s.planned} planned"
               + (f" ({s.skipped_no_attitude} seed/culture pairs skipped: attitude unknown)"
                  if s.skipped_no_attitude else ""))
    click.echo(f"turns             {s.turns}")
    click.echo(f"generated tokens  {s.completion_tokens} (prompt tokens {s.prompt_tokens})")
    click.echo(f"tokens/s          {s.tokens_per_s:.1f} generated, over {s.seconds:.1f} s")
    if s.nodes:
        click.echo("nodes             " + ", ".join(f"{node[:12]} {n} dialogues" for node, n in
                                                    sorted(s.nodes.items(), key=lambda kv: -kv[1])))
    click.echo(f"failures          {len(s.failures)}")
    click.echo(f"output            {s.out}/dialogues ({fmt}); manifest {s.out}/manifest.json")
