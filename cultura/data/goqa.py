"""GlobalOpinionQA (Durmus et al., 2023): Pew Global Attitudes and World Values Survey wave 7 questions
with the answer distribution of every surveyed country.

The published CSV (columns question, selections, options, source) is the Hugging Face dataset
``Anthropic/llm_global_opinions``, licensed CC BY-NC-SA 4.0, so cultura does not bundle it:
``cultura data get globalopinionqa`` downloads it into the cache, and ``--questions globalopinionqa``
(or ``--seeds globalopinionqa``) reads the cached copy.

Every country in a row is kept under its canonical name. The file's own spellings resolve ("S.
Korea", "Britain", "S. Africa", "Czech Rep.", "Taiwan ROC", "Hong Kong SAR"). A country given by
several samples keeps the best one: a current national sample, then a plain one, then an old
national one, then a non-national (for example urban-only) one; the sample used is named in the
provenance. Countries without Hofstede scores are in the country table too ("Palest. ter.", "Macau
SAR", "Kyrgyzstan" resolve), so their answers are kept; names it still does not know, and regions
("Northern Ireland"), are counted in the load summary, never silently dropped.
Non-substantive answers ("DK/Refused", "Don't know", "No answer") are left out of the options and of
every country's shares alike, which are renormalised (:func:`substantive`); the provenance names them.
"""

from __future__ import annotations

import ast
import hashlib
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cultura.data.hofstede import resolve_country
from cultura.data.seeds import Seed, SeedSet
from cultura.errors import CulturaError, DataError, UnknownNameError
from cultura.paths import cultura_home

GOQA_NAME = "globalopinionqa"
GOQA_COLUMNS = ("question", "selections", "options", "source")
HUB_REPO = "Anthropic/llm_global_opinions"
HUB_FILE = "data/global_opinions.csv"
HUB_URL = f"https://huggingface.co/datasets/{HUB_REPO}/resolve/main/{HUB_FILE}"
LICENSE = ("CC BY-NC-SA 4.0 (Creative Commons Attribution-NonCommercial-ShareAlike 4.0): non-commercial use, "
           "attribute Durmus et al. 2023 (arXiv 2306.16388), share adaptations under the same licence")
SURVEYS = {"gas": ("pew", "Pew Global Attitudes Survey"), "wvs": ("wvs", "World Values Survey wave 7")}
# Survey samples that stand for a part of a country, not the country.
REGIONS = ("Northern Ireland",)
# A country's samples, best first: (words in the qualifier, rank). No qualifier ranks 1.
SAMPLE_RANKS = (("current national", 0), ("old national", 2), ("non-national", 3))
_QUALIFIER = re.compile(r"^(?P<name>.*?)\s*\((?P<qualifier>[^()]*)\)\s*$")
# Answers that take no position ("DK/Refused", "Don't know", "No answer", "Missing; Not available"). They
# are left out of the options the model sees and of every country's reference alike, whose shares are
# renormalised over the substantive options: the evaluation measures opinions, not the rate of non-response.
NON_SUBSTANTIVE = frozenset({"dk", "don't know", "dont know", "do not know", "refused", "no answer", "not asked",
                             "missing", "not available", "not applicable", "decline to answer", "no opinion"})


def goqa_path() -> Path:
    """Where ``cultura data get globalopinionqa`` puts the CSV: ``$CULTURA_HOME/data/global_opinions.csv``."""
    return cultura_home() / "data" / "global_opinions.csv"


def _where_to_put_it(reason: str) -> CulturaError:
    return CulturaError(f"{reason}. On a machine that is online, download {HUB_URL} (licence CC BY-NC-SA 4.0) "
                        f"and put it at {goqa_path()}, or pass the file itself with --questions FILE")


def cached_goqa() -> Path:
    """The cached GlobalOpinionQA CSV; a clear error saying how to get it when it is not there."""
    path = goqa_path()
    if not path.is_file():
        raise _where_to_put_it(f"GlobalOpinionQA is not in the cache ({path}); run `cultura data get "
                               "globalopinionqa` to download it")
    return path


def download_goqa() -> Path:
    """Download the published CSV with ``huggingface_hub`` into the cache; returns its path.

    Offline (no network, or ``HF_HUB_OFFLINE=1``) it fails with a message saying where to put the file.
    """
    import shutil
    import tempfile

    from huggingface_hub import hf_hub_download

    target = goqa_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".download-") as folder:
        try:
            fetched = hf_hub_download(HUB_REPO, HUB_FILE, repo_type="dataset", local_dir=folder)
        except Exception as exc:  # every hub, HTTP or connection failure gets the same way out
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")
            raise _where_to_put_it(f"cannot download {HUB_REPO} from the Hugging Face hub ({reason})") from None
        temp = target.with_name(f".{target.name}.tmp")
        shutil.copyfile(fetched, temp)
        temp.replace(target)
    return target


