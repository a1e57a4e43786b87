"""Diversify: embed opinions, cluster them with k-means, keep one per cluster.

Embedding is a Ray Data ``map_batches`` on an actor pool (:class:`EmbedWorker`, the model loaded
once per actor); vectors are L2-normalised. Two ways to group opinions before k-means
(``refine.cluster_by``):

- ``seed`` (CulturePark, the ``paper`` preset): one k-means per culture and seed question, with
  ``k = min(10, n)`` while the culture has up to 500 verified opinions (15 up to 750, 20 beyond), so
  every seed question with a verified opinion keeps at least one representative;
- ``culture``: one k-means over all of a culture's opinions, ``k = n / opinions_per_cluster``.

Each culture's groups are clustered in one Ray task, the cultures in parallel. The representative of
a cluster is its longest member (``longest``, as in the paper) or the member nearest its centroid
(``centroid``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cultura.embeddings import embed, load_embedder
from cultura.pipelines.refine.llm_stage import METRICS, blocks_of
from cultura.ray_utils import actors_that_fit

REPRESENTATIVES = ("centroid", "longest")
CLUSTER_BY = ("seed", "culture")
# ``refine.preset``: the grouping and representative a preset stands for; set fields override them
PRESETS: dict[str, dict[str, str]] = {
    "paper": {"cluster_by": "seed", "representative": "longest"},  # CulturePark's refinement
    "culture": {"cluster_by": "culture", "representative": "centroid"},  # one k-means per culture
}


def clustering_settings(refine_config: Any) -> dict[str, str]:
    """``cluster_by`` and ``representative`` of a RefineConfig: its preset's, unless set."""
    return refine_config.over_preset(PRESETS[refine_config.preset])


def l2_normalise(vectors: Any) -> Any:
    """Rows scaled to unit length (zero rows stay zero), as float32."""
    import numpy as np

    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


class EmbedWorker:
    """Ray Data callable: a batch with a text column in, ``(id, embedding)`` out; one model per actor."""

    def __init__(self, embedder: str = "default", text_column: str = "text", id_column: str = "opinion_id",
                 num_threads: int | None = None, encode_batch_size: int = 64):
        if num_threads:
            import torch

            torch.set_num_threads(num_threads)

        self.model = load_embedder(embedder)
        self.text_column, self.id_column, self.encode_batch_size = text_column, id_column, encode_batch_size

    def __call__(self, batch: Any) -> Any:
        """Embed the batch's texts; the output keeps the id column and adds ``embedding``."""
        import pyarrow as pa

        texts = [str(t) for t in batch.column(self.text_column).to_pylist()]
        vectors = l2_normalise(embed(texts, self.model, batch_size=self.encode_batch_size))
        column = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), vectors.shape[1])
        return pa.table({self.id_column: batch.column(self.id_column), "embedding": column})


def embedding_stage(dataset: Any, embedder: str = "default", *, workers: int = 1, batch_size: int = 256,
                    num_cpus: float = 1.0, text_column: str = "text", id_column: str = "opinion_id") -> Any:
    """The lazy Ray Dataset of ``(id, embedding)`` rows for ``dataset``'s texts."""
    import ray

    threads = max(1, int(num_cpus))
    return dataset.map_batches(
        EmbedWorker, fn_constructor_kwargs={"embedder": embedder, "text_column": text_column,
                                            "id_column": id_column, "num_threads": threads},
        compute=ray.data.ActorPoolStrategy(size=workers), batch_size=batch_size, batch_format="pyarrow",
        num_cpus=num_cpus)


def text_blocks(ids: Sequence[str], texts: Sequence[str], batch_size: int) -> Any:
    """A Ray Dataset of ``(opinion_id, text)`` rows in blocks of ``batch_size``, shortest texts first.

    Sorting by length lets each block pad to nearly its own texts' length, as one ``encode`` over
    everything would (it sorts internally); unsorted 256-row blocks each pad to their longest text.
    """
    import pyarrow as pa

    order = sorted(range(len(ids)), key=lambda i: len(texts[i]))
    table = pa.table({"opinion_id": [ids[i] for i in order], "text": [texts[i] for i in order]})
    return blocks_of(table, batch_size)


