"""A loop controller process SIGKILLed in the middle of a canary, and another one started
after it: the rollout resumes in the state the decision log holds and finishes once,
step by step, and the decision log matches the registry's alias history.

The model is trained by the project's real pipeline on a table with text, boolean and
missing columns; traffic is what a server would write to the audit log under the
policy the loop sets (a thread here, reading the policy as a server polls it).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from driftloop.audit import SqliteAuditLog
from driftloop.core.config import load_settings
from driftloop.loop import RolloutState, history, rollout_state
from driftloop.registry import Registry
from driftloop.training import train_and_promote
from loop_helpers import served
from tabular_world import model_toml, table

pytestmark = pytest.mark.integration

POLICY = """
[gates]
max_latency_ms = 10000.0

[loop.{name}]
lookback = "400D"

[loop.{name}.triggers]
drift_features = 0
performance_windows = 0

[loop.{name}.rollout]
shadow_requests = 60
shadow_time = "1h"
canary_steps = [20, 50, 80]
dwell = "1s"
min_sample = 40
"""
BOUND = 240.0  # seconds: a bound for a stuck controller, not a timing assertion


def controller(root: Path, holder: str) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "driftloop", "loop", "run", "--interval", "0.2"]
    cmd += ["--holder", holder, "--lease-ttl", "2"]
    with (root / f"{holder}.log").open("wb") as out:  # the child keeps its own copy
        return subprocess.Popen(cmd, cwd=root, stdout=out, stderr=out, start_new_session=True)


def wait_for(
    registry: Registry,
    model: str,
    done: Callable[[RolloutState], bool],
    proc: subprocess.Popen[bytes],
) -> RolloutState:
    deadline = time.monotonic() + BOUND
    while time.monotonic() < deadline:
        state = rollout_state(registry.engine, model)
        if done(state) or state.state == "rolled_back":
            return state
        assert proc.poll() is None, "the controller exited"
        time.sleep(0.05)
    raise AssertionError(f"no such state within {BOUND} s; last: {state}")


def feed(root: Path, registry: Registry, model: str, stop: threading.Event) -> None:
    """Write what a server would: 40 requests every 0.1 s, routed by the policy."""
    log = SqliteAuditLog(root / ".driftloop" / "audit.db")
    seed = 0
    try:
        while not stop.is_set():
            aliases = registry.aliases(model)
            state = registry.traffic.get(model)
            seed += 1
            served(
                log,
                state.policy if state else None,
                champion=aliases["champion"],
                challenger=aliases.get("challenger", -1),
                n=40,
                at=datetime.now(UTC),
                seed=seed,
                model=model,
            )
            stop.wait(0.1)
    finally:
        log.close()


@pytest.mark.parametrize("task", ["binary", "regression"])
def test_a_controller_killed_mid_canary_and_replaced_finishes_the_rollout_once(
    tmp_path: Path, task: str
) -> None:
    root, model = tmp_path / "project", task
    (root / "data").mkdir(parents=True)
    table(task, rows=3_000).to_csv(root / "data" / "applications.csv", index=False)
    policy = POLICY.format(name=model)
    (root / "driftloop.toml").write_text(model_toml(task) + policy, encoding="utf-8")
    settings = load_settings(root=root, environ={})
    _, promoted = train_and_promote(settings, model)
    assert promoted
    newer = table(task, rows=3_000, seed=1, concept_from=0)  # the world moved on
    newer.to_csv(root / "data" / "applications.csv", index=False)
    done = subprocess.run(
        [sys.executable, "-m", "driftloop", "loop", "retrain", model, "--reason", "test"],
        cwd=root, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    registry = Registry.from_settings(settings)
    stop = threading.Event()
    feeder = threading.Thread(target=feed, args=(root, registry, model, stop), daemon=True)
    feeder.start()
    first = controller(root, "first")
    second: subprocess.Popen[bytes] | None = None
    try:
        killed_at = wait_for(registry, model, lambda s: s.state == "canary" and s.step == 1, first)
        assert killed_at.state == "canary", history(registry.engine, model)[-1]
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        after_kill = rollout_state(registry.engine, model)
        assert (after_kill.state, after_kill.challenger) == ("canary", killed_at.challenger)
        second = controller(root, "second")
        final = wait_for(registry, model, lambda s: s.resting, second)
    finally:
        stop.set()
        feeder.join()
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    assert final.state == "promoted", (root / "second.log").read_text()[-3000:]
    decisions = history(registry.engine, model)
    assert [(d.action, d.step) for d in decisions] == [
        ("request", None), ("retrain", None), ("trained", None), ("shadow", None),
        ("canary", 0), ("canary", 1), ("canary", 2), ("promote", None),
    ]  # fmt: skip
    assert {d.who for d in decisions[1:6]} == {"first"}
    assert decisions[-1].who == "second"
    assert registry.aliases(model) == {"champion": 2}
    assert registry.traffic.get(model).policy is None
    loop_moves = [(e.alias, e.version) for e in registry.history(model) if e.who == "loop"]
    assert loop_moves == [("challenger", 2), ("champion", 2), ("challenger", None)]
    registry.close()
