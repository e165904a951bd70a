"""What does a traffic policy cost a request, in process and without HTTP?

The same app ``driftloop serve`` builds (LightGBM 200 trees x 20 features, audit log on
SQLite, cache off) is driven through its ASGI interface by ``--concurrency`` tasks, one
row per request, with and without serve_http.py's (b-traffic) policy: a sticky 50/50
A/B by ``customer_id`` and a third version shadowing 10%. Per request it reports the
process's CPU time (every thread: the batcher, the audit writer, the shadow's), and the
ratio of the two arms from the same run (the machine is shared: repeat, read medians).

    python benchmarks/routing_cost.py [--requests N] [--reps N] [--arm plain|traffic]
        [--models DIR]

``--arm`` runs one arm once and prints nothing but its figures: for an instruction
count that a loaded machine does not disturb, run it under callgrind at two request
counts and divide the difference (start-up cancels out)::

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        python benchmarks/routing_cost.py --arm traffic --requests 4000

``--route-loop N`` runs only the routing work of N requests (sticky key, arm, shadow
sample, the copy queued), without the app: under callgrind at N = 0 and N = 200,000 the
difference per request is the routing layer's own instruction count.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson

os.environ.setdefault("OMP_NUM_THREADS", "1")

sys.path.insert(0, str(Path(__file__).parent))
from serve_http import FEATURES, train_model

POLICY = {
    "arms": {"champion": 50, "challenger": 50},
    "sticky_key": "customer_id",
    "shadow": "candidate",
    "shadow_sample": 0.1,
}


def bodies(sticky: bool) -> list[bytes]:
    rows = np.random.default_rng(1).normal(size=(1_000, 20)).round(5)
    out = []
    for i, r in enumerate(rows):
        instance: dict[str, Any] = dict(zip(FEATURES, r.tolist(), strict=True))
        if sticky:
            instance["customer_id"] = i
        out.append(orjson.dumps({"instances": [instance]}))
    return out


async def drive(app: Any, payloads: list[bytes], n: int, concurrency: int) -> int:
    """``n`` requests through ``app``'s ASGI interface; returns how many got a 200."""
    ok = 0
    counter = iter(range(n))

    async def one(body: bytes) -> int:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/v1/models/fraud/predict",
            "raw_path": b"/v1/models/fraud/predict",
            "query_string": b"",
            "root_path": "",
            "headers": [
                (b"host", b"127.0.0.1"),
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
        }
        sent = False
        status = 0

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])

        await app(scope, receive, send)
        return status

    async def worker() -> None:
        nonlocal ok
        for i in counter:
            if await one(payloads[i % len(payloads)]) == 200:
                ok += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ok


async def run_arm(folder: Path, arm: str, n: int, concurrency: int) -> dict[str, float]:
    from driftloop.audit import SqliteAuditLog
    from driftloop.core.config import ServingConfig, TrafficPolicy
    from driftloop.serving import DirectoryModelSource, ServedModel, create_app

    policy = TrafficPolicy.model_validate(POLICY) if arm == "traffic" else None
    served = ServedModel("fraud", "champion", (), traffic=policy)
    audit = SqliteAuditLog(folder / f"audit-{arm}-{time.monotonic_ns()}.db")
    settings = ServingConfig.model_validate({"cache": {"enabled": False}})
    app = create_app(
        [served],
        DirectoryModelSource(folder / "models"),
        settings=settings,
        audit=audit,
        refresh_s=0,
        close_audit=True,
        tune_gc=True,
    )
    payloads = bodies(sticky=arm == "traffic")
    async with app.router.lifespan_context(app):
        await drive(app, payloads, 500, concurrency)  # warm-up: arms' caches, batch sizes
        cpu, wall = time.process_time(), time.perf_counter()
        ok = await drive(app, payloads, n, concurrency)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    if ok != n:
        raise SystemExit(f"{arm}: {n - ok} of {n} requests failed")
    return {"cpu_us": 1e6 * cpu / n, "rps": n / wall}


def route_loop(n: int) -> float:
    """The routing work of ``n`` requests alone, as ``_chain.answer`` does it: the sticky
    key read from the instance, the arm picked, the shadow's sample decided and, when
    sampled, a copy queued (the 1,000 rows of ``bodies``, as wrk sends them). Returns
    ns per request (wall clock: read it under callgrind instead, on a loaded machine)."""
    from collections import deque

    from driftloop.core.config import TrafficPolicy
    from driftloop.serving._traffic import Router

    router = Router(TrafficPolicy.model_validate(POLICY), base="champion")
    instances = [orjson.loads(b)["instances"][0] for b in bodies(sticky=True)]
    deployments = {"champion": object(), "challenger": object()}
    queue: deque[tuple[Any, ...]] = deque()
    ids = ["id"]
    started = time.perf_counter_ns()
    for i in range(n):
        instance = instances[i % 1_000]
        key = router.key_of(instance) if router.sticky_key is not None else None
        arm = router.pick(key)
        chosen = deployments.get(arm)
        if router.shadow is not None and router.shadowed():
            queue.append((chosen, ids, instance))
            if len(queue) > 256:
                queue.clear()
    return (time.perf_counter_ns() - started) / max(n, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--arm", choices=["plain", "traffic"])
    parser.add_argument("--models", type=Path, help="Keep the trained models in this folder.")
    parser.add_argument(
        "--route-loop", type=int, metavar="N", help="Only the routing work, N times (no app)."
    )
    args = parser.parse_args()
    if args.route_loop is not None:
        print(f"routing alone: {route_loop(args.route_loop):.0f} ns/request")
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if args.models is None:
            train_model(folder)
        else:  # trained once by an earlier run (training is the slow part)
            if not (args.models / "models").is_dir():
                train_model(args.models)
            (folder / "models").symlink_to(args.models / "models")
        if args.arm is not None:
            got = asyncio.run(run_arm(folder, args.arm, args.requests, args.concurrency))
            print(f"{args.arm}: {got['cpu_us']:.1f} µs CPU/request, {got['rps']:,.0f} rps")
            return
        ratios, seen = [], {"plain": [], "traffic": []}
        for rep in range(args.reps):
            order = ("plain", "traffic") if rep % 2 == 0 else ("traffic", "plain")
            got = {
                a: asyncio.run(run_arm(folder, a, args.requests, args.concurrency)) for a in order
            }
            for a in order:
                seen[a].append(got[a]["cpu_us"])
            ratios.append(got["plain"]["cpu_us"] / got["traffic"]["cpu_us"])
            print(
                f"rep {rep + 1}: plain {got['plain']['cpu_us']:.1f} µs/req, "
                f"traffic {got['traffic']['cpu_us']:.1f} µs/req, "
                f"plain/traffic {100 * ratios[-1]:.1f}% (load {os.getloadavg()[0]:.1f})",
                flush=True,
            )
        print(
            f"median CPU µs/request: plain {statistics.median(seen['plain']):.1f}, traffic "
            f"{statistics.median(seen['traffic']):.1f}; plain/traffic "
            f"{100 * statistics.median(ratios):.1f}% (range {100 * min(ratios):.1f}-"
            f"{100 * max(ratios):.1f}%)"
        )


if __name__ == "__main__":
    main()
