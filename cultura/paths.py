"""Where cultura keeps what it derives: prepared models, downloads, merged adapters."""

from __future__ import annotations

import os
from pathlib import Path


def cultura_home(home: str | os.PathLike | None = None) -> Path:
    """The cache folder for prepared models and other derived files (created if missing): ``home``
    (a config's ``home``) when given, else ``$CULTURA_HOME``, else the user's cache folder."""
    if home:
        folder = Path(home)
    elif os.environ.get("CULTURA_HOME"):
        folder = Path(os.environ["CULTURA_HOME"])
    else:
        import platformdirs

        folder = Path(platformdirs.user_cache_dir("cultura"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder
