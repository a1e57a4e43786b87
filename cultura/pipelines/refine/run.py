"""CulturePark refinement: generated dialogues -> opinions -> verified -> diversified -> SFT sets.

``refine`` reads a generation run (``IN/manifest.json``, ``IN/dialogues/part-*``) and runs, as far as
``config.refine.stages`` says (the paper's ablation):

1. generate: opinion extraction, one LLM call per dialogue and delegate culture (Ray Data);
2. verify: label each opinion against the seed attitude, rewrite the contradicting ones and verify
   the rewrites (Ray Data); only ``Entail`` survives;
3. diversify: embed the survivors (Ray Data actor pool), k-means per culture (one Ray task each),
   keep one representative per cluster.

It writes ``OUT/opinions.parquet`` (every opinion with every decision), ``OUT/extractions.parquet``
(raw extraction answers), ``OUT/sft/<culture>.jsonl`` and ``.parquet``, ``OUT/summary.json`` and
``OUT/manifest.json``. An empty stage result is reported in the summary, not raised.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cultura.actors.agents import stop_actors
from cultura.actors.engine_actor import start_engine_actor
from cultura.cards import CARD_NAME, provenance, upstream, write_card
from cultura.data.cultures import get_culture
from cultura.errors import CulturaError
from cultura.pipelines.refine.diversify import cluster_cultures, clustering_settings, embed_texts, group_k
from cultura.pipelines.refine.input import read_generation, run_seeds, seed_attitudes
from cultura.pipelines.refine.judge_check import culture_attitudes, judged_schema, labelled_items, score_rows
from cultura.pipelines.refine.llm_stage import ExtractWorker, JudgeWorker, VerifyWorker, caller_settings, map_table
from cultura.pipelines.refine.opinions import delegate_text
from cultura.pipelines.refine.schema import SEED_COLUMNS, extraction_schema, opinion_schema, unit_schema
from cultura.pipelines.refine.sft import atomic_write_parquet, write_sft_sets
from cultura.pipelines.writer import atomic_write_text
from cultura.ray_utils import init_ray
from cultura.storage import display, fetch, is_uri, staged_output, warn_if_local

STAGES = ("generate", "verify", "diversify")
OUTPUTS = ("opinions.parquet", "extractions.parquet", "summary.json", "manifest.json", "sft", CARD_NAME)


@dataclass
class RefineSummary:
    """What a refinement run did: per-culture counts per stage, the verification labels and their
    valid mass, the judge check, the clustering settings, seconds per stage, files written."""

    out: Path | str  # a local folder, or the URI the output was copied to
    stages: str
    cultures: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    sft_files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    clustering: dict[str, str] = field(default_factory=dict)
    judge: dict[str, Any] | None = None  # the verification check (JudgeScore.as_dict), when it ran

    def totals(self) -> dict[str, Any]:
        """The integer counts summed over cultures, and the mean valid mass over every judgement."""
        total: Counter = Counter()
        for counts in self.cultures.values():
            total.update({k: v for k, v in counts.items() if isinstance(v, int)})
        out: dict[str, Any] = dict(total)
        judged = [(c["judgements"], c["valid_mass"]) for c in self.cultures.values()
                  if c.get("judgements") and c.get("valid_mass") is not None]
        if judged:
            out["valid_mass"] = sum(n * m for n, m in judged) / sum(n for n, _ in judged)
        return out

    def table(self) -> list[dict[str, Any]]:
        """One row per culture (and a total): how many items survived each stage that ran, the
        verification labels with their mean valid mass, and the seed questions kept."""
        ran = STAGES[: STAGES.index(self.stages) + 1]
        rows = []
        for culture, c in [*sorted(self.cultures.items()), ("total", self.totals())]:
            row = {"culture": culture, "dialogues": c.get("dialogues", 0), "extracted": c.get("extracted", 0)}
            for key in ("entail", "contradict", "irrelevant", "verified"):
                row[key] = c.get(key, 0) if "verify" in ran else None
            mass = c.get("valid_mass") if "verify" in ran else None
            row["valid_mass"] = round(mass, 3) if mass is not None else None
            row["diversified"] = c.get("diversified", 0) if "diversify" in ran else None
            row["seeds"] = f"{c.get('seeds_kept', 0)}/{c.get('seeds_verified', 0)}" if "diversify" in ran else None
            row["sft"] = c.get("sft", 0)
            rows.append(row)
        return rows

    def as_dict(self) -> dict[str, Any]:
        """Plain values for ``summary.json`` and the manifest."""
        return {"stages": self.stages, "cultures": self.cultures, "totals": self.totals(),
                "clustering": self.clustering, "judge": self.judge,
                "seconds": {k: round(v, 2) for k, v in self.seconds.items()},
                "sft_files": [str(p) for p in self.sft_files], "notes": self.notes, "out": str(self.out)}


# ----- units and opinions -------------------------------------------------------------------

def _short_id(*parts: Any) -> str:
    return hashlib.sha1(json.dumps(parts).encode("utf-8")).hexdigest()[:20]


def _country_of(culture: str) -> str:
    try:
        return get_culture(culture).primary_country
    except CulturaError:
        return culture.replace("_", " ").title()


def extraction_units(rows: Sequence[Mapping[str, Any]], attitudes: Callable[[str, str], str | None]) -> list[dict[str, Any]]:
    """One unit per dialogue and delegate culture with that culture's delegate text.

    ``cross``/``in``: the dialogue's culture and all delegate turns; ``multi``: one unit per culture
    among the delegate turns. ``attitudes(seed_id, culture)`` supplies an attitude the row lacks.
    Dialogues without delegate text make no unit.
    """
    units = []
    for row in rows:
        turns = row.get("turns") or []
        multi = row["mode"] == "multi"
        if multi:
            cultures = list(dict.fromkeys(t.get("culture") for t in turns if t.get("role") == "delegate" and t.get("culture")))
        else:
            cultures = [row["culture"]]
        for culture in cultures:
            text = delegate_text(turns, culture if multi else None)
            if not text:
                continue
            attitude = (None if multi else row.get("attitude")) or attitudes(row["seed_id"], culture)
            country = (None if multi else row.get("country")) or _country_of(culture)
            unit = {c: row.get(c) for c in SEED_COLUMNS}
            unit.update(culture=culture, country=country, attitude=attitude, text=text,
                        unit_id=_short_id(row["dialogue_id"], culture), options=list(row.get("options") or []))
            units.append(unit)
    return units


def opinion_rows(extractions: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Explode extraction rows into one opinion row each (``opinion_schema``, later columns empty)."""
    rows = []
    for e in extractions:
        for index, text in enumerate(e["opinions"]):
            row = {c: e[c] for c in SEED_COLUMNS}
            row.update(opinion_id=_short_id(e["unit_id"], index), unit_id=e["unit_id"], index=index, opinion=text,
                       text=text, selected=False)
            rows.append(row)
    return rows


