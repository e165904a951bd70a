"""SIGKILL at the worst moment of a materialization and of a registration: a rerun
completes with no duplicate and no missing row.

The child process kills itself at a chosen point (deterministic, unlike a timed kill):
during materialization right after a batch of rows is written but before its progress
is recorded, or after; during registration inside the transaction that numbers the
version and moves its alias.
"""

from __future__ import annotations

import math
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from driftloop.registry import Registry

pytestmark = pytest.mark.integration

START, END = datetime(2026, 1, 1), datetime(2026, 2, 1)
ENTITIES = 35_000  # four batches of latest rows (10,000 a batch)

STORE = """
import duckdb
from pathlib import Path
from driftloop.features import Entity, FeatureStore, FeatureView, Field, online_store_from_url

def store(root, online):
    account = Entity("account", ["account_id"])
    view = FeatureView(
        "accounts", entities=[account], source="accounts.parquet", timestamp_field="ts",
        schema=[Field("plan", "string"), Field("active", "bool"), Field("spend", "float64")],
    )
    return FeatureStore(
        definitions=[account, view], connection=duckdb.connect(),
        online_store=online_store_from_url(online, Path(root)), root=Path(root),
    )
"""

MATERIALIZE = (
    STORE
    + """
import os, signal, sys
from datetime import datetime
root, online, kill_at = sys.argv[1], sys.argv[2], sys.argv[3]
s = store(root, online)
if kill_at != "never":
    writes = [0]
    target = s.online
    real_write, real_meta = target.write_rows, target.set_meta
    def write_rows(rows):
        real_write(rows)
        writes[0] += 1
        if kill_at == "after-rows" and writes[0] == 2:
            os.kill(os.getpid(), signal.SIGKILL)  # rows in, progress not recorded
    def set_meta(name, value):
        real_meta(name, value)
        if kill_at == "after-progress" and writes[0] == 2 and name.startswith("materializing:"):
            os.kill(os.getpid(), signal.SIGKILL)
    target.write_rows, target.set_meta = write_rows, set_meta
(result,) = s.materialize(datetime(2026, 1, 1), datetime(2026, 2, 1), progress=False)
print(result.rows, result.batches_skipped)
s.close()
"""
)


def run(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=600
    )


def accounts(root: Path) -> None:
    """Two rows per account (the later one wins), strings, booleans and missing values."""
    rng = np.random.default_rng(5)
    n = ENTITIES * 2
    ids = [f"acct-{i % ENTITIES:05d}" for i in range(n)]
    pd.DataFrame(
        {
            "account_id": ids,
            "ts": pd.Timestamp(START) + pd.to_timedelta(rng.integers(0, 30 * 86_400, n), "s"),
            "plan": rng.choice(["basic", "pro", "team", None], n),
            "active": rng.random(n) < 0.6,
            "spend": np.where(rng.random(n) < 0.1, np.nan, rng.gamma(2.0, 40.0, n).round(2)),
        }
    ).to_parquet(root / "accounts.parquet")


def online_rows(root: Path, online: str) -> dict[str, tuple[object, ...]]:
    namespace: dict[str, object] = {}
    exec(STORE, namespace)  # the same definitions as the child's
    store = namespace["store"](root, online)  # type: ignore[operator]
    rows = [{"account_id": f"acct-{i:05d}"} for i in range(ENTITIES)]
    got = store.online_features(["accounts:plan", "accounts:active", "accounts:spend"], rows)
    store.close()
    columns = [got.values[name] for name in sorted(got.values)]
    return {
        r["account_id"]: tuple("nan" if isinstance(v, float) and math.isnan(v) else v for v in vs)
        for r, vs in zip(rows, zip(*columns, strict=True), strict=True)
    }


@pytest.mark.parametrize("kill_at", ["after-rows", "after-progress"])
def test_materialization_killed_mid_run_then_rerun_matches_a_clean_run(
    tmp_path: Path, kill_at: str
) -> None:
    accounts(tmp_path)
    clean = f"sqlite:///{tmp_path / 'clean.db'}"
    assert run(MATERIALIZE, str(tmp_path), clean, "never").returncode == 0
    online = f"sqlite:///{tmp_path / 'online.db'}"
    killed = run(MATERIALIZE, str(tmp_path), online, kill_at)
    assert killed.returncode == -9, killed.stderr[-2000:]
    rerun = run(MATERIALIZE, str(tmp_path), online, "never")
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    # it resumed where the recorded progress ended (the unrecorded batch is written again)
    assert rerun.stdout.split()[1] == ("2" if kill_at == "after-progress" else "1")
    expected = online_rows(tmp_path, clean)
    assert len(expected) == ENTITIES
    assert sum(v[0] is None for v in expected.values()) < ENTITIES  # rows were written
    assert online_rows(tmp_path, online) == expected


REGISTER = """
import os, signal, sys
import lightgbm as lgb, numpy as np, pandas as pd
from driftloop.registry import Registry, Signature
from driftloop.registry import _registry

root, first, last, kill_at = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
registry = Registry.from_url(f"sqlite:///{root}/registry.db", f"{root}/artifacts")
real_move = _registry.Registry._move
def move(self, conn, name, alias, version, *args):
    real_move(self, conn, name, alias, version, *args)
    if version == kill_at:  # the version row is in, the alias moved, nothing committed
        os.kill(os.getpid(), signal.SIGKILL)
_registry.Registry._move = move
rng = np.random.default_rng(0)
X = pd.DataFrame({"tenure": rng.normal(size=300), "plan": rng.choice(["a", "b"], 300)})
X["plan"] = X["plan"].astype("category")
y = (X["tenure"] + rng.normal(size=300) > 0).astype(int)
for run in range(first, last + 1):
    model = lgb.LGBMClassifier(n_estimators=5 + run, verbose=-1, n_jobs=1).fit(X, y)
    mv = registry.register("churn", model, signature=Signature.from_frame(X),
                           alias="champion", alias_reason=f"run {run}", tags={"run": str(run)})
    print(mv.version, flush=True)
registry.close()
"""


def test_registration_killed_inside_its_transaction_leaves_nothing_half_done(
    tmp_path: Path,
) -> None:
    killed = run(REGISTER, str(tmp_path), "1", "5", "3")
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert killed.stdout.split() == ["1", "2"]
    registry = Registry.from_url(f"sqlite:///{tmp_path}/registry.db", f"{tmp_path}/artifacts")
    assert [mv.version for mv in registry.versions("churn")] == [1, 2]
    assert registry.latest_version("churn") == 2
    assert registry.alias_version("churn", "champion") == 2
    assert [e.version for e in registry.history("churn", "champion")] == [1, 2]
    registry.close()
    rerun = run(REGISTER, str(tmp_path), "3", "5", "0")
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    registry = Registry.from_url(f"sqlite:///{tmp_path}/registry.db", f"{tmp_path}/artifacts")
    versions = registry.versions("churn")
    assert [mv.version for mv in versions] == [1, 2, 3, 4, 5]  # no gap, no duplicate
    assert [mv.tags["run"] for mv in versions] == ["1", "2", "3", "4", "5"]
    for mv in versions:
        registry.verify("churn", mv.version)  # every artifact is there and hashes right
        assert registry.load("churn", mv.version).predict(np.full((1, 2), np.nan)).shape[0] == 1
    assert registry.alias_version("churn", "champion") == 5
    assert len(registry.history("churn", "champion")) == 5  # one move per registration
    registry.close()
