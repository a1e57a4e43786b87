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
from cultura.data.hofstede import CONTINENTS, DIMENSIONS
from cultura.data.prompts import load_prompts
from cultura.errors import CulturaError
from cultura.palette.judge import JUDGE_SYSTEM
from cultura.personas import Persona, continent_persona
from cultura.pipelines.palette_data.schema import JSONL, MANIFEST, PARQUET, palette_schema
from cultura.pipelines.palette_data.worker import PaletteDataWorker
from cultura.pipelines.writer import atomic_write_text
from cultura.placement import Demand, check_placement, cluster_nodes
from cultura.ray_utils import init_ray
from cultura.storage import is_uri, staged_output


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