# ----- output ---------------------------------------------------------------------------------

def prepare_output(out: Path, source: Path, overwrite: bool) -> None:
    """Make ``out`` ready: refuse the input folder itself and folders holding other things; with
    ``overwrite`` remove an earlier refinement's files (only those)."""
    if out.exists() and not out.is_dir():
        raise CulturaError(f"{out} is a file, not a folder")
    if out.resolve() == source.resolve():
        raise CulturaError(f"--out must differ from --in ({out})")
    if out.is_dir() and any(out.iterdir()):
        try:
            ours = json.loads((out / "manifest.json").read_text(encoding="utf-8")).get("stage") == "refine"
        except (OSError, ValueError, AttributeError):
            ours = False
        if not ours:
            raise CulturaError(f"{out} is not empty and holds no refine run; choose another output folder")
        if not overwrite:
            raise CulturaError(f"{out} already holds a refine run; pass --overwrite to replace it")
        for name in OUTPUTS:
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


def _write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


# ----- the stages -----------------------------------------------------------------------------

def _count_extraction(summary: RefineSummary, units: Sequence[Mapping[str, Any]], extractions: Sequence[Mapping[str, Any]]) -> None:
    dialogues: dict[str, set[str]] = {}
    for u in units:
        dialogues.setdefault(u["culture"], set()).add(u["dialogue_id"])
    for culture, ids in dialogues.items():
        summary.cultures[culture] = {"dialogues": len(ids), "extracted": 0, "empty_answers": 0,
                                     "extraction_failed": 0, "rejected": {}, "sft": 0}
    for e in extractions:
        c = summary.cultures[e["culture"]]
        if e.get("error"):
            c["extraction_failed"] += 1
            continue
        c["extracted"] += len(e["opinions"])
        c["empty_answers"] += int(not e["opinions"])
        for item in e["rejected"]:
            c["rejected"][item["reason"]] = c["rejected"].get(item["reason"], 0) + 1


