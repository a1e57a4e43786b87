"""Benchmark the Serve app: ``palette`` against one continent agent, at concurrency 1 and 8.

Starts the app on the local Ray (or measures a running one with --url), sends a bounded number of
requests per model and concurrency over loopback with the official ``openai`` client, and prints
p50/p99 of latency, of time to first token (TTFT) and of time per output token (TPOT), requests/s
and errors, then the ratios (palette / single agent) last. TTFT and TPOT are the server's own
(its ``Server-Timing`` header): a streamed answer is sent once it is complete, so a streaming
client would see its first content at the whole latency.
Target: palette p50 <= 2.5x the single agent's at concurrency 1 (the drafts run in parallel), no errors.

``--load SECONDS`` runs the bounded load test instead: ``--clients`` clients send ``palette``
requests back to back for SECONDS (at most ``--max-load-requests``), and print requests/s, p50/p99
and errors. With ``--kill-continent NAME`` one replica of that ContinentAgent is killed a third of
the way in; the errors after the kill and the seconds until Serve runs its successor are printed.

``--abandon N`` measures abandoned work instead: the unloaded latency of ``--follow`` requests one
after another, then N streaming requests (``--abandon-tokens`` each) whose clients hang up after
their first chunk, then the latency of the ``--follow`` requests that come next; with the work
cancelled down to the engine the two stay close.

    python bench/serve.py                          # default model, max_tokens 32, 12 requests per cell
    python bench/serve.py --load 60 --clients 8 --kill-continent Europe
    python bench/serve.py --abandon 16             # 16 abandoned streams of 512 tokens, model base
    python bench/serve.py --url http://127.0.0.1:8000/v1 --api-key $CULTURA_API_KEY
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

for _key, _value in {"HF_HUB_OFFLINE": "1", "RAY_AUTH_MODE": "disabled", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
                     "OMP_WAIT_POLICY": "PASSIVE"}.items():
    os.environ.setdefault(_key, _value)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=None, help="cultura YAML config (default: the defaults)")
    parser.add_argument("--url", default=None, help="measure a running app at this /v1 URL instead of starting one")
    parser.add_argument("--api-key", default=os.environ.get("CULTURA_API_KEY", "none"))
    parser.add_argument("--continent", default="Europe", help="the single agent to compare with")
    parser.add_argument("--country", default="Germany", help="target country of every request")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--requests", type=int, default=12, help="requests per model and concurrency")
    parser.add_argument("--concurrency", default="1,8", help="comma-separated concurrency levels")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per request")
    parser.add_argument("--load", type=float, default=0, help="run the load test for this many seconds instead")
    parser.add_argument("--clients", type=int, default=8, help="load test: concurrent clients")
    parser.add_argument("--max-load-requests", type=int, default=2000, help="load test: bound on requests")
    parser.add_argument("--kill-continent", default=None, help="load test: kill this ContinentAgent's replica")
    parser.add_argument("--abandon", type=int, default=0, help="abandon this many streams after their first chunk")
    parser.add_argument("--abandon-model", default="base", help="abandon test: the model the streams ask")
    parser.add_argument("--abandon-tokens", type=int, default=512, help="abandon test: max_tokens of each stream")
    parser.add_argument("--follow", type=int, default=5, help="abandon test: requests timed before and after")
    return parser.parse_args()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_app(config_path: str | None) -> tuple[str, str]:
    """Start the app on a free loopback port; returns (url, app name)."""
    from cultura.config import load_config
    from cultura.serve.app import start

    config = load_config(config_path, {"serve.port": free_port(), "serve.host": "127.0.0.1", "serve.api_key": "bench"})
    return start(config), config.serve.app_name


def prompts() -> list[str]:
    from cultura.data.prompts import load_prompts

    return [p.text for p in load_prompts("bundled")[:24]]


def percentile(sorted_values: list[float], q: float) -> float:
    """The nearest-rank percentile ``q`` (0-1) of sorted values (NaN when empty)."""
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, max(0, round(q * len(sorted_values)) - 1))]


def ask(client, model: str, text: str, args: argparse.Namespace) -> tuple[float, float | None, float | None]:
    """One non-streaming request: (latency, server TTFT, server TPOT) in seconds, from its
    ``Server-Timing`` header (None where the server did not time the answer)."""
    start = time.perf_counter()
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": text}], max_tokens=args.max_tokens,
        extra_body={"country": args.country})
    raw.parse()
    latency = time.perf_counter() - start
    timing = dict(part.strip().split(";dur=", 1) for part in raw.headers.get("server-timing", "").split(",") if ";dur=" in part)
    seconds = {name: float(value) / 1000 for name, value in timing.items()}
    return latency, seconds.get("ttft"), seconds.get("tpot")


def spread(values: list[float | None]) -> tuple[float, float]:
    """(p50, p99) of the values that are not None (NaN when none are)."""
    known = sorted(v for v in values if v is not None)
    return percentile(known, 0.5), percentile(known, 0.99)


def run_load(client, texts: list[str], args: argparse.Namespace, app_name: str | None) -> None:
    """``args.clients`` clients sending ``palette`` requests for ``args.load`` seconds; optionally a replica kill."""
    import threading

    results: list[tuple[float, float | None]] = []  # (sent at, latency or None for an error)
    lock = threading.Lock()
    start = time.perf_counter()
    deadline = start + args.load

    def client_loop(worker: int) -> None:
        i = worker
        while time.perf_counter() < deadline:
            with lock:
                if len(results) >= args.max_load_requests:
                    return
            sent = time.perf_counter()
            try:
                outcome = ask(client, "palette", texts[i % len(texts)], args)[0]
            except Exception as exc:  # counted, reported below
                print(f"  error: {type(exc).__name__}: {str(exc)[:160]}")
                outcome = None
            with lock:
                results.append((sent - start, outcome))
            i += args.clients

    killed_at, recovery = None, None
    threads = [threading.Thread(target=client_loop, args=(w,)) for w in range(args.clients)]
    for t in threads:
        t.start()
    if args.kill_continent:
        from cultura.serve.app import continent_deployment
        from cultura.serve.replicas import kill_replica, wait_for_replacement

        if not app_name:
            raise SystemExit("--kill-continent needs the app started by this script (no --url)")
        time.sleep(args.load / 3)
        deployment = continent_deployment(args.kill_continent)
        killed_at = time.perf_counter() - start
        victim = kill_replica(app_name, deployment)
        recovery = wait_for_replacement(app_name, deployment, victim, timeout=args.load)
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    latencies = sorted(r for _, r in results if r is not None)
    errors = sum(r is None for _, r in results)
    print(f"\nload: {args.clients} clients, {args.load:.0f} s, max_tokens={args.max_tokens}: {len(results)} requests, "
          f"{len(latencies) / wall:.2f} req/s, p50 {percentile(latencies, 0.5):.2f} s, "
          f"p99 {percentile(latencies, 0.99):.2f} s, errors {errors} ({errors / max(1, len(results)):.1%})")
    if killed_at is not None:
        after = [r for sent, r in results if sent >= killed_at]
        replaced = f"{recovery:.1f} s" if recovery is not None else f"not within {args.load:.0f} s"
        print(f"replica of continent/{args.kill_continent} killed at {killed_at:.1f} s: successor running after "
              f"{replaced}; {sum(r is None for r in after)} errors among the {len(after)} requests sent after the kill")


def abandon_stream(url: str, api_key: str, body: dict, timeout: float) -> bool:
    """Send a streaming request, read its first chunk and hang up; True if a chunk came."""
    import httpx

    with httpx.Client(timeout=timeout, headers={"Authorization": f"Bearer {api_key}"}) as session:
        with session.stream("POST", f"{url}/chat/completions", json=dict(body, stream=True)) as response:
            for line in response.iter_lines():
                if line.startswith("data:"):
                    return True
    return False


def run_abandon(client, url: str, texts: list[str], args: argparse.Namespace, app_name: str | None) -> None:
    """``args.follow`` timed requests, ``args.abandon`` streams abandoned after their first chunk
    (all at once), then ``args.follow`` timed requests again; prints both latencies side by side."""
    model = args.abandon_model

    def timed(i: int) -> float:
        return ask(client, model, texts[i % len(texts)], args)[0]

    before = [timed(i) for i in range(args.follow)]
    engine = engine_info(app_name)
    bodies = [{"model": model, "messages": [{"role": "user", "content": f"Tell a very long story. {texts[i % len(texts)]}"}],
               "max_tokens": args.abandon_tokens, "country": args.country} for i in range(args.abandon)]
    started = time.perf_counter()
    with ThreadPoolExecutor(args.abandon) as pool:
        chunks = list(pool.map(lambda b: abandon_stream(url, args.api_key, b, args.timeout), bodies))
    hung_up = time.perf_counter() - started
    after = [timed(i) for i in range(args.follow)]
    print(f"\nabandon: {sum(chunks)}/{args.abandon} streams of {model} (max_tokens {args.abandon_tokens}) hung up "
          f"after their first chunk within {hung_up:.2f} s")
    print(f"unloaded:           p50 {statistics.median(before):.2f} s, max {max(before):.2f} s "
          f"({args.follow} requests, max_tokens {args.max_tokens})")
    print(f"after the hang-ups: p50 {statistics.median(after):.2f} s, max {max(after):.2f} s "
          f"({statistics.median(after) / statistics.median(before):.2f}x unloaded); first {after[0]:.2f} s")
    now = engine_info(app_name)
    if engine and now:
        rows = now["decode"]["decode_rows"] - engine["decode"]["decode_rows"]
        print(f"engine: {now['rows_cancelled'] - engine['rows_cancelled']} rows cancelled in its queue or decode loop, "
              f"{rows} row-steps decoded in all (the abandoned streams alone would take up to "
              f"{args.abandon * args.abandon_tokens})")


def engine_info(app_name: str | None) -> dict | None:
    """The Engine deployment's figures (``cultura.engines.describe``) when this script started the app."""
    if not app_name:
        return None
    from ray import serve

    info = serve.get_deployment_handle("Engine", app_name).info.remote().result()
    return info if info.get("decode") else None


