"""A user's own tables, from ``driftloop init`` to served, monitored models, through the
command line only (issue 10), for each task.

The data is not the simulator's: :mod:`tabular_world` loan applications with a missing
number, a boolean with nulls and text columns, 20 days of them, data drift planted from
day 14 (``income`` and ``channel`` move) and a performance drop from day 17 (the label
no longer follows the features). One project holds three models, one per task (``loans``
binary, ``plans`` multiclass, ``prices`` regression), each on its own CSV:

1. ``driftloop init``, the CSVs into ``data/``, a ``[models.<name>]`` section each;
2. ``driftloop features apply`` and ``features materialize`` of a ``features.py`` whose
   batch view over the applicant table gives the binary model one store feature
   (``tenure_years``), which the server reads by the ``applicant_id`` key;
3. ``driftloop train <name> --end <day 10> --promote`` for each;
4. one ``driftloop serve -m loans -m plans -m prices`` on a free port of 127.0.0.1; days
   10..19 posted to ``/v1/models/<name>/predict`` with their event times, their labels
   to ``/v1/feedback``; the server stopped with SIGINT;
5. ``driftloop monitor run --once`` over daily windows, read back from the monitoring
   tables: no drift on days 10..13, data drift of exactly ``{channel, income}`` on days
   14..16, concept drift on days 17..19;
6. ``driftloop score`` of the same rows: the served outputs equal it to 1e-6.

Each day has about 400 rows: with fewer, the PSI of an unchanged feature passes 0.2 on
some day by chance alone. One project rather than three: each ``driftloop`` process
spends seconds importing before it does anything.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
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
from services import free_port
from tabular_world import FEATURES, TASK_LABELS, applicants, model_toml, table

pytestmark = pytest.mark.integration

ROWS, DAYS, TRAIN_END, DRIFT_FROM, CONCEPT_FROM = 8_000, 20, 10, 14, 17
START = datetime(2026, 3, 1)
BATCH = 200
MODELS = {"binary": "loans", "multiclass": "plans", "regression": "prices"}
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


def _env() -> dict[str, str]:
    """This environment without DRIFTLOOP_* settings: the project's file alone decides."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLOOP_")}
    return {**env, "COLUMNS": "200", "NO_COLOR": "1"}