def _count_verification(summary: RefineSummary, rows: Sequence[Mapping[str, Any]]) -> None:
    """Per culture: the first verification's labels, rewrites, survivors, failures, and the mean valid
    mass over every judgement (first verifications and re-verifications of rewrites)."""
    masses: dict[str, list[float]] = {}
    for c in summary.cultures.values():
        c.update(entail=0, contradict=0, irrelevant=0, rewritten=0, rewrite_kept=0, no_attitude=0,
                 verification_failed=0, verified=0, judgements=0, valid_mass=None)
    for r in rows:
        c = summary.cultures[r["culture"]]
        c["verification_failed"] += int(r["decision"] == "failed")
        if r["label"]:
            c[r["label"].lower()] += 1
        c["rewritten"] += int(r["rewrite"] is not None)
        c["rewrite_kept"] += int(r["decision"] == "kept-rewrite")
        c["no_attitude"] += int(r["decision"] == "dropped-no-attitude")
        c["verified"] += int(bool(r["verified"]))
        masses.setdefault(r["culture"], []).extend(s["valid_mass"] for s in r["audit"] or []
                                                   if s.get("valid_mass") is not None)
    for culture, values in masses.items():
        if values:
            summary.cultures[culture].update(judgements=len(values), valid_mass=sum(values) / len(values))


def _judge_check(config: Any, summary: RefineSummary, manifest: Mapping[str, Any], caller: Mapping[str, Any],
                 resources: Mapping[str, float], progress: bool) -> None:
    """Score the verification judge on labelled items built from the run's seeds (``refine.judge_check``
    items); the result goes to ``summary.judge`` and, when the judge is at chance, a note."""
    import pyarrow as pa

    r = config.refine
    found = run_seeds(manifest)
    items = labelled_items(culture_attitudes(*found), r.judge_check) if found else []
    if not items:
        summary.notes.append("verification check skipped: the run's seeds could not be read again")
        return
    table = pa.Table.from_pylist([i | {"label": None, "probs": None, "valid_mass": None, "error": None} for i in items],
                                 schema=judged_schema())
    judged = map_table(table, JudgeWorker, {"caller": caller}, judged_schema(), workers=r.workers,
                       batch_size=r.batch_size, resources=resources,
                       progress="check" if progress else None).to_pylist()
    score = score_rows(judged)
    if score is None:
        summary.notes.append("verification check: every request failed")
        return
    summary.judge = score.as_dict()
    if score.at_chance:
        summary.notes.append(score.sentence())


