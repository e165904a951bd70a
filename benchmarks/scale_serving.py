"""Does a second ``driftloop serve`` process behind HAProxy serve more than one alone?

Same run, same model as benchmarks/serve_http.py (LightGBM, 200 trees x 20 features, one
row per request, audit log on), wrk with 64 connections on 127.0.0.1:

  one      one ``driftloop serve`` process (``--workers W``), wrk straight at it
  one_lb   the same process behind HAProxy (what the balancer's hop costs)
  two_lb   two processes (W workers each) behind HAProxy, configured by
           deploy/haproxy/haproxy.cfg (round robin, /readyz checks)

The processes share the audit log (PostgreSQL, a schema made for the run and dropped
after; ``--audit sqlite`` for one SQLite file) as they would on separate machines. Each
repetition runs the arms back to back (in reverse order every other repetition); the
ratios are medians of the per-repetition ratios. Beside rps and p99 each arm reports the
CPU time per request of the serve processes and of HAProxy, from which the output works
out what more cores would give: on this machine the servers, HAProxy and wrk share 2
cores, so a second process finds no idle core to use and the ratio stays near 1.

    python benchmarks/scale_serving.py [--quick] [--reps N] [--seconds S] [--workers W]
        [--audit postgres|sqlite]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

from driftloop import __version__
from driftloop.serving import DirectoryModelSource

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
from serve_http import (
    FEATURES,
    cpu_seconds,
    free_port,
    run_wrk,
    stop,
    wait_ready,
    write_bodies,
)

from balancer import haproxy_binary, shipped_config

HERE = Path(__file__).parent

POSTGRES_URL = os.environ.get(
    "DRIFTLOOP_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
PREDICT = "/v1/models/fraud/predict"
ARMS = ("one", "one_lb", "two_lb")


def _train(folder: Path) -> Path:
    """serve_http.py's model (LightGBM, 200 trees x 20 features) as the champion of
    ``fraud`` in a models folder (without that benchmark's other versions)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20_000, 20))
    y = (x[:, 0] + x[:, 1] * x[:, 2] - x[:, 3] + rng.normal(size=20_000) > 0).astype(int)
    params = {"objective": "binary", "verbose": -1, "num_threads": 2, "num_leaves": 31}
    booster = lgb.train(params, lgb.Dataset(x, y, feature_name=FEATURES), num_boost_round=200)
    DirectoryModelSource.save(folder / "models", "fraud", "1", booster, aliases=["champion"])
    return folder / "models"


def _serve(folder: Path, models: Path, workers: int, audit_url: str) -> tuple[Any, str]:
    """One ``driftloop serve`` in its own folder and process group; (process, base URL)."""
    folder.mkdir()
    port = free_port()
    cmd = [sys.executable, "-m", "driftloop", "serve", "--models", str(models)]
    cmd += ["--workers", str(workers), "--host", "127.0.0.1", "--port", str(port)]
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "DRIFTLOOP_AUDIT__URL": audit_url,
        "DRIFTLOOP_SERVING__CACHE__ENABLED": "false",
    }
    with (folder / "server.log").open("wb") as out:
        proc = subprocess.Popen(
            cmd, env=env, cwd=folder, stdout=out, stderr=out, start_new_session=True
        )
    return proc, f"http://127.0.0.1:{port}"


