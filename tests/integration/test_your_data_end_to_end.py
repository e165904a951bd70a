"""A user's own table, from ``driftloop init`` to a served, monitored model, through the
command line only (issue 10), for each task.

The data is not the simulator's: :mod:`tabular_world` loan applications with a missing
number, a boolean with nulls and text columns, 20 days of them, data drift planted from
day 14 (``income`` and ``channel`` move) and a performance drop from day 17 (the label
no longer follows the features). For each task, in a fresh project:

1. ``driftloop init``, the CSV into ``data/``, a ``[models.m]`` section;
2. binary only: ``driftloop features apply`` and ``features materialize`` of a
   ``features.py`` whose batch view over the applicant table gives the model one store
   feature (``tenure_years``), which the server reads by the ``applicant_id`` key;
3. ``driftloop train m --end <day 10> --promote``;
4. ``driftloop serve`` on a free port of 127.0.0.1; days 10..19 posted to
   ``/v1/models/m/predict`` with their event times, their labels to ``/v1/feedback``;
   the server stopped with SIGINT;
5. ``driftloop monitor run --once`` over daily windows, read back from the monitoring
   tables: no drift on days 10..13, data drift of exactly ``{channel, income}`` on days
   14..16, concept drift on days 17..19;
6. ``driftloop score`` of the same rows: the served outputs equal it to 1e-6.

Each day has about 400 rows: with fewer, the PSI of an unchanged feature passes 0.2 on
some day by chance alone.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx2
import numpy as np
import pandas as pd
import pytest

from driftloop.core.config import load_settings
from driftloop.monitoring import MonitoringStore
from tabular_world import FEATURES, TASK_LABELS, applicants, model_toml, table

pytestmark = pytest.mark.integration

ROWS, DAYS, TRAIN_END, DRIFT_FROM, CONCEPT_FROM = 8_000, 20, 10, 14, 17
START = datetime(2026, 3, 1)
BATCH = 200
TASKS = ["binary", "multiclass", "regression"]
PLANTED = {"channel", "income"}  # what drift_from moves

FEATURES_PY = '''\
"""The applicant table as a feature view: one row per applicant, known before any
application, read by applicant_id."""

from driftloop.features import Entity, FeatureView, Field

applicant = Entity("applicant", join_keys=["applicant_id"])

applicant_profile = FeatureView(
    "applicant_profile",
    entities=[applicant],
    source="data/applicants.csv",
    timestamp_field="updated_at",
    schema=[Field("tenure_years", "float64")],
)
'''

MONITORING_TOML = """
[monitoring]
window_size = "1D"
lookback = "30D"
min_rows = 100
"""


def _day(n: int) -> pd.Timestamp:
    return pd.Timestamp(START) + pd.Timedelta(days=n)


def driftloop(root: Path, *args: str) -> str:
    """Run ``driftloop ARGS`` in the project folder; its output, or a failure showing it."""
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "driftloop", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, (
        f"driftloop {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    )
    return done.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Run:
    task: str
    root: Path
    live: pd.DataFrame  # the rows of days 10..19, as in the CSV
    served: list[dict[str, Any]]  # one prediction per live row, in order
    scored: pd.DataFrame  # driftloop score of the same rows
    windows: dict[int, dict[str, Any]]  # day -> stored window summary


def _project(root: Path, task: str) -> pd.DataFrame:
    """``driftloop init``, the user's CSV and model section (binary: with a store
    feature); the rows of days 10..19."""
    driftloop(root.parent, "init", root.name)
    rows = table(task, rows=ROWS, days=DAYS, drift_from=DRIFT_FROM, concept_from=CONCEPT_FROM)
    (root / "data").mkdir()
    rows.to_csv(root / "data" / "applications.csv", index=False)
    section = model_toml(task, name="m") + "params = {n_estimators = 60}\n"
    if task == "binary":
        applicants(ROWS).to_csv(root / "data" / "applicants.csv", index=False)
        (root / "features.py").write_text(FEATURES_PY)
        section = section.replace(
            'exclude = ["applicant_id"]\n',
            'entity_keys = ["applicant_id"]\nstore_features = ["applicant_profile:tenure_years"]\n',
        )
    with (root / "driftloop.toml").open("a") as toml:
        toml.write("\n" + section + MONITORING_TOML)
    live = pd.read_csv(root / "data" / "applications.csv", keep_default_na=True)
    return live[pd.to_datetime(live["applied_at"]) >= _day(TRAIN_END)].reset_index(drop=True)


def _json(value: Any) -> Any:
    """A CSV value as JSON: NaN -> null, numpy scalars -> Python."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if isinstance(value, np.generic) else value