def _diversify(config: Any, summary: RefineSummary, rows: list[dict[str, Any]]) -> None:
    """Embed the verified opinions, cluster them per (culture, seed question) or per culture (the
    preset's ``cluster_by``), mark the representatives (in place). Cluster numbers run on across a
    culture's groups, so (culture, cluster) names one cluster."""
    r = config.refine
    settings = clustering_settings(r)
    keep = [row for row in rows if row["verified"]]
    for c in summary.cultures.values():
        c.update(clusters=0, diversified=0, seeds_verified=0, seeds_kept=0)
    summary.clustering = settings
    if not keep:
        return
    vectors = embed_texts([row["opinion_id"] for row in keep], [row["text"] for row in keep], r.embedder,
                          workers=r.embed_workers, batch_size=r.embed_batch_size, num_cpus=r.embed_num_cpus)
    members: dict[str, dict[str, list[int]]] = {}  # culture -> group (seed id, or all) -> rows of keep
    for i, row in enumerate(keep):
        group = row["seed_id"] if settings["cluster_by"] == "seed" else ""
        members.setdefault(row["culture"], {}).setdefault(group, []).append(i)
    jobs = {}
    for culture, groups in members.items():
        total = sum(len(idx) for idx in groups.values())
        jobs[culture] = [(vectors[idx], group_k(len(idx), total, r.k, settings["cluster_by"], r.opinions_per_cluster,
                                                r.min_clusters), [len(keep[i]["text"]) for i in idx])
                         for idx in groups.values()]
    results = cluster_cultures(jobs, settings["representative"], r.seed, r.cluster_num_cpus)
    for culture, groups in members.items():
        offset = 0
        for idx, result in zip(groups.values(), results[culture]):
            reps = set(result.representatives)
            for j, i in enumerate(idx):
                keep[i].update(cluster=offset + result.labels[j], distance=result.distances[j],
                               representative=j in reps)
            offset += result.k
        c = summary.cultures[culture]
        c.update(clusters=offset, diversified=sum(bool(keep[i]["representative"]) for idx in groups.values()
                                                   for i in idx))
        seeds = {keep[i]["seed_id"] for idx in groups.values() for i in idx}
        c.update(seeds_verified=len(seeds),
                 seeds_kept=len({keep[i]["seed_id"] for idx in groups.values() for i in idx if keep[i]["representative"]}))


def refine(config: Any, source: str | Path, out: str | Path, *, overwrite: bool = False, engine: Any = None,
           progress: bool = False) -> RefineSummary:
    """Refine the generation run in ``source`` into ``out``; return the summary.

    ``config.refine`` sets the stages and their parameters; ``engine`` is an engine actor handle to
    use (not stopped) instead of one started here for ``shared`` placement. ``source`` and ``out`` are
    local folders or filesystem URIs (``s3://``, ``gs://``, ``file://``); a remote ``out`` is written
    in a local stage and copied there at the end (:func:`cultura.storage.staged_output`).
    """
    with staged_output(out) as local_out:
        summary = _refine(config, source, local_out, out, overwrite, engine, progress)
    if is_uri(out):
        summary.out = str(out)
    return summary


