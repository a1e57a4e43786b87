"""Palette dataset synthesis: PRISM-style prompts x five continents -> preferred responses, Hofstede-refined.

For every prompt each continent agent samples ``palette.samples`` responses; an LLM judge rates each
response on Hofstede's six dimensions (1-5, read by option scoring, :mod:`cultura.palette.judge`);
the ratings become a 0-100 vector, and per continent the sample closest to the continent's Hofstede centroid is kept when
its distance is at most ``palette.max_distance``. Each kept response is a row
``{query, continent, response, rejected_response}`` where ``rejected_response`` holds the other
continents' kept responses to the same query (the published Palette format), plus audit columns.
Prompts are sharded over Ray Data; within a batch each agent gets one batched call.

Output: ``OUT/palette.parquet`` and ``OUT/palette.jsonl`` (the same rows), ``OUT/manifest.json``.
"""

from __future__ import annotations

import functools
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cultura.actors.agents import agent_demands, agent_placement_fixes, start_agents
from cultura.cards import DATA_LICENCES, provenance, write_card
from cultura.data.hofstede import CONTINENTS, DIMENSIONS, continent_centroid
from cultura.data.prompts import load_prompts
from cultura.errors import CulturaError, DataError
from cultura.jsonl import read_jsonl_objects
from cultura.palette.gate import vector_distance
from cultura.palette.judge import JUDGE_SYSTEM, describe, rate, ratings_to_scores
from cultura.palette.meta import draft_messages
from cultura.personas import Persona, continent_persona
from cultura.pipelines.writer import atomic_write_text
from cultura.placement import Demand, check_placement, cluster_nodes
from cultura.ray_utils import init_ray
from cultura.storage import is_uri, staged_output

PARQUET, JSONL, MANIFEST = "palette.parquet", "palette.jsonl", "manifest.json"


@functools.cache
def palette_schema() -> Any:
    """The Arrow schema of the Palette dataset (``OUT/palette.parquet``; JSONL rows have the same fields).

    ``query``, ``continent``, ``response`` (chosen) and ``rejected_response`` (the other continents'
    chosen responses, with their continents in ``rejected_continents``) are the published format;
    the rest is the audit trail: the judge's ratings (1-5, expected scale points) for the chosen
    response with their summary line (``judge_text``) and valid mass, its distance to the continent
    centroid, and every sample with its ratings and distance.
    """
    import pyarrow as pa

    ratings = pa.struct([pa.field(d, pa.float32()) for d in DIMENSIONS])
    candidate = pa.struct([
        pa.field("response", pa.string(), nullable=False),
        pa.field("judge_text", pa.string(), nullable=False),
        pa.field("ratings", ratings, nullable=False),
        pa.field("valid_mass", pa.float64()),  # mean probability the judge put on the scale's numbers
        pa.field("distance", pa.float64()),
    ])
    return pa.schema([
        pa.field("query", pa.string(), nullable=False),
        pa.field("continent", pa.string(), nullable=False),
        pa.field("response", pa.string(), nullable=False),
        pa.field("rejected_response", pa.list_(pa.string()), nullable=False),
        pa.field("rejected_continents", pa.list_(pa.string()), nullable=False),
        pa.field("prompt_id", pa.string()),
        pa.field("topic", pa.string()),
        pa.field("judge_ratings", ratings),
        pa.field("judge_text", pa.string()),
        pa.field("judge_valid_mass", pa.float64()),
        pa.field("hofstede_distance", pa.float64()),
        pa.field("candidates", pa.list_(candidate)),
        pa.field("source", pa.string(), nullable=False),  # "cultura" (synthesized) or the loaded file
        pa.field("model", pa.string()),
        pa.field("created_at", pa.timestamp("us", tz="UTC")),
    ])


