"""``[loop.<model>]`` is validated like every setting: a bad value names its key."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from driftloop.core.config import LoopPolicy, Settings, load_settings
from driftloop.core.errors import ConfigError

POLICY = """
[loop.loans]
cooldown = "6h"
lookback = "28D"

[loop.loans.triggers]
drift_features = 2
drift_windows = 3
performance_windows = 2
schedule = "7D"

[loop.loans.rollout]
shadow_requests = 1000
shadow_time = "30m"
canary_steps = [5, 25, 50]
dwell = "15m"
min_sample = 300
threshold = 2
max_error_rate = 0.02
max_p99_latency_ms = 80.0
"""


def settings_from(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> Settings:
    (tmp_path / "driftloop.toml").write_text(text, encoding="utf-8")
    return load_settings(root=tmp_path, environ=environ or {})


def test_a_loop_policy_reads_durations_steps_and_limits(tmp_path: Path) -> None:
    policy = settings_from(tmp_path, POLICY).loop["loans"]
    assert policy.cooldown == timedelta(hours=6)
    assert policy.lookback == timedelta(days=28)
    assert policy.triggers.schedule == timedelta(days=7)
    assert policy.rollout.canary_steps == (5.0, 25.0, 50.0)
    assert policy.rollout.dwell == timedelta(minutes=15)
    assert (policy.rollout.threshold, policy.rollout.max_error_rate) == (2, 0.02)


def test_the_environment_overrides_a_policy_key(tmp_path: Path) -> None:
    env = {"DRIFTLOOP_LOOP__LOANS__ROLLOUT__DWELL": "1h"}
    assert settings_from(tmp_path, POLICY, env).loop["loans"].rollout.dwell == timedelta(hours=1)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "[loop.loans.rollout]\ncanary_steps = [25, 5]",
            "loop.loans.rollout.canary_steps (from file",
        ),
        ("[loop.loans.rollout]\ncanary_steps = [0, 100]", "percent in (0, 100)"),
        ('[loop.loans]\ncooldown = "soon"', "loop.loans.cooldown"),
        ('[loop.loans]\nlookback = "0s"', "loop.loans.lookback (from file"),
        ("[loop.loans.triggers]\ndrift_windows = 0", "loop.loans.triggers.drift_windows"),
        ("[loop.loans.rollout]\nmax_error_rate = 2", "loop.loans.rollout.max_error_rate"),
        ("[loop.loans.rollout]\nwarmup = 3", "loop.loans.rollout.warmup (from file"),
    ],
)
def test_a_bad_policy_value_names_its_key(tmp_path: Path, line: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from(tmp_path, line)
    assert message in str(caught.value)


def test_a_policy_prints_and_reads_back_the_same(tmp_path: Path) -> None:
    settings = settings_from(tmp_path, POLICY)
    dumped = json.loads(json.dumps(settings.model_dump()))["loop"]["loans"]
    assert (dumped["cooldown"], dumped["lookback"], dumped["rollout"]["dwell"]) == (
        "6h", "4w", "15m",
    )  # fmt: skip
    assert LoopPolicy.model_validate(dumped) == settings.loop["loans"]
