"""A broken challenger at a 25% canary, under load over HTTP: does any request fail?

A real uvicorn server on 127.0.0.1 serves ``fraud`` with a traffic policy of 75% champion
and 25% challenger, where the challenger loads fine and then raises on every row (a bad
release). Clients send N one-row requests, C at a time, and the script prints how many
failed (the answer the issue asks for: none), how the canary's requests were answered,
and the challenger's breaker.

    python benchmarks/broken_canary.py [--requests 5000] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx2
import numpy as np
import uvicorn

from driftloop.audit import SqliteAuditLog
from driftloop.core.config import ServingConfig, TrafficPolicy
from driftloop.serving import InMemoryModelSource, ServedModel, create_app

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
from services import free_port
from serving_helpers import row, train


def broken_source() -> tuple[InMemoryModelSource, list[int]]:
    source = InMemoryModelSource()
    source.add("fraud", "1", train(1), aliases=["champion"])
    source.add("fraud", "2", train(2), aliases=["challenger"])
    model = source.load("fraud", "2")
    original, calls = model.predict, [0]

    def predict(rows: np.ndarray) -> np.ndarray:
        if np.isnan(rows).all():
            return original(rows)  # the warm-up at load passes: the release looks fine
        calls[0] += 1
        raise RuntimeError("challenger v2 is broken")

    model.predict = predict  # type: ignore[method-assign]
    source.add("fraud", "2", model)
    return source, calls


async def load(base: str, n: int, concurrency: int) -> list[tuple[int, dict[str, Any]]]:
    results: list[tuple[int, dict[str, Any]]] = []
    todo = iter(range(n))

    async def client() -> None:
        async with httpx2.AsyncClient(base_url=base, timeout=30) as http:
            for i in todo:
                response = await http.post(
                    "/v1/models/fraud/predict", json={"instances": [row(i % 1000)]}
                )
                results.append((response.status_code, response.json()))

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=5_000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    source, calls = broken_source()
    folder = Path(tempfile.mkdtemp(prefix="driftloop-canary-"))
    audit = SqliteAuditLog(folder / "audit.db")
    app = create_app(
        [ServedModel("fraud", traffic=TrafficPolicy(arms={"champion": 75, "challenger": 25}))],
        source,
        settings=ServingConfig.model_validate({"cache": {"enabled": False}}),
        audit=audit,
        refresh_s=0,
        spool=folder / "spool",
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", loop="uvloop")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    started = time.perf_counter()
    results = asyncio.run(load(f"http://127.0.0.1:{port}", args.requests, args.concurrency))
    seconds = time.perf_counter() - started
    metrics = httpx2.get(f"http://127.0.0.1:{port}/metrics").text
    server.should_exit = True
    thread.join(30)
    failed = [s for s, _ in results if s != 200]
    routes = collections.Counter(
        (p["route"]["arm"], p["route"]["link"], p["version"]) for s, p in results if s == 200
    )
    canary = sum(n for (arm, _, _), n in routes.items() if arm == "challenger")
    audited = sum(
        1
        for s, p in results
        if s == 200 and audit.get(p["predictions"][0]["prediction_id"]).version == p["version"]
    )
    audit.close()
    print(f"{len(results)} requests in {seconds:.1f} s, {args.concurrency} at a time")
    print(f"failed responses: {len(failed)}")
    print(f"routed to the challenger: {canary} ({canary / len(results):.1%})")
    for (arm, link, version), n in sorted(routes.items()):
        print(f"  arm {arm:<10} answered by {link:<8} (v{version}): {n}")
    print(f"calls the broken challenger got before its breaker opened: {calls[0]}")
    state = [line for line in metrics.splitlines() if line.startswith("driftloop_breaker_state{")]
    print("breakers: " + "; ".join(state))
    print(f"answers found in the audit log under the version that answered: {audited}")


if __name__ == "__main__":
    main()