@dataclass
class PaletteDataSummary:
    """What a synthesis run did."""

    out: Path | str  # a local folder, or the URI the dataset was copied to
    prompts: int = 0
    samples: int = 0
    rows: int = 0
    dropped_far: int = 0  # continent answers whose best sample was beyond max_distance
    dropped_unrated: int = 0  # continent answers with no rating in any sample (every judge request failed)
    dropped_alone: int = 0  # kept answers with no other continent's answer to pair against
    ratings_read: int = 0  # dimensions rated, over all samples
    judge_mass: float = 0.0  # the judge's valid mass summed over rated samples
    judged: int = 0  # samples with a valid mass
    seconds: float = 0.0
    files: list[Path] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Plain values for the manifest and the CLI summary."""
        return {"prompts": self.prompts, "samples": self.samples, "rows": self.rows,
                "dropped_far": self.dropped_far, "dropped_unrated": self.dropped_unrated,
                "dropped_alone": self.dropped_alone, "ratings_read": self.ratings_read,
                "ratings_possible": self.samples * len(DIMENSIONS),
                "judge_valid_mass": round(self.judge_mass / self.judged, 4) if self.judged else None,
                "seconds": round(self.seconds, 2),
                "out": str(self.out), "files": [str(f) for f in self.files]}


@functools.cache
def outcome_schema() -> Any:
    """What a synthesis worker returns: one row per prompt and continent, with ``status`` ``kept`` (a
    Palette row) or why the continent was dropped: ``far`` (best sample beyond ``max_distance``),
    ``unrated`` (no readable rating), ``alone`` (no other continent kept to reject)."""
    import pyarrow as pa

    fields = [pa.field(f.name, f.type) for f in palette_schema()]
    return pa.schema(fields + [pa.field("status", pa.string(), nullable=False),
                               pa.field("ratings_read", pa.int32(), nullable=False)])


def select_rows(query: str, candidates: dict[str, list[dict[str, Any]]], max_distance: float,
                extra: dict[str, Any]) -> list[dict[str, Any]]:
    """Hofstede refinement for one query: per continent the closest rated sample within
    ``max_distance`` is chosen; each chosen answer is rejected for every other continent.

    ``candidates[continent]`` holds samples ``{response, judge_text, ratings, valid_mass, distance}``. Returns one
    :func:`outcome_schema` row per continent with candidates.
    """
    chosen: dict[str, dict[str, Any]] = {}
    status: dict[str, str] = {}
    for continent in CONTINENTS:
        if not candidates.get(continent):
            continue
        rated = [c for c in candidates[continent] if c["distance"] is not None]
        best = min(rated, key=lambda c: c["distance"]) if rated else None
        if best is None:
            status[continent] = "unrated"
        elif best["distance"] > max_distance:
            status[continent] = "far"
        else:
            chosen[continent] = best
            status[continent] = "kept"
    if len(chosen) == 1:
        status[next(iter(chosen))] = "alone"
    rows = []
    for continent, state in status.items():
        cands = candidates[continent]
        read = sum(v is not None for c in cands for v in c["ratings"].values())
        row = extra | {"query": query, "continent": continent, "candidates": cands, "status": state,
                       "ratings_read": read, "rejected_response": [], "rejected_continents": []}
        if continent in chosen:
            best = chosen[continent]
            others = [c for c in chosen if c != continent]
            row |= {"response": best["response"], "rejected_response": [chosen[o]["response"] for o in others],
                    "rejected_continents": others, "judge_ratings": best["ratings"],
                    "judge_text": best["judge_text"], "judge_valid_mass": best.get("valid_mass"),
                    "hofstede_distance": best["distance"]}
        rows.append(row)
    return rows


class PaletteDataWorker:
    """Ray Data stage: for a batch of prompts, sample every continent, judge every sample, select."""

    def __init__(self, agents: dict[str, Any], judge: Any, sampling: Any, samples: int, max_distance: float,
                 model: str):
        self.agents, self.judge, self.sampling = agents, judge, sampling
        self.samples, self.max_distance, self.model = samples, max_distance, model

    def __call__(self, batch: Any) -> Any:
        """Prompts (``id``, ``text``, ``topic``) in, :func:`outcome_schema` rows out (5 per prompt)."""
        import pyarrow as pa
        import ray

        prompts = batch.to_pylist()
        futures = {}
        for continent in CONTINENTS:  # one batched call per continent agent, all at once
            chats = [draft_messages(p["text"], continent) for p in prompts for _ in range(self.samples)]
            futures[continent] = self.agents[continent].respond.remote(
                [c[1:] for c in chats], self.sampling, [c[0]["content"] for c in chats])
        responses = {c: [r.text for r in ray.get(f)] for c, f in futures.items()}
        order = [(c, i, s) for c in CONTINENTS for i in range(len(prompts)) for s in range(self.samples)]
        texts = [responses[c][i * self.samples + s] for c, i, s in order]
        # every sample's six ratings by option scoring, in one call to the judge agent
        judged = rate([(prompts[i]["text"], text) for (_, i, _), text in zip(order, texts)],
                      lambda items: ray.get(self.judge.score_each.remote(items)))
        centroids = {c: continent_centroid(c) for c in CONTINENTS}
        candidates: list[dict[str, list]] = [{c: [] for c in CONTINENTS} for _ in prompts]
        for (continent, i, _), text, (ratings, mass) in zip(order, texts, judged):
            distance = vector_distance(ratings_to_scores(ratings), centroids[continent])
            candidates[i][continent].append({"response": text, "judge_text": describe(ratings, mass),
                                             "ratings": ratings, "valid_mass": mass,
                                             "distance": None if distance is None else round(distance, 6)})
        now = datetime.now(timezone.utc)
        rows = []
        for prompt, cands in zip(prompts, candidates):
            extra = {"prompt_id": prompt["id"], "topic": prompt["topic"], "source": "cultura", "model": self.model,
                     "created_at": now}
            rows += select_rows(prompt["text"], cands, self.max_distance, extra)
        return pa.Table.from_pylist(rows, schema=outcome_schema())


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    """A row with its timestamp as ISO 8601 text (for JSONL)."""
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}


def write_palette(rows: list[dict[str, Any]], out: Path) -> list[Path]:
    """Write rows as ``out/palette.parquet`` and ``out/palette.jsonl``, each through a temporary name."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(rows, schema=palette_schema())
    out.mkdir(parents=True, exist_ok=True)
    parquet, jsonl = out / PARQUET, out / JSONL
    tmp = out / f".{PARQUET}.tmp-{os.getpid()}"
    pq.write_table(table, tmp)
    os.replace(tmp, parquet)
    tmp = out / f".{JSONL}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(_jsonable(row), ensure_ascii=False) + "\n" for row in table.to_pylist())
    os.replace(tmp, jsonl)
    return [parquet, jsonl]


