"""The Ray Data stage of the synthesis: sample every continent agent, judge every sample, select."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from cultura.data.hofstede import CONTINENTS, continent_centroid
from cultura.palette.gate import vector_distance
from cultura.palette.judge import describe, rate, ratings_to_scores
from cultura.palette.meta import draft_messages
from cultura.pipelines.palette_data.schema import outcome_schema
from cultura.pipelines.palette_data.select import select_rows


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