def embed_texts(ids: Sequence[str], texts: Sequence[str], embedder: str = "default", *, workers: int = 1,
                batch_size: int = 256, num_cpus: float = 1.0) -> Any:
    """Embed ``texts`` through :func:`embedding_stage`; returns an ``(n, d)`` array in the order of ``ids``."""
    import numpy as np

    if not ids:
        return np.zeros((0, 0), dtype=np.float32)

    workers = min(actors_that_fit(workers, num_cpus), -(-len(ids) // batch_size))
    ds = embedding_stage(text_blocks(ids, texts, batch_size), embedder, workers=workers, batch_size=batch_size,
                         num_cpus=num_cpus)
    found: dict[str, Any] = {}
    for part in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
        column = part.column("embedding").combine_chunks()
        vectors = column.values.to_numpy(zero_copy_only=False).reshape(len(column), -1)
        found.update(zip(part.column("opinion_id").to_pylist(), vectors))
    return np.stack([found[i] for i in ids]).astype(np.float32)


def choose_k(n: int, k: int | str = "auto", per_cluster: int = 50, minimum: int = 1) -> int:
    """Clusters for ``n`` opinions of one culture (``cluster_by: culture``): ``k`` (at most ``n``), or
    for ``"auto"`` round(n / per_cluster) clamped to minimum..n."""
    if n <= 0:
        return 0
    if k == "auto":
        return max(1, min(n, max(minimum, round(n / per_cluster))))
    return max(1, min(int(k), n))


def paper_k(culture_opinions: int) -> int:
    """CulturePark's clusters per seed question for a culture with ``culture_opinions`` verified
    opinions in all: 10 up to 500, 15 up to 750, 20 beyond (the paper's 500 / 750 / 1000)."""
    if culture_opinions <= 500:
        return 10
    return 15 if culture_opinions <= 750 else 20


def group_k(n: int, culture_opinions: int, k: int | str, cluster_by: str, per_cluster: int = 50,
            minimum: int = 1) -> int:
    """Clusters for a group of ``n`` opinions: per seed question (``cluster_by: seed``) ``min(k, n)``
    with ``"auto"`` meaning :func:`paper_k` of the culture's total; per culture :func:`choose_k`."""
    if cluster_by == "seed":
        return min(n, paper_k(culture_opinions) if k == "auto" else int(k))
    return choose_k(n, k, per_cluster, minimum)


@dataclass(frozen=True)
class Clustering:
    """One culture's k-means result: a cluster per opinion, its distance to the centroid, and the
    index of each cluster's representative."""

    labels: tuple[int, ...]
    distances: tuple[float, ...]
    representatives: tuple[int, ...]
    k: int


def cluster(vectors: Any, k: int, representative: str = "centroid", lengths: Sequence[int] | None = None,
            seed: int = 0) -> Clustering:
    """k-means on the (L2-normalised) ``vectors``; one representative per non-empty cluster.

    ``k`` is lowered to the number of distinct vectors (k-means cannot place more centroids).
    ``longest`` picks the member with the largest ``lengths`` value (ties: the nearest the centroid).
    """
    import numpy as np
    from sklearn.cluster import KMeans

    if representative not in REPRESENTATIVES:
        raise ValueError(f"representative must be one of {', '.join(REPRESENTATIVES)}, got {representative!r}")
    vectors = np.asarray(vectors, dtype=np.float32)
    n = len(vectors)
    if n == 0:
        return Clustering((), (), (), 0)
    k = max(1, min(k, len(np.unique(vectors, axis=0))))
    model = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(vectors)
    labels = model.labels_.astype(int)
    distances = np.linalg.norm(vectors - model.cluster_centers_[labels], axis=1)
    lengths = list(lengths) if lengths is not None else [0] * n
    reps = []
    for c in range(k):
        members = np.flatnonzero(labels == c)
        if len(members) == 0:
            continue
        if representative == "longest":
            best = min(members, key=lambda i: (-lengths[i], distances[i], i))
        else:
            best = min(members, key=lambda i: (distances[i], i))
        reps.append(int(best))
    return Clustering(tuple(int(x) for x in labels), tuple(float(d) for d in distances), tuple(sorted(reps)), k)


def cluster_groups(jobs: Sequence[tuple[Any, int, Sequence[int]]], representative: str, seed: int = 0
                   ) -> list[Clustering]:
    """:func:`cluster` for each ``(vectors, k, lengths)`` job, in order (one Ray task runs a culture's)."""
    return [cluster(vectors, k, representative, lengths, seed) for vectors, k, lengths in jobs]


def cluster_cultures(jobs: Mapping[str, Sequence[tuple[Any, int, Sequence[int]]]], representative: str,
                     seed: int = 0, num_cpus: float = 0.5) -> dict[str, list[Clustering]]:
    """Cluster each culture's groups (``(vectors, k, lengths)`` jobs, see :func:`cluster_groups`) in
    its own Ray task, all cultures in parallel."""
    import ray

    task = ray.remote(num_cpus=num_cpus)(_cluster_counted)
    refs = {culture: task.remote(culture, list(groups), representative, seed) for culture, groups in jobs.items()}
    return {culture: ray.get(ref) for culture, ref in refs.items()}


def _cluster_counted(culture: str, *args: Any) -> list[Clustering]:
    """:func:`cluster_groups` in a Ray task, counting the culture's representatives in the metrics."""
    results = cluster_groups(*args)
    METRICS.inc("refine_representatives", sum(len(r.representatives) for r in results), culture=culture)
    return results
