"""Fetching a benchmark's published files from the Hugging Face hub, with one way out when offline."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from cultura.errors import CulturaError

_TRUE = ("1", "true", "yes", "on")


def hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` (or ``HF_DATASETS_OFFLINE``) asks the hub libraries not to go online."""
    return any(os.environ.get(name, "").strip().lower() in _TRUE for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def pass_from(name: str, reason: str, where: str, downloadable: bool = True) -> CulturaError:
    """The error that tells the user to fetch ``where`` themselves and pass it with ``--from``
    (and, for a benchmark on the hub, that an online machine downloads it by itself)."""
    online = f"On a machine that is online, run `cultura data get {name}`; otherwise get " if downloadable else "Get "
    return CulturaError(f"{reason}. {online}{where} and pass the file or folder with "
                        f"`cultura data get {name} --from PATH`")


def download_dataset(name: str, repo: str, patterns: Iterable[str]) -> Path:
    """Download the files of hub dataset ``repo`` matching ``patterns`` (with their published paths)
    into the hub cache; returns the snapshot folder. Offline (``HF_HUB_OFFLINE=1``, or no network)
    it fails with a message telling the user to pass ``--from``."""
    where = f"https://huggingface.co/datasets/{repo}"
    if hub_offline():
        raise pass_from(name, f"cannot download {repo} from the Hugging Face hub: HF_HUB_OFFLINE is set", where)
    from huggingface_hub import snapshot_download  # heavy import, only when a download is asked for

    try:
        folder = snapshot_download(repo, repo_type="dataset", allow_patterns=list(patterns))
    except Exception as exc:  # every hub, HTTP or connection failure gets the same way out
        message = str(exc).splitlines()[0] if str(exc) else ""
        raise pass_from(name, f"cannot download {repo} from the Hugging Face hub ({type(exc).__name__}"
                        + (f": {message}" if message else "") + ")", where) from None
    return Path(folder)