def _refine(config: Any, source_spec: str | Path, out: Path, out_spec: str | Path, overwrite: bool, engine: Any,
            progress: bool) -> RefineSummary:
    """:func:`refine` into the local folder ``out`` (``out_spec`` is what the caller named)."""
    import pyarrow as pa

    r = config.refine

    source = fetch(source_spec)
    rows, manifest = read_generation(source)
    init_ray(config)
    warn_if_local(source_spec, "--in")
    warn_if_local(out_spec, "--out")
    prepare_output(out, source, overwrite)
    params = {"input": display(source_spec), "model": config.engine.model, "engine": config.engine.kind, **r.model_dump()}
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    _write_json(out / "manifest.json", {"stage": "refine", "params": params, "status": "running", "created_at": created})
    summary = RefineSummary(out, r.stages)
    lookup: dict[tuple[str, str], str] | None = None

    def attitudes(seed_id: str, culture: str) -> str | None:
        nonlocal lookup
        if lookup is None:
            lookup = seed_attitudes(manifest)
        return lookup.get((seed_id, culture))

    units = extraction_units(rows, attitudes)
    summary.notes += [f"{len(rows)} dialogues read, {len(units)} extraction units"]
    owned = None
    if engine is None and config.placement == "shared" and units:
        engine = owned = start_engine_actor(config.engine, config.engine_resources)
    caller, resources = caller_settings(config, engine)
    status = "interrupted"
    try:
        start = time.perf_counter()
        extractions = map_table(
            pa.Table.from_pylist(units, schema=unit_schema()), ExtractWorker,
            {"caller": caller, "max_tokens": r.extract_max_tokens, "max_chars": r.max_input_chars,
             "min_words": r.min_words}, extraction_schema(), workers=r.workers, batch_size=r.batch_size,
            resources=resources, progress="extract" if progress else None).to_pylist()
        extractions.sort(key=lambda e: e["unit_id"])
        summary.seconds["generate"] = time.perf_counter() - start
        _count_extraction(summary, units, extractions)
        opinions = opinion_rows(extractions)
        if r.stages != "generate":
            start = time.perf_counter()
            opinions = map_table(
                pa.Table.from_pylist(opinions, schema=opinion_schema()), VerifyWorker,
                {"caller": caller, "rewrite_tokens": r.rewrite_max_tokens, "min_words": r.min_words},
                opinion_schema(), workers=r.workers, batch_size=r.batch_size,
                resources=resources, progress="verify" if progress else None).to_pylist()
            opinions.sort(key=lambda o: (o["unit_id"], o["index"]))
            summary.seconds["verify"] = time.perf_counter() - start
            _count_verification(summary, opinions)
            if r.judge_check and opinions:
                start = time.perf_counter()
                _judge_check(config, summary, manifest, caller, resources, progress)
                summary.seconds["check"] = time.perf_counter() - start
        if owned is not None:
            stop_actors([owned])  # free its CPUs (or GPU) for the embedding actors
            owned = None
        if r.stages == "diversify":
            start = time.perf_counter()
            _diversify(config, summary, opinions)
            summary.seconds["diversify"] = time.perf_counter() - start
        chosen = {"generate": lambda o: True, "verify": lambda o: bool(o["verified"]),
                  "diversify": lambda o: bool(o.get("representative"))}[r.stages]
        for o in opinions:
            o["selected"] = chosen(o)
        atomic_write_parquet(pa.Table.from_pylist(extractions, schema=extraction_schema()), out / "extractions.parquet")
        atomic_write_parquet(pa.Table.from_pylist(opinions, schema=opinion_schema()), out / "opinions.parquet")
        counts, skipped = write_sft_sets(out / "sft", [o for o in opinions if o["selected"]])
        for culture, n in counts.items():
            summary.cultures[culture]["sft"] = n
            summary.sft_files += [out / "sft" / f"{culture}.jsonl", out / "sft" / f"{culture}.parquet"]
        if skipped:
            summary.notes.append("left out of the SFT sets, their seed attitude being unknown or not one of the "
                                 "options (no option number to answer with): "
                                 + ", ".join(f"{c} {n}" for c, n in sorted(skipped.items())))
        failed = {k: v for k, v in summary.totals().items() if k.endswith("_failed") and v}
        if failed:
            summary.notes.append("requests that failed (rows written with their reason in the 'error' column): "
                                 + ", ".join(f"{k.removesuffix('_failed')} {v}" for k, v in failed.items()))
        for stage in STAGES[: STAGES.index(r.stages) + 1]:
            key = {"generate": "extracted", "verify": "verified", "diversify": "diversified"}[stage]
            if not summary.totals().get(key):
                summary.notes.append(f"no opinion survived the {stage} stage")
                break
        status = "complete"
    finally:
        if owned is not None:
            stop_actors([owned])
        _write_json(out / "summary.json", summary.as_dict())
        _write_json(out / "manifest.json", {"stage": "refine", "params": params, "status": status,
                                            "summary": summary.as_dict(), "created_at": created})
        write_refine_card(out, config, source, display(source_spec), summary, status)
    return summary


def write_refine_card(out: Path, config: Any, source: Path, source_name: str, summary: RefineSummary,
                      status: str) -> Path:
    """The refinement's card: its model and stages, the fine-tuning rows per culture, and what the
    dialogues rest on (seeds, split, seed ids, data licence, as the generation run's card names them)."""
    sft = {culture: c.get("sft", 0) for culture, c in sorted(summary.cultures.items())}
    fields = {"stage": "refine", "status": status, **provenance(config, "culturepark"), "input": source_name,
              **upstream(source), "refine_stages": summary.stages, "sft_rows": sft,
              "config": config.model_dump(mode="json")}
    done = {"generate": "extraction", "verify": "extraction and verification",
            "diversify": "extraction, verification and diversification"}[summary.stages]
    body = (f"CulturePark's refinement ({done}) of the dialogues in `{source_name}`. Fine-tuning sets: "
            + ", ".join(f"{c} {n} rows" for c, n in sft.items())
            + f" in `sft/<culture>.jsonl` and `.parquet` ({status}); every opinion with its verdicts: "
            "`opinions.parquet`; counts per stage: `summary.json`.")
    return write_card(out, "CulturePark fine-tuning data", fields, body)