def country_sample(name: str) -> tuple[str, str, int]:
    """``"India (Current national sample)"`` -> (``India``, ``Current national sample``, rank 0)."""
    match = _QUALIFIER.match(name.strip())
    if not match:
        return name.strip(), "", 1
    qualifier = match["qualifier"].strip()
    lowered = qualifier.lower()
    rank = next((r for words, r in SAMPLE_RANKS if words in lowered), 1)
    return match["name"].strip(), qualifier, rank


def non_substantive(option: str) -> bool:
    """True for an answer that takes no position: every part of it ("DK/Refused" -> "dk", "refused";
    "(VOL) Don't know") is one of :data:`NON_SUBSTANTIVE`."""
    text = re.sub(r"\((?:vol|volunteered)\.?\)", " ", option.lower().replace("\u2019", "'"))
    parts = [" ".join(re.findall(r"[a-z']+", p)) for p in re.split(r"[/;,]| or ", text)]
    parts = [p for p in parts if p]
    return bool(parts) and all(p in NON_SUBSTANTIVE for p in parts)


def substantive(options: list[str]) -> list[int]:
    """Indices of the options that take a position; every index when fewer than two would be left."""
    kept = [i for i, o in enumerate(options) if not non_substantive(o)]
    return kept if len(kept) >= 2 else list(range(len(options)))


def _literal(path: Path, row: int, name: str, raw: str, opener: str, closer: str) -> Any:
    """Parse the dict or list literal inside ``raw`` (e.g. in ``defaultdict(<class 'list'>, {...})``)."""
    start, end = raw.find(opener), raw.rfind(closer)
    if start < 0 or end < start:
        raise DataError.at(path, row, name, f"no {opener}...{closer} literal found")
    try:
        return ast.literal_eval(raw[start:end + 1])
    except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
        raise DataError.at(path, row, name, f"cannot parse the literal ({exc.__class__.__name__})") from None


def load_goqa(path: Path, rows: Iterable[tuple[int, dict[str, str]]]) -> tuple[list[tuple[int, Any]], Any]:
    """Parse GlobalOpinionQA rows into seeds keyed by canonical country; returns ((row, Seed) pairs,
    a :class:`~cultura.data.seeds.SeedSet` counting the countries and regions not used)."""
    skipped = SeedSet([])
    seen: dict[str, int] = {}
    pairs: list[tuple[int, Any]] = []
    for row, record in rows:
        question = (record.get("question") or "").strip()
        if not question:
            raise DataError.at(path, row, "question", "must not be empty")
        options = _literal(path, row, "options", record.get("options") or "", "[", "]")
        if not isinstance(options, list) or len(options) < 2:
            raise DataError.at(path, row, "options", "must be a list of at least two options")
        options = [str(o).strip() for o in options]
        selections = _literal(path, row, "selections", record.get("selections") or "", "{", "}")
        if not isinstance(selections, dict):
            raise DataError.at(path, row, "selections", "must be a mapping country -> shares")
        source, survey = SURVEYS.get((record.get("source") or "").strip().lower(),
                                     ((record.get("source") or "goqa").strip().lower(), "unnamed survey"))
        kept = substantive(options)
        best: dict[str, tuple[int, list[float], str]] = {}
        for written, shares in selections.items():
            if (not isinstance(shares, (list, tuple)) or len(shares) != len(options)
                    or not all(isinstance(s, (int, float)) and not isinstance(s, bool) for s in shares)):
                raise DataError.at(path, row, "selections", f"{written}: needs one number per option ({len(options)})")
            name, qualifier, rank = country_sample(str(written))
            if name in REGIONS:
                skipped.regions[name] = skipped.regions.get(name, 0) + 1
                continue
            try:
                country = resolve_country(name)
            except UnknownNameError:
                skipped.unknown_countries[name] = skipped.unknown_countries.get(name, 0) + 1
                continue
            shares = [float(shares[i]) for i in kept]
            if sum(shares) <= 0 or (country in best and best[country][0] <= rank):
                continue
            best[country] = (rank, [s / sum(shares) for s in shares], qualifier)
        dropped = [options[i] for i in range(len(options)) if i not in kept]
        options = [options[i] for i in kept]
        if not best:
            continue
        distributions = {c: tuple(v) for c, (_, v, _) in best.items()}
        attitudes = {c: options[max(range(len(v)), key=lambda i: (v[i], -i))] for c, v in distributions.items()}
        left_out = f", without {' / '.join(dropped)} (renormalised)" if dropped else ""
        provenance = {c: f"GlobalOpinionQA, {survey}" + (f", {q}" if q else "") + left_out
                      for c, (_, _, q) in best.items()}
        base = "goqa-" + hashlib.sha1(question.encode("utf-8")).hexdigest()[:10]
        seen[base] = seen.get(base, 0) + 1  # the same question asked twice keeps both, numbered
        seed_id = base if seen[base] == 1 else f"{base}-{seen[base]}"
        pairs.append((row, Seed(seed_id, source, "general", "question", question, tuple(options), attitudes,
                                distributions, provenance)))
    return pairs, skipped
