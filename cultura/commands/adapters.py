"""``cultura adapters``: the trained LoRA adapters recorded in an adapter registry."""

from __future__ import annotations

import click

from cultura.commands.common import echo_table


@click.group()
def adapters() -> None:
    """Trained LoRA adapters (the registry `cultura finetune` writes)."""


@adapters.command("list")
@click.option("--dir", "folder", default="adapters", show_default=True, type=click.Path(),
              help="Adapters folder holding registry.json.")
def list_adapters(folder: str) -> None:
    """List the adapters in DIR/registry.json: kind, base model, preset, losses, where they are."""
    from cultura.registry import load_registry, registry_path

    entries = load_registry(folder)
    if not entries:
        click.echo(f"no adapters registered in {registry_path(folder)} (train some with `cultura finetune`)")
        return
    echo_table([e.row() for e in entries.values()])
