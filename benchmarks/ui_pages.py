"""Server time of each dashboard page on a project with 100,000 audited predictions.

The project is tests/ui_world.py's (three versions, a traffic policy, twelve days of
predictions with planted drift, monitored daily, a materialized feature view), with
``--predictions`` rows. Each page is asked ``--repeat`` times in process (Starlette's
TestClient: no network) after one warm-up; the median and the worst are printed.

    python benchmarks/ui_pages.py [--predictions 100000] [--repeat 20]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from starlette.testclient import TestClient

from driftloop.ui import standalone_ui

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
from ui_world import MODEL, fill_project


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predictions", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
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
        "traffic (last day)": "/ui/traffic",
        "traffic (all 12 days)": "/ui/traffic?days=30",
    }
    with TestClient(standalone_ui(world.settings)) as client:
        print(f"{'page':<24}{'median ms':>10}{'max ms':>9}{'KB':>7}")
        for name, path in pages.items():
            size = len(client.get(path).content)  # warm-up: opens the parts
            times = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                response = client.get(path)
                times.append((time.perf_counter() - t0) * 1000)
                assert response.status_code == 200, (path, response.status_code)
            median = statistics.median(times)
            print(f"{name:<24}{median:>10.1f}{max(times):>9.1f}{size / 1024:>7.0f}")


if __name__ == "__main__":
    main()
