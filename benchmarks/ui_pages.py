"""Server time of each dashboard page on a project with 100,000 audited predictions.

The project is tests/ui_world.py's (three versions, a traffic policy, twelve days of
predictions with planted drift, monitored daily, a materialized feature view), with
``--predictions`` rows. Each page is asked ``--repeat`` times in process (Starlette's
TestClient: no network) after one warm-up. Server time is measured inside the app, from
the request's arrival to its last body byte (the client's own work is not counted); its
median and worst are printed against the 100 ms target, with the load average, and
written to benchmarks/results/ui_pages.json.

With ``--keys`` the project runs under ``serving.auth = "keys"``: every page is asked with
an admin key of the models' tenant, logged in once (the key is checked on every request).

    python benchmarks/ui_pages.py [--predictions 100000] [--repeat 20] [--keys]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from starlette.testclient import TestClient
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from driftloop.core.config import load_settings
from driftloop.registry import Registry
from driftloop.ui import standalone_ui

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
from ui_world import MODEL, fill_project

TARGET_MS = 100.0


class ServerTime:
    """Wraps an ASGI app: the milliseconds from each request's arrival to the end of its
    response body, appended to ``self.ms``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.ms: list[float] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()

        async def timed(message: Message) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                self.ms.append((time.perf_counter() - t0) * 1000)

        await self.app(scope, receive, timed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predictions", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--keys", action="store_true", help="serving.auth = keys, logged in")
    args = parser.parse_args()
    started = time.perf_counter()
    world = fill_project(Path(tempfile.mkdtemp(prefix="ui-bench-")), predictions=args.predictions)
    print(f"project with {args.predictions:,} predictions in {time.perf_counter() - started:.0f} s")
    pages = {
        "overview": "/ui/",
        "models": "/ui/models",
        "model": f"/ui/models/{MODEL}",
        "version": f"/ui/models/{MODEL}/v/2",
        "drift": f"/ui/drift/{MODEL}",
        "loop": f"/ui/loop/{MODEL}",
        "features": "/ui/features",
        "predictions (newest)": "/ui/predictions",
        "prediction by id": f"/ui/predictions?id={world.explained_id}",
        "predictions by entity": f"/ui/predictions?entity=applicant_id={world.entity_value}",
        "promote (confirm)": f"/ui/models/{MODEL}/promote?alias=champion&version=3",
        "traffic (last day)": "/ui/traffic",
        "traffic (all 12 days)": "/ui/traffic?days=30",
    }
    settings, secret = world.settings, None
    if args.keys:
        toml = world.root / "driftloop.toml"
        toml.write_text(toml.read_text() + '\n[serving]\nauth = "keys"\n')
        settings = load_settings(toml, environ={})
        registry = Registry.from_settings(settings)
        try:
            secret = registry.keys.create("default", ["read", "admin"], name="b", who="b")[1]
        finally:
            registry.close()
    timed = ServerTime(standalone_ui(settings))
    results = {}
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (shared machine)")
    with TestClient(timed) as client:
        if secret is not None:
            assert client.post("/ui/login", data={"key": secret}).status_code == 200
        print(f"{'page':<24}{'median ms':>10}{'max ms':>9}{'KB':>7}  target {TARGET_MS:g} ms")
        for name, path in pages.items():
            size = len(client.get(path).content)  # warm-up: opens the parts
            timed.ms.clear()
            for _ in range(args.repeat):
                response = client.get(path)
                assert response.status_code == 200, (path, response.status_code)
            median, worst = statistics.median(timed.ms), max(timed.ms)
            verdict = "ok" if median < TARGET_MS else "OVER"
            print(f"{name:<24}{median:>10.1f}{worst:>9.1f}{size / 1024:>7.0f}  {verdict}")
            results[name] = {"path": path, "median_ms": median, "max_ms": worst, "bytes": size}
    out = Path(__file__).parent / "results" / "ui_pages.json"
    out.parent.mkdir(exist_ok=True)
    meta = {"predictions": args.predictions, "repeat": args.repeat, "keys": args.keys,
            "cores": os.cpu_count()}  # fmt: skip
    out.write_text(json.dumps({**meta, "load": load, "target_ms": TARGET_MS, "pages": results}))


if __name__ == "__main__":
    main()
