"""The transformers engine in float32 and bfloat16 side by side: what the CPU offers, how fast one
linear layer and a batch of option scoring run in each dtype, and whether bfloat16 changes the answers.

    python bench/dtype.py                      # 24 VSM questions x (no persona, german, chinese)
    python bench/dtype.py --personas german --layers-only

Scoring agreement: the same score requests (the VSM 2013 questions, asked plain and as each persona)
go to a float32 and a bfloat16 engine; per request the option distributions are compared by
Jensen-Shannon divergence (log 2) and by their argmax. bfloat16 pays only where torch's oneDNN has a
bfloat16 kernel for this CPU (AVX512-BF16 / AMX); elsewhere it falls back to a slow path, which the
linear-layer line shows first. The last line is
``dtype: bf16/fp32 linear = X; scoring = Y; JSD mean = M max = N; argmax agree = A``, where X and Y
are bfloat16's speed relative to float32 (below 1: slower).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import time


def cpu_line() -> str:
    """The CPU features bfloat16 depends on, as torch and /proc/cpuinfo report them."""
    import torch

    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((set(line.split(":", 1)[1].split()) for line in f if line.startswith("flags")), set())
    except OSError:
        pass
    wanted = sorted(f for f in flags if f.startswith(("amx", "avx512_bf16", "avx512f", "avx_ne_convert")))
    return (f"cpu: torch capability {torch.backends.cpu.get_cpu_capability()}; "
            f"oneDNN bf16 {torch.ops.mkldnn._is_mkldnn_bf16_supported()}; flags {' '.join(wanted) or 'none of amx/avx512'}")


def linear_ms(dtype_name: str, rows: int, repeats: int) -> float:
    """Milliseconds of one ``rows x 576 -> 1536`` linear layer (the default model's MLP shape) in ``dtype``."""
    import torch

    dtype = getattr(torch, dtype_name)
    x, w = torch.randn(rows, 576).to(dtype), torch.randn(1536, 576).to(dtype)
    torch.nn.functional.linear(x, w)
    start = time.perf_counter()
    for _ in range(repeats):
        torch.nn.functional.linear(x, w)
    return (time.perf_counter() - start) / repeats * 1000


def score_requests(personas: list[str]):
    """The VSM questions asked plainly and as each persona, scored over their numbered options."""
    from cultura.data.vsm import load_vsm_items, vsm_prompt
    from cultura.engines.base import ScoreRequest
    from cultura.personas import culture_persona

    requests = []
    for persona in [None, *personas]:
        for item in load_vsm_items():
            messages = [{"role": "user", "content": vsm_prompt(item)}]
            if persona:
                messages.insert(0, {"role": "system", "content": culture_persona(persona).system_prompt})
            requests.append(ScoreRequest.of(messages, [str(i + 1) for i in range(len(item.options))]))
    return requests


def distributions(dtype: str, requests) -> tuple[list[list[float]], float]:
    """Each request's option distribution (normalised over the options) and the scoring seconds."""
    from cultura.config import TransformersEngineConfig
    from cultura.engines import create_engine

    engine = create_engine(TransformersEngineConfig(dtype=dtype))
    try:
        start = time.perf_counter()
        scores = asyncio.run(engine.score_batch(requests))
        seconds = time.perf_counter() - start
    finally:
        asyncio.run(engine.close())
    return [[math.exp(x) / s.valid_mass for x in s.logprobs] for s in scores], seconds


def divergence(p: list[float], q: list[float]) -> float:
    """Jensen-Shannon divergence in bits (0 identical, 1 disjoint)."""
    from cultura.eval.metrics import jensen_shannon_distance

    return jensen_shannon_distance(p, q) ** 2


def main() -> None:
    """Print the CPU line, the linear-layer times, and (unless ``--layers-only``) the scoring comparison."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--personas", default="german,chinese", help="comma-separated cultures asked as personas")
    parser.add_argument("--rows", type=int, default=16, help="rows of the linear-layer timing (tokens in a step)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--layers-only", action="store_true", help="skip the engine scoring comparison")
    args = parser.parse_args()

    print(cpu_line())
    fp32, bf16 = (linear_ms(d, args.rows, args.repeats) for d in ("float32", "bfloat16"))
    print(f"linear {args.rows}x576->1536: float32 {fp32:.2f} ms, bfloat16 {bf16:.2f} ms")
    if args.layers_only:
        print(f"dtype: bf16/fp32 linear = {fp32 / bf16:.2f}x; scoring = n/a; JSD n/a; argmax agree n/a")
        return
    requests = score_requests([p for p in args.personas.split(",") if p])
    (p32, s32), (p16, s16) = distributions("float32", requests), distributions("bfloat16", requests)
    js = [divergence(p, q) for p, q in zip(p32, p16)]
    agree = sum(p.index(max(p)) == q.index(max(q)) for p, q in zip(p32, p16)) / len(js)
    print(f"scoring {len(requests)} requests: float32 {s32:.1f} s, bfloat16 {s16:.1f} s")
    print(f"dtype: bf16/fp32 linear = {fp32 / bf16:.2f}x; scoring = {s32 / s16:.2f}x; "
          f"JSD mean = {sum(js) / len(js):.5f} max = {max(js):.5f}; argmax agree = {agree:.3f}")


if __name__ == "__main__":
    main()
