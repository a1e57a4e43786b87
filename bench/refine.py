"""Embedding throughput of refinement's Ray Data stage against plain ``SentenceTransformer.encode``.

    python bench/refine.py                       # 10,000 opinions, the bundled all-MiniLM-L6-v2
    python bench/refine.py --workers 1 --num-cpus 2    # one two-thread actor instead of two one-CPU actors
    python bench/refine.py --n 2000 --opinions runs/ref1/opinions.parquet

The opinions are ``--opinions`` (an ``opinions.parquet`` of ``cultura refine``; its texts are
repeated up to ``--n``) or ``--n`` opinion-like sentences built from the bundled seeds and countries.
Plain: the model loaded in this process (as many torch threads as the actors have CPUs in all), one
warm-up call, then ``encode`` over all texts (timed twice, before and after the Ray Data run; the
better run counts). Ray Data: :func:`cultura.pipelines.refine.diversify.embedding_stage` on an actor pool
of ``--workers`` actors with ``--num-cpus`` CPUs each (default: the refine config's two one-CPU
actors). Reported: end-to-end (actor start and model load included) and steady state (from the
first batch out to the last, so actor start is excluded). The last line is the steady-state ratio
(target >= 0.85).
"""

from __future__ import annotations

import argparse
import os
import time


def synthetic_opinions(n: int) -> list[str]:
    """``n`` distinct opinion-like sentences from the bundled seeds and Hofstede countries."""
    from cultura.data.hofstede import countries
    from cultura.data.seed_files import load_seeds

    seeds = load_seeds("bundled")
    names = countries()
    verbs = ["think that", "often say that", "mostly agree that", "rarely believe that", "tend to feel that"]
    out = []
    i = 0
    while len(out) < n:
        seed, country, verb = seeds[i % len(seeds)], names[(i // len(seeds)) % len(names)], verbs[i % len(verbs)]
        option = seed.options[i % len(seed.options)]
        topic = seed.text.rstrip("?.").lower()
        out.append(f"People in {country} {verb} the answer to '{topic}' is '{option.lower()}' in everyday life.")
        i += 1
    return out


def opinions_from(path: str, n: int) -> list[str]:
    """The ``text`` column of an opinions.parquet, repeated (and numbered) up to ``n`` texts."""
    import pyarrow.parquet as pq

    texts = [t for t in pq.read_table(path, columns=["text"]).column("text").to_pylist() if t]
    if not texts:
        raise SystemExit(f"{path} holds no opinion texts")
    return [texts[i % len(texts)] + ("" if i < len(texts) else f" ({i // len(texts)})") for i in range(n)]


def plain_encode(texts: list[str], embedder: str, threads: int, encode_batch: int) -> float:
    """Opinions per second of ``SentenceTransformer.encode`` in this process (model load not timed)."""
    import torch

    from cultura.embeddings import embed, load_embedder

    torch.set_num_threads(threads)
    model = load_embedder(embedder)
    embed(texts[:encode_batch], model, batch_size=encode_batch)  # warm-up
    start = time.perf_counter()
    vectors = embed(texts, model, batch_size=encode_batch)
    seconds = time.perf_counter() - start
    assert vectors.shape[0] == len(texts)
    return len(texts) / seconds


def ray_data_encode(texts: list[str], embedder: str, workers: int, num_cpus: float, batch_size: int) -> tuple[float, float]:
    """(end-to-end, steady-state) opinions per second through the Ray Data embedding stage."""
    from cultura.pipelines.refine.diversify import embedding_stage, text_blocks

    start = time.perf_counter()
    ds = embedding_stage(text_blocks([str(i) for i in range(len(texts))], texts, batch_size), embedder,
                         workers=workers, batch_size=batch_size, num_cpus=num_cpus)
    first_at, first_rows, rows = None, 0, 0
    for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
        rows += batch.num_rows
        if first_at is None:
            first_at, first_rows = time.perf_counter(), batch.num_rows
    end = time.perf_counter()
    assert rows == len(texts), (rows, len(texts))
    steady = (rows - first_rows) / (end - first_at) if end > first_at else float("nan")
    return rows / (end - start), steady


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10000, help="opinions to embed (default 10000)")
    parser.add_argument("--opinions", help="an opinions.parquet to take the texts from (default: synthetic)")
    parser.add_argument("--embedder", default="default", help="sentence-transformers model (default: bundled MiniLM)")
    parser.add_argument("--workers", type=int, default=None,
                        help="Ray Data embedding actors (default: refine.embed_workers of the default config)")
    parser.add_argument("--num-cpus", type=float, default=None,
                        help="CPUs per actor (default: refine.embed_num_cpus); the plain run gets workers x CPUs threads")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="opinions per Ray Data batch (default: refine.embed_batch_size)")
    parser.add_argument("--encode-batch", type=int, default=64, help="encode() batch size (default 64)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from cultura.config import load_config

    defaults = load_config(None).refine
    args.workers = args.workers or defaults.embed_workers
    args.num_cpus = args.num_cpus or defaults.embed_num_cpus
    args.batch_size = args.batch_size or defaults.embed_batch_size

    texts = opinions_from(args.opinions, args.n) if args.opinions else synthetic_opinions(args.n)
    threads = max(1, int(args.num_cpus * args.workers))
    print(f"opinions {len(texts)}, embedder {args.embedder}, {args.workers} actor(s) x {args.num_cpus:g} CPUs, "
          f"batch {args.batch_size}", flush=True)
    plain_before = plain_encode(texts, args.embedder, threads, args.encode_batch)
    print(f"plain encode (before)        {plain_before:9.1f} opinions/s", flush=True)

    from cultura.ray_utils import init_ray

    init_ray(num_cpus=threads)
    end_to_end, steady = ray_data_encode(texts, args.embedder, args.workers, args.num_cpus, args.batch_size)
    import ray

    ray.shutdown()
    plain_after = plain_encode(texts, args.embedder, threads, args.encode_batch)
    plain = max(plain_before, plain_after)
    print(f"plain encode (after)         {plain_after:9.1f} opinions/s")
    print(f"ray data, end-to-end         {end_to_end:9.1f} opinions/s (actor start and model load included)")
    print(f"ray data, steady state       {steady:9.1f} opinions/s (first batch out to last)")
    print(f"ratio end-to-end / plain     {end_to_end / plain:9.3f}")
    print(f"ratio steady / plain         {steady / plain:9.3f}")


if __name__ == "__main__":
    main()
