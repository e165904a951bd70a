"""Does one big caller set everyone's latency? A 1-row client beside 1,000-row explain clients.

Issue 14 measured it before: one client sending 1,000-instance explain requests took a
1-row client's p99 from 18 ms to 1,337 ms (four such clients: 5.8 s per request), because
TreeSHAP and scoring ran on the event loop and big requests shared batches with small
ones. Target: the 1-row client's p99 under 50 ms beside a 1,000-row explain client.

Same run, same model (LightGBM, 200 trees x 20 features), ``driftloop serve`` with one
worker pinned to core 0, clients on core 1, 127.0.0.1 only, each phase bounded in time:

  alone      the 1-row client (one request at a time, back to back)
  beside 1   the same while one client sends 1,000-row explain requests back to back
  beside 4   ... four such clients

for this checkout and for a baseline checkout (``--baseline-ref``, a git revision checked
out in a temporary worktree, by default the commit before scoring moved off the loop;
or ``--baseline-src DIR``), and prints each p99 and the ratio ours / baseline.

    python benchmarks/heavy_neighbour.py [--seconds 10] [--baseline-ref REV | --baseline-src DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx2
import numpy as np
import orjson
from serve_http import FEATURES, driftloop_env, free_port, stop, train_model, wait_ready

ROOT = Path(__file__).resolve().parents[1]
BASELINE_REF = "55998e6"  # main before requests were scored off the event loop


def rows(n: int, seed: int) -> list[dict[str, float]]:
    x = np.random.default_rng(seed).normal(size=(n, len(FEATURES))).round(5)
    return [dict(zip(FEATURES, r, strict=True)) for r in x.tolist()]


async def small_client(url: str, until: float, bodies: list[bytes]) -> list[float]:
    latencies: list[float] = []
    async with httpx2.AsyncClient(timeout=60, headers={"content-type": "application/json"}) as c:
        k = 0
        while time.perf_counter() < until:
            started = time.perf_counter()
            r = await c.post(url, content=bodies[k % len(bodies)])
            if r.status_code != 200:
                raise RuntimeError(f"1-row request answered {r.status_code}: {r.text[:200]}")
            latencies.append((time.perf_counter() - started) * 1000.0)
            k += 1
    return latencies


async def heavy_client(url: str, until: float, body: bytes) -> int:
    done = 0
    async with httpx2.AsyncClient(timeout=120, headers={"content-type": "application/json"}) as c:
        while time.perf_counter() < until:
            r = await c.post(url, content=body)
            if r.status_code != 200:
                raise RuntimeError(f"explain request answered {r.status_code}: {r.text[:200]}")
            done += 1
    return done


async def phase(url: str, seconds: float, heavy: int, small: list[bytes], big: bytes) -> dict:
    until = time.perf_counter() + seconds
    heavies = [asyncio.ensure_future(heavy_client(url, until, big)) for _ in range(heavy)]
    await asyncio.sleep(0.5 if heavy else 0)  # the big requests are in flight first
    latencies = await small_client(url, until, small)
    explained = sum(await asyncio.gather(*heavies))
    latencies.sort()
    return {
        "heavy_clients": heavy,
        "small_requests": len(latencies),
        "p50_ms": statistics.median(latencies),
        "p99_ms": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "explain_requests": explained,
    }


def baseline_checkout(args: Any, folder: Path) -> Path:
    if args.baseline_src is not None:
        return Path(args.baseline_src)
    target = folder / "baseline"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(target), args.baseline_ref],
        check=True,
        capture_output=True,
    )
    return target


def serve(folder: Path, env: dict[str, str], name: str) -> tuple[subprocess.Popen[bytes], str]:
    port = str(free_port())
    cmd = ["taskset", "-c", "0", sys.executable, "-m", "driftloop", "serve", "--workers", "1"]
    cmd += ["--host", "127.0.0.1", "--port", port, "--models", str(folder / "models")]
    log = (folder / f"{name}.log").open("wb")
    proc = subprocess.Popen(
        cmd, env=env, cwd=folder, stdout=log, stderr=log, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}/v1/models/fraud/predict"
    body = orjson.dumps({"instances": rows(1, 0)})
    try:
        wait_ready(url, proc, 60, body)
    except RuntimeError:
        stop(proc)
        raise
    return proc, url


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0, help="per phase")
    parser.add_argument("--baseline-ref", default=BASELINE_REF)
    parser.add_argument("--baseline-src", type=Path, default=None)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="driftloop-heavy-bench-"))
    train_model(folder)
    baseline = baseline_checkout(args, folder)
    small = [orjson.dumps({"instances": rows(1, seed)}) for seed in range(200)]
    big = orjson.dumps({"instances": rows(1_000, 7), "options": {"explain": True, "top_k": 3}})
    os.sched_setaffinity(0, {1})  # clients on core 1, the server on core 0
    servers = {
        "ours": driftloop_env(folder),
        "baseline": {**driftloop_env(folder), "PYTHONPATH": str(baseline / "src")},
    }
    print(f"heavy-neighbour benchmark: {args.seconds:.0f} s per phase; baseline {baseline}")
    results: dict[str, list[dict[str, Any]]] = {}
    for name, env in servers.items():
        env = {**env, "DRIFTLOOP_AUDIT__URL": f"sqlite:///{folder / f'audit-{name}.db'}"}
        proc, url = serve(folder, env, name)
        try:
            results[name] = []
            for heavy in (0, 1, 4):
                load = os.getloadavg()[0]
                got = asyncio.run(phase(url, args.seconds, heavy, small, big))
                got["load_average"] = load
                results[name].append(got)
                print(
                    f"  {name:<8} beside {heavy} explain client(s): 1-row p50 "
                    f"{got['p50_ms']:7.1f} ms  p99 {got['p99_ms']:7.1f} ms  "
                    f"({got['small_requests']:,} requests; {got['explain_requests']} explain "
                    f"requests of 1,000 rows; load {load:.2f})",
                    flush=True,
                )
        finally:
            stop(proc)
    print("\n1-row client's p99, ours / baseline (issue 14 target: < 50 ms beside one):")
    for ours, base in zip(results["ours"], results["baseline"], strict=True):
        print(
            f"  beside {ours['heavy_clients']}: {ours['p99_ms']:.1f} ms vs "
            f"{base['p99_ms']:.1f} ms = {ours['p99_ms'] / base['p99_ms']:.1%}"
        )
    out = Path(__file__).parent / "results" / "heavy_neighbour.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"cores": os.cpu_count(), "results": results}, indent=2))
    print(f"wrote {out}")
    if args.baseline_src is None:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(baseline)])


if __name__ == "__main__":
    main()