def run_cell(client, model: str, texts: list[str], args: argparse.Namespace, concurrency: int) -> dict:
    """``args.requests`` requests to ``model`` with ``concurrency`` in flight: p50/p99 of latency,
    TTFT and TPOT, errors, requests/s."""
    def one(i: int) -> tuple[float, float | None, float | None] | None:
        try:
            return ask(client, model, texts[i % len(texts)], args)
        except Exception as exc:  # counted, reported below
            print(f"  error ({model}): {type(exc).__name__}: {str(exc)[:160]}")
            return None

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(one, range(args.requests)))
    wall = time.perf_counter() - start
    done = [r for r in results if r is not None]
    p50, p99 = spread([r[0] for r in done])
    ttft, tpot = spread([r[1] for r in done]), spread([r[2] for r in done])
    return {"model": model, "concurrency": concurrency, "ok": len(done), "errors": results.count(None),
            "p50": p50, "p99": p99, "ttft": ttft, "tpot": tpot, "rps": len(done) / wall}


def main() -> None:
    args = parse_args()
    from openai import OpenAI

    app_name = None
    if args.url:
        url = args.url
    else:
        started = time.perf_counter()
        url, app_name = start_app(args.config)
        args.api_key = "bench"
        print(f"app ready at {url} in {time.perf_counter() - started:.0f} s")
    client = OpenAI(base_url=url, api_key=args.api_key, max_retries=0, timeout=args.timeout)
    single = f"continent/{args.continent}"
    texts = prompts()
    try:
        for model in ("palette", single):  # warm-up: adapters, batcher, first-call costs
            ask(client, model, texts[0], args)
        if args.load:
            run_load(client, texts, args, app_name)
            return
        if args.abandon:
            run_abandon(client, url, texts, args, app_name)
            return
        rows = []
        for concurrency in [int(c) for c in args.concurrency.split(",")]:
            for model in ("palette", single):
                row = run_cell(client, model, texts, args, concurrency)
                rows.append(row)
                print(f"{model:>18}  c={concurrency:<3} ok={row['ok']:<3} errors={row['errors']:<3} "
                      f"p50={row['p50']:.2f}s  p99={row['p99']:.2f}s  TTFT p50={row['ttft'][0]:.2f}s "
                      f"p99={row['ttft'][1]:.2f}s  TPOT p50={row['tpot'][0] * 1000:.0f}ms "
                      f"p99={row['tpot'][1] * 1000:.0f}ms  {row['rps']:.2f} req/s", flush=True)
    finally:
        if app_name:
            from ray import serve

            serve.delete(app_name)
            serve.shutdown()
    print(f"\nmax_tokens={args.max_tokens}, {args.requests} requests per cell, single agent = {single}")
    for concurrency in sorted({r["concurrency"] for r in rows}):
        pal = next(r for r in rows if r["model"] == "palette" and r["concurrency"] == concurrency)
        one = next(r for r in rows if r["model"] == single and r["concurrency"] == concurrency)
        print(f"ratio c={concurrency}: palette/single p50 {pal['p50'] / one['p50']:.2f}x, "
              f"p99 {pal['p99'] / one['p99']:.2f}x, TTFT p50 {pal['ttft'][0] / one['ttft'][0]:.2f}x, "
              f"req/s {pal['rps'] / one['rps']:.2f}x")
    first = min(r["concurrency"] for r in rows)
    pal = next(r for r in rows if r["model"] == "palette" and r["concurrency"] == first)
    one = next(r for r in rows if r["model"] == single and r["concurrency"] == first)
    errors = sum(r["errors"] for r in rows)
    print(f"target: palette p50 <= 2.5x single at c={first}: {pal['p50'] / one['p50']:.2f}x "
          f"({'met' if pal['p50'] <= 2.5 * one['p50'] else 'missed'}); errors: {errors}")


if __name__ == "__main__":
    main()
