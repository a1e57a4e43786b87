"""Options and helpers shared by the CLI subcommands."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click


def config_options(func: Callable) -> Callable:
    """Add ``--config``, ``--engine``, ``--model``, ``--address`` and ``--profile`` to a command."""
    options = [
        click.option("--config", "config_path", type=click.Path(dir_okay=False),
                     help="YAML configuration file (see README: Configuration)."),
        click.option("--profile", type=click.Choice(["local", "cluster"]), default=None,
                     help="Configuration profile: local (default) or cluster."),
        click.option("--engine", type=click.Choice(["transformers", "vllm", "openai"]), default=None,
                     help="LLM engine (default from config: transformers)."),
        click.option("--model", default=None,
                     help="Model: 'default' (embedded SmolLM2-135M-Instruct), a Hugging Face id or a local folder."),
        click.option("--address", default=None, help="Ray cluster address (e.g. 'auto'); default: start a local Ray."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def repetition_penalty_option(func: Callable) -> Callable:
    """Add ``--repetition-penalty`` (the repetition guard; default from ``sampling.repetition_penalty``)."""
    return click.option("--repetition-penalty", type=click.FloatRange(0, 2, min_open=True), default=None,
                        help="Repetition guard: logits of tokens already in the prompt or the answer are divided "
                             "by it (default from config: 1.1; 1 turns it off).")(func)


def build_config(config_path: str | None, profile: str | None = None, engine: str | None = None,
                 model: str | None = None, address: str | None = None, **extra: Any):
    """Load the configuration with the common flags applied as overrides (dotted keys in ``extra``)."""
    from cultura.api import load_config

    overrides = {"profile": profile, "engine.kind": engine, "engine.model": model, "ray.address": address}
    overrides.update(extra)
    return load_config(config_path, overrides)


def pop_config_args(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Remove the common config flags from a command's keyword arguments and return them."""
    return {k: kwargs.pop(k) for k in ("config_path", "profile", "engine", "model", "address")}


def csv_list(value: str | None) -> list[str] | None:
    """A comma-separated flag as a list of its non-empty, stripped items (None stays None)."""
    return [v.strip() for v in value.split(",") if v.strip()] if value is not None else None


def echo_table(rows: list[dict[str, Any]], columns: list[str] | None = None) -> None:
    """Print rows as an aligned plain-text table."""
    if not rows:
        click.echo("(none)")
        return
    columns = columns or list(rows[0])
    cells = [[_fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    click.echo("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for row in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths)))


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".") if value != int(value) else str(int(value))
    return str(value)


def positive(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """click callback: the value must be >= 1."""
    if value is not None and value < 1:
        raise click.BadParameter(f"must be >= 1, got {value}")
    return value


def wraps_errors(func: Callable) -> Callable:
    """Keep a command's name and docstring when decorating."""
    return functools.wraps(func)(func)