def synthesize_palette(config: Any, out: str | Path, prompts: str = "bundled", *, limit: int | None = None,
                       samples: int | None = None, overwrite: bool = False, progress: bool = False) -> PaletteDataSummary:
    """Synthesize a Palette dataset from ``prompts`` ("bundled", a PRISM conversations JSONL, or any
    JSONL/CSV of prompts) into ``out``; returns the summary.

    ``limit`` uses the first N prompts; ``samples`` overrides ``palette.samples``. An ``out`` already
    holding a dataset needs ``overwrite``. ``out`` and ``prompts`` may be filesystem URIs (``s3://``,
    ``gs://``, ``file://``); a remote ``out`` is written in a local stage and copied there at the end.
    """
    with staged_output(out) as local_out:
        summary = _synthesize(config, local_out, out, prompts, limit, samples, overwrite, progress)
    if is_uri(out):
        summary.out = str(out)
        summary.files = [f"{summary.out}/{Path(f).name}" for f in summary.files]
    return summary


def _synthesize(config: Any, out: Path, out_spec: str | Path, prompts: str, limit: int | None, samples: int | None,
                overwrite: bool, progress: bool) -> PaletteDataSummary:
    """:func:`synthesize_palette` into the local folder ``out`` (``out_spec`` is what the caller named)."""
    import ray

    p, s = config.palette, config.sampling
    if limit is not None and limit < 1:
        raise CulturaError(f"limit must be >= 1, got {limit}")
    samples = samples or p.samples
    if samples < 1:
        raise CulturaError(f"samples must be >= 1, got {samples}")
    items = load_prompts(prompts)[:limit] if limit else load_prompts(prompts)
    if not items:
        raise CulturaError(f"no prompts in {prompts}")
    root = Path(out).expanduser()
    if root.exists() and not root.is_dir():
        raise CulturaError(f"{root} is a file, not a folder")
    if (root / PARQUET).exists() and not overwrite:
        raise CulturaError(f"{root} already holds a Palette dataset; pass --overwrite to replace it")
    root.mkdir(parents=True, exist_ok=True)
    for old in (PARQUET, JSONL):  # an overwritten run's files never sit beside a new manifest
        (root / old).unlink(missing_ok=True)
    params = {"prompts": str(prompts), "limit": limit, "samples": samples, "max_distance": p.max_distance,
              "model": config.engine.model, "engine": config.engine.kind, "max_tokens": p.max_tokens,
              "temperature": p.temperature, "repetition_penalty": s.repetition_penalty}
    manifest = {"stage": "palette-data", "params": params, "status": "running",
                "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    atomic_write_text(root / MANIFEST, json.dumps(manifest, indent=2) + "\n")

    summary = PaletteDataSummary(root, prompts=len(items), samples=len(items) * len(CONTINENTS) * samples)
    judge = Persona(key="judge", name="Hofstede judge", role="assistant", system_prompt=JUDGE_SYSTEM)
    sampling = s.params(max_tokens=p.max_tokens, temperature=p.temperature)
    start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    bar = _progress_bar(len(items)) if progress else None
    pool = None
    try:
        init_ray(config)
        from cultura.storage import warn_if_local

        warn_if_local(out_spec, "--out")
        warn_if_local(None if prompts == "bundled" else prompts, "--prompts")
        check_palette_data_placement(config, len(CONTINENTS) + 1, min(p.workers, math.ceil(len(items) / p.batch_size)))
        pool = start_agents([continent_persona(c) for c in CONTINENTS] + [judge], config)
        ray.data.DataContext.get_current().enable_progress_bars = False
        blocks = max(1, math.ceil(len(items) / p.batch_size))
        ds = ray.data.from_items([{"id": i.id, "text": i.text, "topic": i.topic} for i in items],
                                 override_num_blocks=blocks).map_batches(
            PaletteDataWorker,
            fn_constructor_kwargs={"agents": {c: pool[f"continent:{c}"] for c in CONTINENTS},
                                   "judge": pool["judge"], "sampling": sampling,
                                   "samples": samples, "max_distance": p.max_distance, "model": config.engine.model},
            compute=ray.data.ActorPoolStrategy(size=min(p.workers, blocks)), batch_size=p.batch_size,
            batch_format="pyarrow", num_cpus=0)
        for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
            for row in batch.to_pylist():
                summary.ratings_read += row.pop("ratings_read")
                masses = [c["valid_mass"] for c in row["candidates"] or [] if c.get("valid_mass") is not None]
                summary.judge_mass += sum(masses)
                summary.judged += len(masses)
                state = row.pop("status")
                if state == "kept":
                    rows.append(row)
                else:
                    setattr(summary, f"dropped_{state}", getattr(summary, f"dropped_{state}") + 1)
            if bar is not None:
                bar.update(len(set(batch.column("prompt_id").to_pylist())))
        summary.files = write_palette(rows, root)
        summary.rows = len(rows)
        summary.seconds = time.perf_counter() - start
        manifest.update(status="complete", summary=summary.as_dict())
    except BaseException:
        manifest["status"] = "interrupted"
        raise
    finally:
        if bar is not None:
            bar.close()
        if pool is not None:
            pool.stop()
        atomic_write_text(root / MANIFEST, json.dumps(manifest, indent=2, default=str) + "\n")
        write_palette_card(root, config, prompts, items, summary, manifest["status"])
    return summary


def write_palette_card(root: Path, config: Any, prompts: str | Path, items: Sequence[Any], summary: Any,
                       status: str) -> Path:
    """The dataset's card: the model, the prompts the continent agents answered, the paper, the rows kept."""
    bundled = str(prompts) == "bundled"
    fields = {"stage": "palette-data", "status": status, **provenance(config, "palette"), "prompts": str(prompts),
              "prompt_ids": [i.id for i in items], "rows": summary.rows,
              "data_licence": DATA_LICENCES["bundled"] if bundled else "as the prompt file's source states",
              "config": {"palette": config.palette.model_dump(mode="json"), "sampling": config.sampling.model_dump(mode="json")}}
    body = (f"Cultural Palette's data: {len(items)} prompts answered by the five continent agents, each answer "
            f"kept when the Hofstede judge placed it near its continent; {summary.rows} rows kept ({status}) in "
            f"`{PARQUET}` and `{JSONL}`. `cultura finetune --per continent` trains the continent adapters on them.")
    return write_card(root, "Cultural Palette continent data", fields, body)


def check_palette_data_placement(config: Any, n_agents: int, workers: int) -> None:
    """Fail at once when the continent agents, the judge and the Ray Data workers cannot be placed."""
    fixes = agent_placement_fixes(config, n_agents, cluster_nodes(), "a Palette dataset needs the five continent "
                                  "agents and the judge, so take one of the other fixes")
    check_placement("this palette-data run", [*agent_demands(config, n_agents), Demand("Ray Data workers", workers, {})],
                    fixes)


def _progress_bar(total: int) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="prompt", desc="palette-data", dynamic_ncols=True)


