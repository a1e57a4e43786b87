"""Bundled data and its loaders: Hofstede country scores, cultures, seed questions, prompts, VSM 2013.

Each loader validates its file and raises :class:`cultura.errors.DataError` naming the file, the row
and the field on bad input. The files live in ``cultura/data/files/``.
"""

from pathlib import Path
from typing import Any

from cultura.errors import DataError

FILES = Path(__file__).resolve().parent / "files"


def read_yaml_mapping(path: Path, expected: str) -> dict[str, Any]:
    """Parse a bundled YAML file whose top level must be a mapping (``expected`` describes it)."""
    import yaml

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise DataError(f"{path}: row 1: cannot parse the file ({exc})") from None
    if not isinstance(raw, dict):
        raise DataError(f"{path}: row 1: expected {expected}")
    return raw
