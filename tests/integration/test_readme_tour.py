"""The README's tour, run as written (a smaller simulation, another port) on the embedded
defaults: every step works and the monitoring result at the end is not empty."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from services import free_port

README = Path(__file__).resolve().parents[2] / "README.md"


def tour_commands() -> str:
    """The bash block under '## A short tour'."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## A short tour", 1)[1]
    match = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert match, "README.md has no bash block under '## A short tour'"
    return match.group(1)


def smaller(commands: str, port: int) -> str:
    """The same commands on a month of 600 cards (not two of 5,000), on a free port."""
    out = commands.replace(
        "--days 60 --customers 5000 --terminals 10000 --drift-at 35",
        "--days 30 --customers 600 --terminals 1200 --drift-at 20",
    ).replace("-60 days", "-30 days")
    out = out.replace("localhost:8000", f"127.0.0.1:{port}").replace("8000", str(port))
    assert "--customers 600" in out, "the tour's simulate command changed: update this test"
    return out


def test_the_readme_tour_runs_as_written_and_ends_with_monitoring_results(
    tmp_path: Path,
) -> None:
    port = free_port()
    script = (
        "set -euo pipefail\n"
        "trap 'kill $(jobs -p) 2>/dev/null; wait' EXIT\n"  # the tour's server, stopped
        + smaller(tour_commands(), port)
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLOOP_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    done = subprocess.run(
        ["bash", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=1_500,  # a bound for a hung step, not a timing assertion
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4_000:]
    # The prediction: a score, the model's decision band and the top contributions.
    answer = re.search(r'\{"model":"fraud".*\}', done.stdout)
    assert answer, output[-4_000:]
    assert '"score":' in answer.group(0)
    assert re.search(r'"decision":"(approve|review|decline)"', answer.group(0))
    assert '"explanation":' in answer.group(0)
    # The backtest went into the audit log, and monitoring judged whole days of it.
    assert "predictions with their event times" in output
    assessed = re.search(r"(\d+) window\(s\) assessed", output)
    assert assessed, output[-4_000:]
    assert int(assessed.group(1)) >= 10
    page = (tmp_path / "fraud" / "report.html").read_text(encoding="utf-8")
    assert re.search(r"no-drift|data-drift|concept-drift", page)
    assert "- to -" not in page