def read_palette(path: str | Path) -> Any:
    """Read a Palette dataset as an Arrow table with :func:`palette_schema`: a run folder (its
    ``palette.parquet``), a ``.parquet`` file, or Palette JSONL (ours or the published files)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path).expanduser()
    if path.is_dir() and (path / PARQUET).is_file():
        path = path / PARQUET
    if path.suffix == ".parquet":
        try:
            return pq.read_table(path, schema=palette_schema())
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError(f"{path}: not a readable Palette Parquet file ({exc})") from None
    return load_palette_jsonl(path)


QUERY_FIELDS = ("query", "prompt", "instruction", "question")
RESPONSE_FIELDS = ("response", "chosen", "output", "answer")
REJECTED_FIELDS = ("rejected_response", "rejected", "rejected_responses")


def _continent_from_name(name: str) -> str | None:
    lowered = name.lower()
    found = [c for c in CONTINENTS if c.lower() in lowered]
    return found[0] if len(found) == 1 else None


def _text_list(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [v for v in value if v.strip()]
    if isinstance(value, list) and all(isinstance(v, dict) for v in value):  # [{"continent":..., "response":...}]
        return [str(next((v[k] for k in RESPONSE_FIELDS if k in v), "")) for v in value]
    raise DataError(f"{where}: expected a string or a list of strings, got {type(value).__name__}")


def load_palette_jsonl(path: str | Path) -> Any:
    """Load Palette JSONL: one file or a folder of ``*.jsonl`` files (the published dataset has one
    per continent) into a :func:`palette_schema` table.

    Each record needs a query (``query``/``prompt``/``instruction``/``question``) and a chosen
    response (``response``/``chosen``/``output``/``answer``); ``rejected_response`` (or ``rejected``)
    may be a string or a list. The continent comes from a ``continent`` field or, failing that, the
    file name (``Asia.jsonl``, ``palette_asia_train.jsonl``). Malformed rows raise DataError naming the
    file, row and field.
    """
    import pyarrow as pa

    root = Path(path).expanduser()
    files = sorted(root.glob("*.jsonl")) if root.is_dir() else [root]
    if not files or not all(f.is_file() for f in files):
        raise DataError(f"{root}: no Palette JSONL file found")
    rows = []
    for file in files:
        default_continent = _continent_from_name(file.stem)
        for number, record in read_jsonl_objects(file):
            where = f"{file}: row {number}"
            query = next((record[k] for k in QUERY_FIELDS if k in record), None)
            response = next((record[k] for k in RESPONSE_FIELDS if k in record), None)
            for name, value, names in (("query", query, QUERY_FIELDS), ("response", response, RESPONSE_FIELDS)):
                if not isinstance(value, str) or not value.strip():
                    raise DataError(f"{where}, field {name!r}: missing or empty (name one of {', '.join(names)})")
            continent = record.get("continent") or default_continent
            wanted = continent.strip().lower() if isinstance(continent, str) else None
            match = next((c for c in CONTINENTS if c.lower() == wanted), None)
            if match is None:
                raise DataError(f"{where}, field 'continent': {continent!r} is not one of {', '.join(CONTINENTS)} "
                                "(and the file name names no single continent)")
            rejected_raw = next((record[k] for k in REJECTED_FIELDS if k in record), None)
            rejected = _text_list(rejected_raw, f"{where}, field 'rejected_response'")
            rows.append({"query": query, "continent": match, "response": response, "rejected_response": rejected,
                         "rejected_continents": _rejected_continents(record, len(rejected)),
                         "prompt_id": str(record["id"]) if "id" in record else None, "topic": record.get("topic"),
                         "source": str(file)})
    return pa.Table.from_pylist(rows, schema=palette_schema())


def _rejected_continents(record: dict[str, Any], count: int) -> list[str]:
    """The rejected responses' continents where the record names them (else an empty list)."""
    names = record.get("rejected_continents")
    if isinstance(names, list) and len(names) == count and all(isinstance(n, str) for n in names):
        return names
    return []


def palette_pairs(table: Any) -> Sequence[dict[str, Any]]:
    """(query, chosen, rejected) preference pairs from a Palette table: one per rejected response."""
    pairs = []
    for row in table.select(["query", "continent", "response", "rejected_response"]).to_pylist():
        for rejected in row["rejected_response"]:
            pairs.append({"query": row["query"], "continent": row["continent"], "chosen": row["response"],
                          "rejected": rejected})
    return pairs
