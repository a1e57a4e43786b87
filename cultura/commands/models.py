"""``cultura models``: prepare and list models in the cultura cache."""

from __future__ import annotations

import click

from cultura.commands.common import echo_table


@click.group()
def models() -> None:
    """Prepare the embedded default model and list prepared models."""


@models.command()
@click.option("--force", is_flag=True, help="Convert again even if the model is already prepared.")
def prepare(force: bool) -> None:
    """Dequantize the bundled SmolLM2-135M-Instruct GGUF into a safetensors folder (once)."""
    import time

    from cultura.models import default_model_dir, is_prepared, prepare_default_model

    already = is_prepared(default_model_dir()) and not force
    start = time.perf_counter()
    path = prepare_default_model(force=force)
    state = "already prepared" if already else f"prepared in {time.perf_counter() - start:.1f} s"
    click.echo(f"default model: {path} ({state})")


@models.command(name="list")
def list_() -> None:
    """List prepared models in the cache folder ($CULTURA_HOME or the user cache)."""
    from cultura.models import list_models

    echo_table(list_models(), ["name", "ready", "path"])
