"""Bundled data and its loaders: Hofstede country scores, cultures, seed questions, prompts, VSM 2013.

Each loader validates its file and raises :class:`cultura.errors.DataError` naming the file, the row
and the field on bad input. The files live in ``cultura/data/files/``.
"""

from pathlib import Path

FILES = Path(__file__).resolve().parent / "files"
