"""A project for the dashboard's tests, filled with generated data (no simulator).

Model ``loans`` (a binary task on a number with missing values, a boolean, two text
columns): version 1 registered and promoted, version 2 promoted over it, version 3 the
challenger, a traffic policy splitting champion and challenger, and the loop
controller's decisions that brought version 3 to its first canary step. The audit log holds
``predictions`` predictions over the ``DAYS`` days before today, labelled when older
than two days; from day ``DRIFT_DAY`` on ``income`` is 80% higher (planted data drift),
the rest keeps its distribution. The monitor assessed every day; the feature view
``applicant_stats`` was materialized (its statistics recorded).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from driftloop.audit import AuditRecord, Label, open_audit_log
from driftloop.core.config import Settings, load_settings
from driftloop.features import FeatureStore, load_definitions
from driftloop.loop import Decision
from driftloop.loop._decisions import record  # the controller's writer: no public one
from driftloop.monitoring import project_monitor
from driftloop.registry import Registry, Signature
from driftloop.stats import Profile

DAYS = 12
DRIFT_DAY = 8
MODEL = "loans"
FEATURES = ["income", "age", "owns_home", "channel", "region"]
FEATURES_PY = """
from driftloop.features import Entity, FeatureView, Field, ParquetSource

applicant = Entity(name="applicant", join_keys=["applicant_id"])
applicant_stats = FeatureView(
    name="applicant_stats",
    entities=[applicant],
    source=ParquetSource("data/applicants.parquet"),
    timestamp_field="updated_at",
    schema=[Field("tenure_years", "float64"), Field("segment", "string")],
    ttl="90d",
)
"""


@dataclass(frozen=True)
class UiWorld:
    root: Path
    settings: Settings
    now: datetime
    explained_id: str  # a prediction with an explanation and a label
    entity_value: str  # an applicant_id with several predictions


def _inputs(rng: np.random.Generator, n: int, drifted: np.ndarray) -> pd.DataFrame:
    income = rng.lognormal(10.5, 0.4, n) * np.where(drifted, 1.8, 1.0)
    income[rng.random(n) < 0.05] = np.nan
    return pd.DataFrame(
        {
            "income": income.round(2),
            "age": rng.integers(18, 80, n).astype(float),
            "owns_home": rng.random(n) < 0.45,
            "channel": rng.choice(["web", "app", "branch"], n, p=[0.5, 0.3, 0.2]),
            "region": rng.choice(["north", "south", "east"], n),
        }
    )


def _scores(inputs: pd.DataFrame) -> np.ndarray:
    """What the generated models answer: a higher income, a higher score."""
    income = inputs["income"].fillna(36_000).to_numpy(dtype=float)
    return np.asarray(1 / (1 + np.exp(-(np.log(income) - 10.5) * 2)))


def _register(registry: Registry, rng: np.random.Generator) -> None:
    train = _inputs(rng, 3_000, np.zeros(3_000, bool))
    profile = Profile.from_frame(train, predictions=_scores(train))
    signature = Signature.from_frame(train)
    metrics = {"rows": 600.0, "positive_rate": 0.3, "roc_auc": 0.81, "recall_at_0.5": 0.6,
               "precision_at_0.5": 0.55, "mean_score": 0.31}  # fmt: skip
    for version in (1, 2, 3):
        registry.register_files(
            MODEL,
            "sklearn",
            {"model": f"generated model {version}".encode()},
            signature=signature,
            params={"C": 0.5 * version},
            metrics={**metrics, "roc_auc": 0.79 + version / 100},
            lineage={"data": "generated", "rows": 3_000, "parent": version - 1 or None},
            gate_report={"passed": True, "checks": [{"name": "auc_vs_champion", "passed": True}]},
            profile=profile,
            created_by="trainer",
            alias="champion" if version < 3 else "challenger",
            alias_reason=f"version {version} passed its gates",
        )
    start = datetime.now(UTC) - timedelta(hours=3)
    steps = [  # the loop controller retrained, gated, shadowed and is canarying version 3
        ("retraining", "retrain", "drift", {"drifted": ["income"]}, None),
        ("gated", "gate", "beats-champion", {"roc_auc": 0.82, "champion_roc_auc": 0.81}, None),
        ("shadow", "shadow", "gates-passed", {"share": 0.1}, None),
        ("canary", "step", "no-regression", {"requests": 412, "error_rate": 0.0}, 1),
    ]
    with registry.engine.begin() as conn:
        for k, (state, action, rule, numbers, step) in enumerate(steps):
            record(
                conn,
                Decision(start + timedelta(minutes=30 * k), MODEL, state, action, rule,
                         "loop", from_version=2, to_version=3, step=step, numbers=numbers),
            )  # fmt: skip
    registry.traffic.set(
        MODEL,
        {"arms": {"champion": 90, "challenger": 10}, "sticky_key": "applicant_id"},
        who="alice",
        why="canary the challenger",
    )


def _audit(settings: Settings, rng: np.random.Generator, n: int, now: datetime) -> None:
    start = now - timedelta(days=DAYS)
    seconds = np.sort(rng.uniform(0, DAYS * 86_400, n))
    drifted = seconds >= DRIFT_DAY * 86_400
    inputs = _inputs(rng, n, drifted)
    rows = inputs.astype(object).where(inputs.notna(), None).to_dict("records")
    scores = _scores(inputs)
    challenger = rng.random(n) < 0.1
    records, labels = [], []
    for i, row in enumerate(rows):
        ts = start + timedelta(seconds=float(seconds[i]))
        explained = i % 50 == 0
        records.append(
            AuditRecord(
                prediction_id=f"p{i:06d}",
                ts=ts,
                model=MODEL,
                version="3" if challenger[i] else "2",
                route="v1" if i % 97 else "v1:rules",
                score=float(scores[i]),
                decision="decline" if scores[i] > 0.5 else "approve",
                latency_ms=float(0.5 + rng.gamma(2.0, 2.0)),
                features=row,
                entity_keys={"applicant_id": str(i % 400)},
                feature_ts={"income": ts - timedelta(hours=3)},
                explanation={"income": 0.31, "age": -0.12, "channel": 0.05} if explained else None,
                served_at=ts,
                missing=("income",) if row["income"] is None else (),
            )
        )
        if ts < now - timedelta(days=2):
            label = float(rng.random() < scores[i])
            labels.append(Label(f"p{i:06d}", label, ts + timedelta(days=1)))
    log = open_audit_log(settings.audit.url, root=settings.root)
    try:
        for k in range(0, n, 5_000):
            log.write(records[k : k + 5_000])
        log.add_labels(labels)
    finally:
        log.close()


def _features(settings: Settings, root: Path, now: datetime) -> None:
    (root / "features.py").write_text(FEATURES_PY)
    rng = np.random.default_rng(3)
    ids = np.arange(400)
    tenure = rng.gamma(2.0, 3.0, len(ids)).round(1)
    tenure[rng.random(len(ids)) < 0.1] = np.nan
    frame = pd.DataFrame(
        {
            "applicant_id": ids.astype(str),
            "updated_at": pd.Timestamp(now - timedelta(days=3)).tz_localize(None),
            "tenure_years": tenure,
            "segment": rng.choice(["a", "b", None], len(ids)),
        }
    )
    (root / "data").mkdir(exist_ok=True)
    frame.to_parquet(root / "data" / "applicants.parquet")
    definitions = load_definitions(root / "features.py")
    store = FeatureStore(settings, definitions=definitions)
    try:
        assert store.registry is not None
        store.registry.apply(definitions)
        store.materialize(now - timedelta(days=30), now, progress=False)
    finally:
        store.close()


def fill_project(root: Path, *, predictions: int = 3_000, seed: int = 0) -> UiWorld:
    """Write the project described in the module docs into ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "driftloop.toml").write_text(
        '[project]\nname = "ui-test"\n\n[monitoring]\nalerts = []\nmin_rows = 50\n'
        'lookback = "30D"\n'
    )
    settings = load_settings(root / "driftloop.toml", environ={})
    # midnight: the monitor's daily windows hold whole days, whenever the tests run
    now = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    rng = np.random.default_rng(seed)
    registry = Registry.from_settings(settings)
    try:
        _register(registry, rng)
    finally:
        registry.close()
    _audit(settings, rng, predictions, now)
    with project_monitor(settings, models=[MODEL]) as monitor:
        monitor.run_once(now)
    _features(settings, root, now)
    return UiWorld(root, settings, now, "p000050", "7")