def _haproxy(folder: Path, servers: list[str]) -> tuple[Any, str]:
    port = free_port()
    config = folder / f"haproxy-{port}.cfg"
    config.write_text(shipped_config(port, free_port(), servers))
    with (folder / f"haproxy-{port}.log").open("wb") as out:
        proc = subprocess.Popen(
            [haproxy_binary(), "-f", str(config), "-db"],
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
    return proc, f"http://127.0.0.1:{port}"


def _postgres_schema() -> tuple[str, Any]:
    """An audit URL on a fresh PostgreSQL schema, and how to drop it."""
    import psycopg

    from driftloop.audit._postgres import libpq_dsn

    schema = f"bench_scale_{uuid.uuid4().hex[:10]}"
    dsn = libpq_dsn(POSTGRES_URL)
    psycopg.connect(dsn, connect_timeout=3).close()  # unreachable: say so before starting

    def drop() -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    return f"{POSTGRES_URL}?schema={schema}", drop


def run(quick: bool, reps: int, seconds: float, workers: int, audit: str = "postgres") -> dict:
    """Measure the three arms ``reps`` times for ``seconds`` each; the result has "arms"
    (per arm: median rps, p99, CPU per request and the runs) and "ratios"."""
    if quick:
        reps, seconds = 1, min(seconds, 5)
    folder = Path(tempfile.mkdtemp(prefix="driftloop-scale-bench-"))
    print(
        f"scale_serving: {workers} worker(s) per process, {reps} x {seconds:.0f} s, "
        f"audit on {audit}; {folder}",
        flush=True,
    )
    models = _train(folder)
    bodies = write_bodies(folder)
    lua = folder / "post.lua"
    first = bodies["inline"].read_bytes().split(b"\n", 1)[0]
    drop = None
    if audit == "postgres":
        audit_url, drop = _postgres_schema()
    else:
        audit_url = f"sqlite:///{folder / 'audit.db'}"
    procs: list[Any] = []
    try:
        servers = [_serve(folder / f"server{i}", models, workers, audit_url) for i in (0, 1)]
        procs += [p for p, _ in servers]
        for proc, base in servers:
            wait_ready(base + PREDICT, proc, 300, first)
        addresses = [base.removeprefix("http://") for _, base in servers]
        one_lb, two_lb = _haproxy(folder, addresses[:1]), _haproxy(folder, addresses)
        procs += [one_lb[0], two_lb[0]]
        urls = {"one": servers[0][1], "one_lb": one_lb[1], "two_lb": two_lb[1]}
        serving = {"one": [servers[0][0]], "one_lb": [servers[0][0]], "two_lb": procs[:2]}
        balancer = {"one": None, "one_lb": one_lb[0], "two_lb": two_lb[0]}
        for arm in ARMS:
            wait_ready(urls[arm] + PREDICT, balancer[arm] or servers[0][0], 300, first)
            run_wrk(urls[arm] + PREDICT, bodies["inline"], lua, 2, pin=False)  # warm-up
        runs: dict[str, list[dict[str, float]]] = {arm: [] for arm in ARMS}
        for rep in range(reps):
            load = os.getloadavg()[0]
            print(f"  rep {rep + 1}/{reps}: load average {load:.2f}", flush=True)
            for arm in ARMS if rep % 2 == 0 else ARMS[::-1]:
                watched = [*serving[arm], *([balancer[arm]] if balancer[arm] else [])]
                before = [cpu_seconds(p.pid)[0] for p in watched]
                one = run_wrk(urls[arm] + PREDICT, bodies["inline"], lua, int(seconds), False)
                after = [cpu_seconds(p.pid)[0] for p in watched]
                used = [b - a for a, b in zip(before, after, strict=True)]
                requests = max(one["requests"], 1.0)
                one["serve_cpu_us_per_request"] = sum(used[: len(serving[arm])]) / requests * 1e6
                one["haproxy_cpu_us_per_request"] = (
                    used[-1] / requests * 1e6 if balancer[arm] else 0.0
                )
                one["load_average"] = load
                runs[arm].append(one)
    finally:
        for proc in procs:
            stop(proc)
        if drop is not None:
            drop()
    return _summarize(runs, workers, seconds, audit)


def _summarize(
    runs: dict[str, list[dict[str, float]]], workers: int, seconds: float, audit: str
) -> dict:
    arms: dict[str, Any] = {}
    for arm, got in runs.items():
        failed = [f"{r['non_2xx']:.0f} non-2xx" for r in got if r["non_2xx"]]
        failed += ["socket errors" for r in got if r["socket_errors"]]
        arms[arm] = {
            "rps": statistics.median(r["rps"] for r in got),
            "p99_ms": statistics.median(r["p99_ms"] for r in got),
            "serve_cpu_us_per_request": statistics.median(
                r["serve_cpu_us_per_request"] for r in got
            ),
            "haproxy_cpu_us_per_request": statistics.median(
                r["haproxy_cpu_us_per_request"] for r in got
            ),
            "rps_runs": [r["rps"] for r in got],
            "load_averages": [r["load_average"] for r in got],
            "failed": "; ".join(failed),
        }
    ratios: dict[str, Any] = {}
    if not any(a["failed"] for a in arms.values()):  # a ratio over errors flatters
        # two_lb over one_lb: the second process alone, the balancer's hop in both arms
        for arm, base in (("two_lb", "one"), ("one_lb", "one"), ("two_lb", "one_lb")):
            per_rep = [
                b / a for a, b in zip(arms[base]["rps_runs"], arms[arm]["rps_runs"], strict=True)
            ]
            ratios[f"{arm}_over_{base}_rps"] = statistics.median(per_rep)
            ratios[f"{arm}_over_{base}_rps_range"] = [min(per_rep), max(per_rep)]
    return {
        "driftloop": __version__,
        "python": platform.python_version(),
        "cores": os.cpu_count(),
        "workers_per_process": workers,
        "seconds": seconds,
        "repetitions": len(runs["one"]),
        "audit": audit,
        "arms": arms,
        "ratios": ratios,
        "paper": _paper(arms),
    }


def _paper(arms: dict[str, Any]) -> dict[str, float]:
    """What more cores would give, from the CPU each request costs here: a serve process
    of W workers on its own W cores answers at most W / (serve CPU per request) requests a
    second, and one HAProxy core forwards 1 / (HAProxy CPU per request); N such processes
    behind one HAProxy scale until that core (or the shared PostgreSQL) is full."""
    serve_us = arms["one"]["serve_cpu_us_per_request"]  # alone: the least contended
    haproxy_us = arms["two_lb"]["haproxy_cpu_us_per_request"]
    if serve_us <= 0 or haproxy_us <= 0:
        return {}
    per_core = 1e6 / serve_us
    balancer_core = 1e6 / haproxy_us
    return {
        "rps_per_serve_core": per_core,
        "rps_per_haproxy_core": balancer_core,
        "processes_one_haproxy_core_feeds": balancer_core / per_core,
    }


def _print(result: dict) -> None:
    arms, ratios = result["arms"], result["ratios"]
    print(
        f"\n{result['cores']} cores, {result['workers_per_process']} worker(s) per process, "
        f"audit on {result['audit']}, {result['repetitions']} x {result['seconds']:.0f} s"
    )
    for arm in ARMS:
        a = arms[arm]
        print(
            f"  {arm:<7} {a['rps']:>8,.0f} rps  p99 {a['p99_ms']:7.2f} ms  serve CPU "
            f"{a['serve_cpu_us_per_request']:5.0f} us/req  haproxy CPU "
            f"{a['haproxy_cpu_us_per_request']:4.0f} us/req  "
            f"(runs {', '.join(f'{r:,.0f}' for r in a['rps_runs'])})"
            + (f"  FAILED: {a['failed']}" if a["failed"] else "")
        )
    if not ratios:
        print("a run had errors: no ratio")
        return
    low, high = ratios["two_lb_over_one_rps_range"]
    print(
        f"two_lb_over_one_rps = {ratios['two_lb_over_one_rps']:.2f}x (per repetition "
        f"{low:.2f}-{high:.2f}); one_lb_over_one_rps = {ratios['one_lb_over_one_rps']:.2f}x; "
        f"two_lb_over_one_lb_rps = {ratios['two_lb_over_one_lb_rps']:.2f}x (the second "
        "process alone)"
    )
    print(
        f"Why near 1 here: the serve processes, HAProxy and wrk share {result['cores']} "
        "cores, so the second process finds no idle core; it only adds capacity where it "
        "brings its own."
    )
    paper = result["paper"]
    if paper:
        print(
            f"On paper: one serve core answers ~{paper['rps_per_serve_core']:,.0f} rps at the "
            f"CPU per request measured; one HAProxy core forwards "
            f"~{paper['rps_per_haproxy_core']:,.0f} rps, so it feeds "
            f"~{paper['processes_one_haproxy_core_feeds']:.0f} single-core processes before "
            "it (or the shared audit database) becomes the limit."
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="one repetition of 5 s")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=1, help="workers per serve process")
    parser.add_argument("--audit", choices=["postgres", "sqlite"], default="postgres")
    args = parser.parse_args()
    missing = [tool for tool in ("haproxy", "wrk") if shutil.which(tool) is None]
    if missing:
        parser.error(f"needs {' and '.join(missing)}: apt-get install {' '.join(missing)}")
    result = run(args.quick, args.reps, args.seconds, args.workers, args.audit)
    _print(result)
    out = HERE / "results" / "scale_serving.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
