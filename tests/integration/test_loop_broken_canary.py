"""The loop against a real server: a challenger that raises on every row is canaried by
the controller, judged on the audit rows the server wrote, and rolled back at its first
step, while every client request is answered (the fallback chain's champion answers the
canary's share until then).

The server follows the registry's aliases and the traffic policy the loop sets (the
same database); nothing but the registry connects the two.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx2
import numpy as np
import pandas as pd
import pytest
import uvicorn

from driftloop.audit import SqliteAuditLog
from driftloop.core.config import LoopPolicy, ServingConfig
from driftloop.loop import (
    ArmAnalysis,
    LoopController,
    Trained,
    history,
    request_retrain,
    rollout_state,
)
from driftloop.registry import LoadedModel, Registry, Signature
from driftloop.serving import RegistryModelSource, ServedModel, create_app
from loop_helpers import PASSED
from services import free_port
from serving_helpers import FEATURES, row, train

pytestmark = pytest.mark.integration
BOUND = 120.0  # seconds: a bound for a stuck rollout, not a timing assertion
POLICY = {
    "triggers": {"drift_features": 0},
    "rollout": {"shadow_requests": 0, "shadow_time": "0s", "canary_steps": [25, 50],
                "dwell": "0s", "min_sample": 400, "max_error_rate": 0.05},
}  # fmt: skip
SIGNATURE = Signature.from_frame(pd.DataFrame([row(i) for i in range(20)])[FEATURES])


class BrokenSource(RegistryModelSource):
    """The registry's versions; version 2 loads fine, then raises on every real row."""

    def load(self, name: str, version: str) -> LoadedModel:
        model = super().load(name, version)
        if version == "2":
            original = model.predict

            def predict(rows: np.ndarray) -> np.ndarray:
                if np.isnan(rows).all():
                    return original(rows)  # the warm-up at load passes
                raise RuntimeError("challenger v2 is broken")

            model.predict = predict  # type: ignore[method-assign]
        return model


class Retrain:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def retrain(self, model: str, start: Any, end: Any) -> Trained:
        mv = self.registry.register(model, train(2), signature=SIGNATURE, gate_report=PASSED)
        return Trained(mv.version, PASSED)


def clients(base: str, stop: threading.Event, statuses: list[int]) -> None:
    with httpx2.Client(base_url=base, timeout=30) as http:
        i = 0
        while not stop.is_set():
            i += 1
            response = http.post("/v1/models/fraud/predict", json={"instances": [row(i)]})
            statuses.append(response.status_code)


def test_a_broken_challenger_is_rolled_back_at_its_first_step_with_no_failed_response(
    tmp_path: Path,
) -> None:
    registry = Registry.from_url(f"sqlite:///{tmp_path}/registry.db", str(tmp_path / "art"))
    registry.register("fraud", train(1), signature=SIGNATURE, alias="champion")
    audit = SqliteAuditLog(tmp_path / "audit.db")
    app = create_app(
        [ServedModel("fraud")],
        BrokenSource(registry),
        settings=ServingConfig.model_validate({"cache": {"enabled": False}}),
        audit=audit,
        traffic=registry.traffic,
        refresh_s=0.2,
    )
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + BOUND
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)

    plans = {"fraud": LoopPolicy.model_validate(POLICY)}
    controller = LoopController(
        registry,
        plans,
        analysis=ArmAnalysis(audit, registry.traffic, {"fraud": plans["fraud"].rollout}),
        retrainer=Retrain(registry),
        holder="loop-test",
        lease_ttl=timedelta(seconds=30),
    )
    stop, statuses = threading.Event(), []
    load = threading.Thread(target=clients, args=(f"http://127.0.0.1:{port}", stop, statuses))
    load.start()
    try:
        request_retrain(registry, "fraud", "a new version to try", who="ci")
        state = rollout_state(registry.engine, "fraud")
        while time.monotonic() < deadline:
            controller.run_once()
            state = rollout_state(registry.engine, "fraud")
            if state.since is not None and state.resting:
                break
            time.sleep(0.2)
    finally:
        stop.set()
        load.join(60)
        server.should_exit = True
        thread.join(30)
        controller.close()

    decisions = history(registry.engine, "fraud")
    assert [(d.action, d.step) for d in decisions] == [
        ("request", None), ("retrain", None), ("trained", None), ("canary", 0),
        ("rollback", None),
    ]  # fmt: skip
    rollback = decisions[-1]
    assert rollback.rule.startswith("error-rate"), rollback.rule  # the default analysis
    challenger = rollback.numbers["comparison"]["challenger"]
    assert challenger["error_rate"] > 0.9
    assert rollback.numbers["stage"] == "canary"
    assert statuses
    assert set(statuses) == {200}  # every request was answered
    assert registry.aliases("fraud") == {"champion": 1}
    assert registry.traffic.get("fraud").policy is None
    audit.close()
    registry.close()