def _instances(task: str, live: pd.DataFrame) -> list[dict[str, Any]]:
    """What a client sends: the inputs in their JSON types (numbers, true/false, text,
    null), the id, the event time in ISO 8601 and, for the binary model, the applicant
    key its store feature is read by; never the label."""
    keys = ["application_id", *(["applicant_id"] if task == "binary" else [])]
    when = pd.to_datetime(live["applied_at"]).dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    rows = live[[*keys, *FEATURES]].astype(object).to_dict("records")
    return [
        {**{k: _json(v) for k, v in row.items()}, "applied_at": ts}
        for row, ts in zip(rows, when, strict=True)
    ]


def _label(task: str, value: Any) -> Any:
    return float(value) if task == "regression" else str(value)


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    base: str
    log: Path


def _start_server(root: Path) -> Server:
    port = free_port()
    log = root / "server.log"
    cmd = [sys.executable, "-m", "driftloop", "serve", "-m", "m"]
    cmd += ["--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=root, env=dict(os.environ), start_new_session=True, stdout=out, stderr=out
        )
    server = Server(proc, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # waiting for readiness, not a timing assertion
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {log.read_text()[-3000:]}")
        try:
            if httpx2.get(f"{server.base}/readyz", timeout=1).status_code == 200:
                return server
        except httpx2.TransportError:
            pass
        time.sleep(0.2)
    _stop_server(server)
    raise AssertionError(f"server did not become ready: {log.read_text()[-3000:]}")


def _stop_server(server: Server) -> None:
    """SIGINT, as Ctrl-C does, and wait; SIGKILL only if it does not stop."""
    if server.proc.poll() is None:
        os.killpg(server.proc.pid, signal.SIGINT)
        try:
            server.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.proc.pid, signal.SIGKILL)
            server.proc.wait()


def _serve(root: Path, task: str, live: pd.DataFrame) -> list[dict[str, Any]]:
    """Days 10..19 through the real server with their event times, then their labels."""
    server = _start_server(root)
    served: list[dict[str, Any]] = []
    try:
        instances = _instances(task, live)
        labels = [_label(task, y) for y in live[TASK_LABELS[task]]]
        with httpx2.Client(base_url=server.base, timeout=60) as client:
            for i in range(0, len(instances), BATCH):
                answer = client.post(
                    "/v1/models/m/predict", json={"instances": instances[i : i + BATCH]}
                )
                assert answer.status_code == 200, answer.text
                body = answer.json()
                assert body["model"] == "m"
                assert body["version"] == "1"
                served += body["predictions"]
            assert len(served) == len(live)
            for i in range(0, len(served), BATCH):
                feedback = [
                    {"prediction_id": p["prediction_id"], "label": y}
                    for p, y in zip(served[i : i + BATCH], labels[i : i + BATCH], strict=True)
                ]
                answer = client.post("/v1/feedback", json={"labels": feedback})
                assert answer.status_code == 200, answer.text
                assert answer.json() == {"accepted": len(feedback), "unknown": []}
    finally:
        _stop_server(server)
    assert server.proc.returncode in (0, -signal.SIGINT), server.log.read_text()[-3000:]
    return served


def _windows(root: Path) -> dict[int, dict[str, Any]]:
    """The stored daily windows of the model by day number (0: the first day of data)."""
    settings = load_settings(root=root, environ={})
    store = MonitoringStore(settings.audit.url, root=settings.root)
    try:
        rows = store.window_rows("m")
    finally:
        store.dispose()
    out = {}
    for row in rows:
        start = pd.Timestamp(row["window_start"]).tz_localize(None)
        summary = row["summary"]
        out[(start - pd.Timestamp(START)).days] = (
            json.loads(summary) if isinstance(summary, str) else summary
        )
    return out