def driftloop(root: Path, *args: str) -> str:
    """Run ``driftloop ARGS`` in the project folder; its output, or a failure showing it."""
    done = subprocess.run(
        [sys.executable, "-m", "driftloop", *args],
        cwd=root,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, (
        f"driftloop {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    )
    return done.stdout


@dataclass(frozen=True)
class Run:
    task: str
    model: str
    live: pd.DataFrame  # the rows of days 10..19, as in the CSV
    served: list[dict[str, Any]]  # one prediction per live row, in order
    scored: pd.DataFrame  # driftloop score of the same rows
    refused: dict[str, tuple[int, dict[str, Any]]]  # bad request -> status, body
    windows: dict[int, dict[str, Any]]  # day -> stored window summary


def _project(root: Path) -> dict[str, pd.DataFrame]:
    """``driftloop init``, the user's CSVs and model sections (the binary model with a
    store feature), the features; per task, the rows of days 10..19."""
    driftloop(root.parent, "init", root.name)
    (root / "data").mkdir()
    applicants(ROWS).to_csv(root / "data" / "applicants.csv", index=False)
    (root / "features.py").write_text(FEATURES_PY)
    sections = []
    for task, model in MODELS.items():
        rows = table(task, rows=ROWS, days=DAYS, drift_from=DRIFT_FROM, concept_from=CONCEPT_FROM)
        rows.to_csv(root / "data" / f"{model}.csv", index=False)
        section = model_toml(task, data=f"data/{model}.csv", name=model)
        if task == "binary":
            section = section.replace(
                'exclude = ["applicant_id"]\n',
                'entity_keys = ["applicant_id"]\n'
                'store_features = ["applicant_profile:tenure_years"]\n',
            )
        sections.append(section + "params = {n_estimators = 60}\n")
    with (root / "driftloop.toml").open("a") as toml:
        toml.write("\n" + "\n".join(sections) + MONITORING_TOML)
    live = {}
    for task, model in MODELS.items():
        rows = pd.read_csv(root / "data" / f"{model}.csv")
        live[task] = rows[pd.to_datetime(rows["applied_at"]) >= _day(TRAIN_END)]
    return {task: rows.reset_index(drop=True) for task, rows in live.items()}


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
    cmd = [sys.executable, "-m", "driftloop", "serve"]
    cmd += [arg for model in MODELS.values() for arg in ("-m", model)]
    cmd += ["--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=root, env=_env(), start_new_session=True, stdout=out, stderr=out
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


def _predict_and_label(
    client: httpx2.Client, task: str, live: pd.DataFrame
) -> list[dict[str, Any]]:
    """A task's rows of days 10..19 through the server with their event times, then
    their labels."""
    model, served = MODELS[task], []
    instances = _instances(task, live)
    for i in range(0, len(instances), BATCH):
        answer = client.post(
            f"/v1/models/{model}/predict", json={"instances": instances[i : i + BATCH]}
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert (body["model"], body["version"]) == (model, "1")
        served += body["predictions"]
    assert len(served) == len(live)
    labels = [_label(task, y) for y in live[TASK_LABELS[task]]]
    for i in range(0, len(served), BATCH):
        feedback = [
            {"prediction_id": p["prediction_id"], "label": y}
            for p, y in zip(served[i : i + BATCH], labels[i : i + BATCH], strict=True)
        ]
        answer = client.post("/v1/feedback", json={"labels": feedback})
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"accepted": len(feedback), "unknown_count": 0}
    return served


def _refused(
    client: httpx2.Client, task: str, live: pd.DataFrame
) -> dict[str, tuple[int, dict[str, Any]]]:
    """What the server answers a client that sends the label, or text for a number."""
    good = _instances(task, live.iloc[:2])
    bad = {
        "label": [
            good[0],
            {**good[1], TASK_LABELS[task]: _label(task, live[TASK_LABELS[task]][1])},
        ],
        "type": [good[0], {**good[1], "income": "52000"}],
    }
    out = {}
    for name, instances in bad.items():
        answer = client.post(f"/v1/models/{MODELS[task]}/predict", json={"instances": instances})
        out[name] = (answer.status_code, answer.json())
    return out


def _serve(
    root: Path, live: dict[str, pd.DataFrame]
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, dict[str, tuple[int, dict[str, Any]]]]]:
    """Every model's traffic through one real server, stopped cleanly afterwards; and
    the answers to bad requests."""
    server = _start_server(root)
    try:
        with httpx2.Client(base_url=server.base, timeout=60) as client:
            served = {task: _predict_and_label(client, task, rows) for task, rows in live.items()}
            refused = {task: _refused(client, task, rows) for task, rows in live.items()}
    finally:
        _stop_server(server)
    assert server.proc.returncode in (0, -signal.SIGINT), server.log.read_text()[-3000:]
    return served, refused


def _windows(root: Path, model: str) -> dict[int, dict[str, Any]]:
    """The stored daily windows of a model by day number (0: the first day of data)."""
    settings = load_settings(root=root, environ={})
    store = MonitoringStore(settings.audit.url, root=settings.root)
    try:
        rows = store.window_rows(model)
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


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """Steps 1 to 6 of the module docs."""
    root = tmp_path_factory.mktemp("your-data") / "project"
    live = _project(root)
    driftloop(root, "features", "apply")
    driftloop(root, "features", "materialize")
    for model in MODELS.values():
        trained = driftloop(root, "train", model, "--end", _day(TRAIN_END).isoformat(), "--promote")
        assert f"Registered {model}:1 and promoted it to champion" in trained
    served, refused = _serve(root, live)
    driftloop(root, "monitor", "run", "--once", "--now", _day(DAYS + 1).isoformat())
    runs = {}
    for task, model in MODELS.items():
        rows, out = root / f"{model}-live.csv", root / f"{model}-scored.parquet"
        live[task].to_csv(rows, index=False)
        driftloop(root, "score", model, "--data", str(rows), "--out", str(out))
        runs[task] = Run(
            task,
            model,
            live[task],
            served[task],
            pd.read_parquet(out),
            refused[task],
            _windows(root, model),
        )
    return runs


@pytest.fixture(params=list(MODELS))
def run(request: pytest.FixtureRequest, runs: dict[str, Run]) -> Run:
    return runs[request.param]


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
    assert [p["id"] for p in served] == list(run.live["application_id"])  # echoed
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


def test_a_label_or_a_wrong_type_in_a_request_is_a_422_naming_instance_and_field(
    run: Run,
) -> None:
    for name, field in (("label", TASK_LABELS[run.task]), ("type", "income")):
        status, body = run.refused[name]
        assert status == 422, body
        violations = body["error"]["violations"]
        assert [(v["instance"], v["field"]) for v in violations] == [(1, field)], body
