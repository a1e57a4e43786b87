"""CLI subcommands, one module each, imported lazily by :mod:`cultura.cli`."""
