"""The one entry point: ``cultura SUBCOMMAND``.

Subcommands live in ``cultura/commands`` and are imported only when used (or listed), so
``cultura --help`` stays fast: no torch, transformers or ray at import time.
"""

from __future__ import annotations

import importlib
import sys

import click

# name -> "module:attribute"; a new subcommand is one entry here plus its module.
COMMANDS = {
    "chat": "cultura.commands.chat:chat",
    "models": "cultura.commands.models:models",
    "data": "cultura.commands.data:data",
    "generate": "cultura.commands.generate:generate",
    "refine": "cultura.commands.refine:refine",
    "finetune": "cultura.commands.finetune:finetune",
    "adapters": "cultura.commands.adapters:adapters",
    "eval": "cultura.commands.eval:eval_",
    "serve": "cultura.commands.serve:serve",
    "palette": "cultura.commands.palette:palette",
    "palette-data": "cultura.commands.palette:palette_data",
    "demo": "cultura.commands.demo:demo",
    "experiment": "cultura.commands.experiment:experiment",
}


class LazyGroup(click.Group):
    """A click group that imports each subcommand's module on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="cultura")
@click.option("-v", "--verbose", is_flag=True,
              help="Also print Ray's own output (start-up notices, Serve's INFO lines, raylet warnings, "
                   "C++ error lines) and full tracebacks; by default they go to Ray's log files only.")
def cli(verbose: bool) -> None:
    """cultura: culturally aware language models on Ray.

    CulturePark (cross-cultural agent dialogues -> refined data -> one LoRA adapter per culture)
    and Cultural Palette (five continent agents blended by a Cultural MoE gate), from a laptop
    default (SmolLM2-135M-Instruct, local Ray) to a GPU cluster.
    """
    from cultura.console import configure

    configure(verbose)


def _show_cluster_warnings() -> None:
    """Print every :class:`~cultura.errors.ClusterWarning` as a plain ``warning:`` line on stderr."""
    import warnings

    from cultura.errors import ClusterWarning

    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, ClusterWarning):
            click.echo(f"warning: {message}", err=True)
        else:
            shown(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    warnings.simplefilter("always", ClusterWarning)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; user errors print one clear line and exit 2, never a traceback; an unexpected
    failure after Ray started prints one line and where its traceback went (see :func:`_unexpected`)."""
    from cultura.errors import CulturaError
    from cultura.ray_utils import polite_threads

    polite_threads()
    _show_cluster_warnings()
    try:
        cli.main(args=argv, prog_name="cultura", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except CulturaError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except OSError as exc:
        if exc.filename is None:
            _unexpected(exc)
        click.echo(f"error: {exc.strerror}: {exc.filename}", err=True)
        sys.exit(2)
    except Exception as exc:
        _unexpected(exc)


def _unexpected(exc: Exception) -> None:
    """An unexpected failure (a Ray error, a bug): with Ray's output kept quiet, one line naming the
    file that holds the traceback, exit 1; otherwise the traceback itself."""
    from cultura.console import is_quiet, write_traceback
    from cultura.errors import last_line

    where = write_traceback(exc) if is_quiet() else None
    if where is None:
        raise exc
    click.echo(f"error: {type(exc).__name__}: {last_line(exc)} (traceback in {where}; "
               "`cultura --verbose ...` prints it here)", err=True)
    sys.exit(1)


if __name__ == "__main__":
    main()