def _pipeline(task: str, root: Path) -> Run:
    """Steps 1 to 6 of the module docs for one task."""
    live = _project(root, task)
    if task == "binary":
        driftloop(root, "features", "apply")
        driftloop(root, "features", "materialize")
    trained = driftloop(root, "train", "m", "--end", _day(TRAIN_END).isoformat(), "--promote")
    assert "promoted it to champion" in trained
    served = _serve(root, task, live)
    driftloop(root, "monitor", "run", "--once", "--now", _day(DAYS + 1).isoformat())
    live_csv = root / "live.csv"
    live.to_csv(live_csv, index=False)
    out = root / "scored.parquet"
    driftloop(root, "score", "m", "--data", str(live_csv), "--out", str(out))
    return Run(task, root, live, served, pd.read_parquet(out), _windows(root))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Future[Run]]:
    """The three tasks' pipelines, side by side: each is mostly a CLI process starting up
    or waiting on its server, so together they take little more than the longest."""
    with ThreadPoolExecutor(max_workers=len(TASKS)) as pool:
        futures = {
            task: pool.submit(_pipeline, task, tmp_path_factory.mktemp(task) / "project")
            for task in TASKS
        }
        wait(futures.values())
    return futures


@pytest.fixture(params=TASKS)
def run(request: pytest.FixtureRequest, runs: dict[str, Future[Run]]) -> Run:
    return runs[request.param].result()  # a failed pipeline fails its own task's tests


def test_monitoring_finds_exactly_the_planted_drift(run: Run) -> None:
    windows = run.windows
    assert sorted(windows) == list(range(TRAIN_END, DAYS))  # one window per served day
    verdicts = {day: w["verdict"] for day, w in windows.items()}
    drifted = {day: set(w["drifted_features"]) for day, w in windows.items()}
    for day in range(TRAIN_END, DRIFT_FROM):
        assert (verdicts[day], drifted[day]) == ("no-drift", set()), windows[day]["reasons"]
    for day in range(DRIFT_FROM, CONCEPT_FROM):
        assert (verdicts[day], drifted[day]) == ("data-drift", PLANTED), windows[day]["reasons"]
    for day in range(CONCEPT_FROM, DAYS):
        assert (verdicts[day], drifted[day]) == ("concept-drift", PLANTED), windows[day]["reasons"]
    assert all(w["performance"]["labelled"] == w["rows"] for w in windows.values())


def test_served_outputs_equal_batch_scores_of_the_same_rows(run: Run) -> None:
    scored, served = run.scored, run.served
    assert list(scored["application_id"]) == list(run.live["application_id"])
    if run.task == "binary":
        got = np.array([p["score"] for p in served])
        np.testing.assert_allclose(got, scored["score"].to_numpy(), rtol=0, atol=1e-6)
    elif run.task == "multiclass":
        assert [p["class"] for p in served] == list(scored["class"])
        for name in ("basic", "plus", "pro"):
            got = np.array([p["probabilities"][name] for p in served])
            want = scored[f"probability:{name}"].to_numpy()
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
        np.testing.assert_allclose(
            [p["score"] for p in served], scored["score"].to_numpy(), rtol=0, atol=1e-6
        )
    else:
        got = np.array([p["value"] for p in served])
        np.testing.assert_allclose(got, scored["value"].to_numpy(), rtol=0, atol=1e-6)


def test_missing_inputs_are_flagged_and_store_features_are_read(run: Run) -> None:
    flagged = [set(p.get("missing", ())) for p in run.served]
    income_null = run.live["income"].isna().to_numpy()
    assert [("income" in f) for f in flagged] == list(income_null)
    if run.task == "binary":  # tenure comes from the store, by applicant_id
        known = applicants(ROWS).set_index("applicant_id")["tenure_years"].notna()
        expected = ~known.reindex(run.live["applicant_id"]).fillna(False).to_numpy()
        assert [("tenure_years" in f) for f in flagged] == list(expected)
