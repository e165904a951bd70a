"""A user upgrading driftloop keeps every row: databases made before migrations (the DDL of
``legacy_schemas``) are stamped and upgraded in place, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import pytest
import sqlalchemy as sa

from driftloop.audit import (
    AuditBatch,
    AuditLog,
    AuditRecord,
    Label,
    PostgresAuditLog,
    SqliteAuditLog,
    entity_predictions,
    idempotency_store,
    label_store,
)
from driftloop.audit import _schema as audit_schema
from driftloop.audit._postgres import libpq_dsn
from driftloop.audit._sql import SqlAuditLog
from driftloop.core.config import MonitoringConfig
from driftloop.core.errors import ConflictError
from driftloop.core.migrations import upgrade_schema
from driftloop.features import DefinitionRegistry, Entity, FeatureView, Field
from driftloop.features._registry import BRANCH as FEATURES
from driftloop.loop import Lease, history, request_retrain
from driftloop.monitoring import MonitoringStore, Reference, drift_report, learn_reference
from driftloop.monitoring._schema import branch as monitoring_branch
from driftloop.registry import Registry, Signature, UsageStore, artifact_store_from_url
from driftloop.registry._db import BRANCH as REGISTRY
from driftloop.registry._db import make_engine
from driftloop.registry._schema import metadata as registry_metadata
from driftloop.stats import Profile
from legacy_schemas import (
    audit_ddl,
    create_old_features,
    monitoring_metadata,
    postgres_schema,
    shape,
)
from registry_helpers import old_registry_rows, toy_lightgbm

# The newest revision of each branch: a new migration moves its head here.
AUDIT_HEAD = "a0007_entities_recent"
FEATURES_HEAD = "f0002_tenants"
MONITORING_HEAD = "m0003_tenants"
REGISTRY_HEAD = "r0005_shared_usage"

T0 = datetime(2025, 6, 1, 9, 0, tzinfo=UTC)
US = 1_000_000
_MONITORING = ("windows", "results", "incidents")


@dataclass
class Db:
    """One empty database: ``url`` for SQLAlchemy (on PostgreSQL its search_path is a fresh
    schema), ``schema`` that schema's name (None on SQLite)."""

    kind: str
    url: str
    schema: str | None
    path: Path | None = None
    base_url: str = ""

    def engine(self) -> sa.Engine:
        return sa.create_engine(self.url)

    def audit_log(self) -> AuditLog:
        if self.path is not None:
            return SqliteAuditLog(self.path)
        assert self.schema is not None
        return PostgresAuditLog(self.base_url, schema=self.schema)

    def run_audit_sql(self, statements: list[tuple[str, list[Any]]]) -> None:
        """Statements with ``?`` parameters, on the driver connection the old log used."""
        if self.path is not None:
            conn = sqlite3.connect(self.path)
            conn.execute("PRAGMA journal_mode=WAL")
            for sql, params in statements:
                conn.execute(sql, params)
            conn.commit()
            conn.close()
            return
        with psycopg.connect(libpq_dsn(self.base_url)) as pg:
            for sql, params in statements:
                pg.execute(sql.replace("?", "%s"), params)  # type: ignore[arg-type]

    def version(self, table: str) -> list[str]:
        qualified = f'"{self.schema}".{table}' if self.schema else table
        engine = self.engine()
        with engine.connect() as conn:
            rows = conn.execute(sa.text(f"SELECT version_num FROM {qualified}")).all()
        engine.dispose()
        return [r[0] for r in rows]


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Db]:
    if request.param == "sqlite":
        path = tmp_path / "shared.db"
        yield Db("sqlite", f"sqlite:///{path}", None, path=path)
        return
    base = request.getfixturevalue("postgres_url")
    with postgres_schema(base) as (schema, url):
        yield Db("postgres", url, schema, base_url=base)


def make_db(request: pytest.FixtureRequest, tmp_path: Path, kind: str, name: str) -> Db:
    """A second database of the same kind as ``db`` (dropped at the end of the test)."""
    if kind == "sqlite":
        path = tmp_path / f"{name}.db"
        return Db("sqlite", f"sqlite:///{path}", None, path=path)
    base = request.getfixturevalue("postgres_url")
    context = postgres_schema(base)
    schema, url = context.__enter__()
    request.addfinalizer(lambda: context.__exit__(None, None, None))
    return Db("postgres", url, schema, base_url=base)


# -- audit ------------------------------------------------------------------------------
def _old_audit_rows(db: Db) -> None:
    prefix = f'"{db.schema}".' if db.schema else ""
    t = f"{prefix}audit_"
    statements: list[tuple[str, list[Any]]] = [(sql, []) for sql in audit_ddl(prefix)]
    for i in range(6):
        ts_us = int((T0 + timedelta(minutes=i)).timestamp()) * US
        statements.append(
            (
                f"INSERT INTO {t}predictions (prediction_id, ts_us, model, version, route, "
                "score, decision, latency_ms, entity_keys, features, feature_ts, explanation) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    f"old{i}",
                    ts_us,
                    "fraud",
                    "1",
                    "champion",
                    i / 10,
                    "approve",
                    1.5,
                    json.dumps({"card_id": f"c{i % 2}"}),
                    json.dumps({"amount": 10.0 * i, "country": "FR"}),
                    json.dumps({"amount": None}),
                    json.dumps({"amount": 0.5}) if i == 0 else None,
                ],
            )
        )
        statements.append(
            (
                f"INSERT INTO {t}entities (name, value, ts_us, prediction_id) VALUES (?, ?, ?, ?)",
                ["card_id", f"c{i % 2}", ts_us, f"old{i}"],
            )
        )
    labelled = int((T0 + timedelta(days=3)).timestamp()) * US
    statements += [
        (
            f"INSERT INTO {t}labels (prediction_id, label, label_ts_us) VALUES (?, ?, ?)",
            [f"old{i}", 1.0, labelled],
        )
        for i in (1, 2)
    ]
    db.run_audit_sql(statements)


def test_an_audit_log_made_before_migrations_keeps_every_row_and_takes_new_fields(
    db: Db,
) -> None:
    _old_audit_rows(db)
    log = db.audit_log()
    try:
        assert db.version("alembic_version_audit") == [AUDIT_HEAD]
        frame = log.window(T0, T0 + timedelta(hours=1))
        assert frame["prediction_id"].tolist() == [f"old{i}" for i in range(6)]
        assert frame["amount"].tolist() == [10.0 * i for i in range(6)]
        assert frame["label"].fillna(-1).tolist() == [-1, 1.0, 1.0, -1, -1, -1]
        assert frame["served_at"].isna().all()  # not kept then: readers fall back to ts
        assert frame["missing"].tolist() == [[]] * 6
        assert frame["outputs"].isna().all()
        old = log.get("old0")
        assert (old.ts, old.explanation, old.served_at, old.missing) == (
            T0,
            {"amount": 0.5},
            None,
            (),
        )
        assert log.by_entity("card_id", "c1")["prediction_id"].tolist() == ["old1", "old3", "old5"]

        served = T0 + timedelta(hours=2)
        log.write_batches(  # type: ignore[attr-defined]
            [
                AuditBatch(
                    ts=served,
                    model="fraud",
                    version="2",
                    route="v1",
                    latency_ms=1.0,
                    feature_names=("amount",),
                    values=[[None], [4.0]],
                    prediction_ids=["new0", "new1"],
                    scores=[0.2, 0.7],
                    decisions=["approve", "review"],
                    entity_keys=[{"card_id": "c1"}, {}],
                    feature_ts=[{}, {}],
                    event_ts=[T0 + timedelta(minutes=30), None],
                    missing=[["amount"], []],
                    outputs=[None, {"value": 3.2}],
                )
            ]
        )
        assert log.add_labels([Label("old3", 0.0), Label("new0", 1.0)]) == []
    finally:
        log.close()
    again = db.audit_log()  # a second open finds the schema current and changes nothing
    try:
        frame = again.window(T0, T0 + timedelta(days=1)).set_index("prediction_id")
        assert len(frame) == 8
        assert frame.loc["new0", "ts"] == pd.Timestamp(T0 + timedelta(minutes=30))
        assert frame.loc["new0", "missing"] == ["amount"]
        assert frame.loc["new1", "outputs"] == {"value": 3.2}
        assert frame.loc["new1", "served_at"] == pd.Timestamp(served)
        assert frame.loc["old3", "label"] == 0.0
        assert again.by_entity("card_id", "c1")["prediction_id"].tolist() == [
            "old1",
            "old3",
            "old5",
            "new0",
        ]
        assert db.version("alembic_version_audit") == [AUDIT_HEAD]
    finally:
        again.close()


def test_an_audit_log_at_revision_2_upgrades_keeping_rows_and_gains_relabels_and_keys(
    db: Db,
) -> None:
    audit_schema.upgrade(db.url, schema=db.schema, revision="a0002")
    prefix = f'"{db.schema}".' if db.schema else ""
    ts_us = int(T0.timestamp()) * US
    db.run_audit_sql(
        [
            (
                f"INSERT INTO {prefix}audit_predictions (prediction_id, ts_us, model, version, "
                "route, score, decision, latency_ms, entity_keys, features, feature_ts, "
                "served_us) VALUES (?, ?, 'fraud', '2', 'v1', 0.4, '', 1.0, '{}', ?, '{}', ?)",
                [pid, ts_us, json.dumps({"amount": 5.0}), ts_us],
            )
            for pid in ("r2a", "r2b")
        ]
        + [
            (
                f"INSERT INTO {prefix}audit_labels (prediction_id, label, label_ts_us) "
                "VALUES (?, ?, ?)",
                ["r2a", 1.0, ts_us],
            )
        ]
    )
    log = db.audit_log()
    try:
        assert db.version("alembic_version_audit") == [AUDIT_HEAD]
        assert log.window(T0, T0 + timedelta(hours=1))["prediction_id"].tolist() == ["r2a", "r2b"]
        labels, keys = label_store(log), idempotency_store(log)
        assert labels is not None
        assert keys is not None
        refused = labels.set_labels([Label("r2a", 0.0)], relabel=False, actor="x", now=T0)
        assert refused.conflicts == ["r2a"]  # the label kept before the upgrade counts
        labels.set_labels([Label("r2a", 0.0)], relabel=True, actor="x", now=T0)
        assert [(r.old_label, r.new_label) for r in labels.relabels("r2a")] == [(1.0, 0.0)]
        assert keys.claim("s", "k", "sha", now=T0, ttl_s=60, lease_s=30).state == "new"
    finally:
        log.close()


def test_an_audit_log_at_a0004_upgrades_to_tenants_keeping_rows_and_hourly_rollups(
    db: Db,
) -> None:
    """Rows written before tenants belong to ``default``; a tenant's rows are read apart;
    the SQLite rollup triggers of a0004 keep counting every row after the upgrade."""
    audit_schema.upgrade(db.url, schema=db.schema, revision="a0004_ui_route_hours")
    prefix = f'"{db.schema}".' if db.schema else ""
    ts_us = int(T0.timestamp()) * US
    db.run_audit_sql(
        [
            (
                f"INSERT INTO {prefix}audit_predictions (prediction_id, ts_us, model, version, "
                "route, score, decision, latency_ms, entity_keys, features, feature_ts, "
                "served_us) VALUES (?, ?, 'fraud', '2', 'v1', 0.4, '', 1.0, '{}', ?, '{}', ?)",
                [f"before{i}", ts_us + i, json.dumps({"amount": 5.0}), ts_us],
            )
            for i in range(3)
        ]
    )
    log = db.audit_log()
    try:
        assert db.version("alembic_version_audit") == [AUDIT_HEAD]
        assert log.get("before0").tenant == "default"
        log.write_batches(  # type: ignore[attr-defined]
            [
                AuditBatch(
                    ts=T0 + timedelta(minutes=1),
                    model="rival",
                    version="1",
                    route="v1",
                    latency_ms=1.0,
                    feature_names=("amount",),
                    values=[[1.0], [2.0]],
                    prediction_ids=["beta0", "beta1"],
                    scores=[0.1, 0.9],
                    decisions=["", ""],
                    entity_keys=[{}, {}],
                    feature_ts=[{}, {}],
                    tenant="beta",
                )
            ]
        )
        frame = log.window(T0, T0 + timedelta(hours=1))
        assert dict(zip(frame["prediction_id"], frame["tenant"], strict=True)) == {
            "before0": "default",
            "before1": "default",
            "before2": "default",
            "beta0": "beta",
            "beta1": "beta",
        }
        theirs = log.window(T0, T0 + timedelta(hours=1), tenant="beta")  # type: ignore[call-arg]
        assert theirs["prediction_id"].tolist() == ["beta0", "beta1"]
        assert log.hot_rows("beta") == 2  # type: ignore[attr-defined]
        assert log.get("beta1").tenant == "beta"
    finally:
        log.close()
    if db.path is not None:  # the rollups (SQLite only) still count every row
        with sqlite3.connect(db.path) as conn:
            rolled = conn.execute(
                "SELECT model, SUM(requests) FROM audit_route_hours GROUP BY model ORDER BY model"
            ).fetchall()
        assert rolled == [("fraud", 3), ("rival", 2)]


def test_an_audit_log_at_a0005_upgrades_to_staged_entities_keeping_every_lookup(
    db: Db,
) -> None:
    """Entity rows written before a0007 are in the indexed table: they are still found,
    beside rows staged after the upgrade and rows merged since."""
    _old_audit_rows(db)
    audit_schema.upgrade(db.url, schema=db.schema, revision="a0005_tenants")
    log = db.audit_log()
    try:
        assert db.version("alembic_version_audit") == [AUDIT_HEAD]
        assert isinstance(log, SqlAuditLog)
        assert log.by_entity("card_id", "c1")["prediction_id"].tolist() == ["old1", "old3", "old5"]
        log.entity_merge_rows = 10_000
        log.write(
            [
                AuditRecord(
                    prediction_id=f"new{i}",
                    ts=T0 + timedelta(hours=1, minutes=i),
                    model="fraud",
                    version="2",
                    route="champion",
                    score=0.5,
                    decision="approve",
                    latency_ms=1.0,
                    features={"amount": 1.0},
                    entity_keys={"card_id": f"c{i % 2}"},
                )
                for i in range(4)
            ]
        )
        staged = ["old1", "old3", "old5", "new1", "new3"]
        assert log.by_entity("card_id", "c1")["prediction_id"].tolist() == staged
        found = entity_predictions(log, "card_id", "c0")["prediction_id"].tolist()
        assert found == ["new2", "new0", "old4", "old2", "old0"]
        assert log.merge_entities() == 4
        assert log.by_entity("card_id", "c1")["prediction_id"].tolist() == staged
        assert len(entity_predictions(log, "card_id", "c0")) == 5
    finally:
        log.close()


def test_audit_revision_1_is_exactly_the_schema_made_before_migrations(
    db: Db, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    _old_audit_rows(db)
    fresh = make_db(request, tmp_path, db.kind, "fresh")
    audit_schema.upgrade(fresh.url, schema=fresh.schema, revision="a0001")
    old_engine, new_engine = db.engine(), fresh.engine()
    try:
        assert shape(new_engine, fresh.schema) == shape(old_engine, db.schema)
        if db.kind == "sqlite":  # SQLite keeps the statements: they are the same text
            query = sa.text("SELECT type, name, sql FROM sqlite_master ORDER BY name")
            with old_engine.connect() as old, new_engine.connect() as new:
                made = [r for r in new.execute(query).all() if "alembic" not in r[1]]
                assert made == list(old.execute(query).all())
    finally:
        old_engine.dispose()
        new_engine.dispose()


def test_workers_opening_one_audit_log_at_once_migrate_it_once(db: Db) -> None:
    _old_audit_rows(db)  # the slow case: stamp, then upgrade
    logs: list[AuditLog] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def open_log() -> None:
        start.wait()
        try:
            logs.append(db.audit_log())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_log) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        assert db.version("alembic_version_audit") == [AUDIT_HEAD]
        assert all(len(log.window(T0, T0 + timedelta(hours=1))) == 6 for log in logs)
    finally:
        for log in logs:
            log.close()


# -- monitoring -------------------------------------------------------------------------
def _report(seed: int, start: pd.Timestamp) -> Any:
    rng = np.random.default_rng(seed)
    ref = pd.DataFrame({"x": rng.normal(0, 1, 500), "c": rng.choice(["a", "b"], 500)})
    cur = pd.DataFrame({"x": rng.normal(1, 1, 500), "c": rng.choice(["a", "b"], 500)})
    report = drift_report(ref, cur, score=None, label=None)
    placed = {"model": "m", "version": 1, "route": "champion", "start": start}
    return type(report)(**{**report.__dict__, **placed, "end": start + pd.Timedelta(days=1)})


def test_monitoring_tables_made_before_migrations_keep_windows_results_and_incidents(
    db: Db,
) -> None:
    old = monitoring_metadata()
    windows, results, incidents = (old.tables[f"monitoring_{n}"] for n in _MONITORING)
    engine = db.engine()
    old.create_all(engine)
    with engine.begin() as conn:
        window_id = conn.execute(
            windows.insert().values(
                model="m",
                version=1,
                route="champion",
                window_start=T0,
                window_end=T0 + timedelta(days=1),
                computed_at=T0 + timedelta(days=1),
                rows=500,
                labelled=0,
                verdict="data-drift",
                summary="{}",
                histograms="{}",
            )
        ).inserted_primary_key[0]
        conn.execute(
            results.insert(),
            [
                {
                    "window_id": window_id,
                    "model": "m",
                    "version": 1,
                    "route": "champion",
                    "window_end": T0 + timedelta(days=1),
                    "feature": "x",
                    "statistic": statistic,
                    "value": 0.3,
                    "p_value": None,
                    "drifted": True,
                }
                for statistic in ("psi", "ks")
            ],
        )
        conn.execute(
            incidents.insert().values(
                model="m",
                version=1,
                route="champion",
                kind="data-drift",
                opened_at=T0 + timedelta(days=1),
                last_seen=T0 + timedelta(days=1),
                closed_at=None,
            )
        )
    engine.dispose()

    store = MonitoringStore(db.url)
    try:
        assert db.version("alembic_version_monitoring") == [MONITORING_HEAD]
        assert [w["verdict"] for w in store.window_rows("m")] == ["data-drift"]
        old_rows = store.series("m", "psi")
        assert old_rows["value"].tolist() == [0.3]
        assert old_rows[["lower", "upper"]].isna().all().all()  # judged by fixed thresholds
        incident = store.open_incident("m", 1, "champion", "data-drift")
        assert incident is not None
        opened = T0 + timedelta(days=1)  # SQLite hands times back naive (as before)
        assert incident.opened_at.replace(tzinfo=None) == opened.replace(tzinfo=None)
        new_id = store.save(_report(0, pd.Timestamp(T0 + timedelta(days=1))))
        assert new_id > window_id
        assert len(store.window_rows("m")) == 2
        assert store.close_all("m", 1, "champion", T0 + timedelta(days=2)) == 1
        assert store.open("m", 1, "champion", "concept-drift", T0) > incident.id
    finally:
        store.dispose()


def test_monitoring_revision_1_is_exactly_the_schema_made_before_migrations(
    db: Db, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    old_engine = db.engine()
    monitoring_metadata().create_all(old_engine)
    fresh = make_db(request, tmp_path, db.kind, "fresh")
    new_engine = fresh.engine()
    upgrade_schema(new_engine, monitoring_branch(), revision="m0001")
    try:
        assert shape(new_engine) == shape(old_engine)
    finally:
        old_engine.dispose()
        new_engine.dispose()


def test_monitoring_and_the_audit_log_share_a_database_and_upgrade_apart(db: Db) -> None:
    store = MonitoringStore(db.url)
    store.dispose()
    assert db.version("alembic_version_monitoring") == [MONITORING_HEAD]
    if db.kind == "postgres":  # the audit log's tables are in their own schema there
        return
    log = db.audit_log()
    log.close()
    assert db.version("alembic_version_audit") == [AUDIT_HEAD]
    assert db.version("alembic_version_monitoring") == [MONITORING_HEAD]


def test_monitoring_revision_2_keeps_the_windows_and_results_of_revision_1(db: Db) -> None:
    """A store of revision m0001 with results upgrades to m0002: the rows stay (their band
    limits NULL) and learned references can be kept."""
    engine = db.engine()
    upgrade_schema(engine, monitoring_branch(), revision="m0001")
    engine.dispose()
    old = MonitoringStore.__new__(MonitoringStore)  # the m0001 tables, without upgrading
    metadata = monitoring_metadata()
    old.engine = db.engine()
    old.windows, old.results, old.incidents = (
        metadata.tables[f"monitoring_{n}"] for n in _MONITORING
    )
    first = _report(0, pd.Timestamp(T0))
    with old.engine.begin() as conn:
        window_id = conn.execute(
            old.windows.insert().values(
                model="m",
                version=1,
                route="champion",
                window_start=T0,
                window_end=T0 + timedelta(days=1),
                computed_at=T0,
                rows=first.rows,
                labelled=0,
                verdict=first.verdict,
                summary=json.dumps(first.summary()),
                histograms="{}",
            )
        ).inserted_primary_key[0]
        conn.execute(
            old.results.insert().values(
                window_id=window_id,
                model="m",
                version=1,
                route="champion",
                window_end=T0 + timedelta(days=1),
                feature="x",
                statistic="psi",
                value=0.4,
                p_value=None,
                drifted=True,
            )
        )
    old.engine.dispose()

    store = MonitoringStore(db.url)
    try:
        assert db.version("alembic_version_monitoring") == [MONITORING_HEAD]
        kept = store.series("m", "psi")
        assert kept["value"].tolist() == [0.4]
        assert kept[["lower", "upper"]].isna().all().all()
        reference = _learned_reference()
        store.save_reference("m", 1, "champion", reference, (T0, T0 + timedelta(days=6)))
        again = store.learned_reference("m", 1, "champion")
        assert again is not None
        assert again.bands is not None
        assert again.bands.drift.keys() == reference.bands.drift.keys()  # type: ignore[union-attr]
    finally:
        store.dispose()


def test_monitoring_at_m0002_upgrades_to_tenants_keeping_windows_and_results(db: Db) -> None:
    """Windows and results stored before tenants belong to ``default``; a tenant's are
    read apart."""
    engine = db.engine()
    upgrade_schema(engine, monitoring_branch(), revision="m0002")
    engine.dispose()
    old = MonitoringStore.__new__(MonitoringStore)  # the m0002 tables, without upgrading
    metadata = monitoring_metadata()
    old.engine = db.engine()
    with old.engine.begin() as conn:
        conn.execute(
            metadata.tables["monitoring_windows"].insert().values(
                model="m", version=1, route="champion", window_start=T0,
                window_end=T0 + timedelta(days=1), computed_at=T0, rows=500, labelled=0,
                verdict="no-drift", summary="{}", histograms="{}",
            )
        )  # fmt: skip
    old.engine.dispose()

    store = MonitoringStore(db.url)
    try:
        assert db.version("alembic_version_monitoring") == [MONITORING_HEAD]
        assert [w["tenant"] for w in store.window_rows("m")] == ["default"]
        store.save(_report(0, pd.Timestamp(T0 + timedelta(days=1))), tenant="beta")
        assert [w["tenant"] for w in store.window_rows("m")] == ["default", "beta"]
        assert len(store.window_rows("m", tenant="default")) == 1
        theirs = store.series("m", tenant="beta")
        assert len(theirs) > 0
        assert set(theirs["tenant"]) == {"beta"}
        assert store.series("m", tenant="default").empty
    finally:
        store.dispose()


def _learned_reference() -> Any:
    rng = np.random.default_rng(1)
    period = pd.DataFrame({"x": rng.normal(0, 1, 3_000)})
    config = MonitoringConfig(window_by="count", window_size="500", min_rows=100)
    return learn_reference(period, Reference(Profile.from_frame(period)), config)


# -- feature definitions ----------------------------------------------------------------
CARD = Entity("card", ["card_id"])


def _view(*fields: str) -> FeatureView:
    return FeatureView(
        "card_stats",
        entities=[CARD],
        source="cards.parquet",
        timestamp_field="ts",
        schema=[Field(name, "float64") for name in fields],
    )


def test_feature_definitions_made_before_migrations_keep_versions_and_statistics(
    db: Db,
) -> None:
    engine = db.engine()
    create_old_features(engine)
    old_spec = {"kind": "feature_view", "name": "card_stats", "schema": {"x": "float64"}}
    applied = datetime(2025, 5, 1, 8, 0)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO feature_definitions (name, version, kind, spec, applied_at, active) "
                "VALUES (:name, :version, :kind, :spec, :at, :active)"
            ),
            [
                {
                    "name": "card_stats",
                    "version": "v-old",
                    "kind": "feature_view",
                    "spec": json.dumps(old_spec),
                    "at": applied,
                    "active": True,
                }
            ],
        )
        conn.execute(
            sa.text(
                "INSERT INTO feature_stats (view, view_version, computed_at, row_count, newest, "
                "freshness_s, columns) VALUES ('card_stats', 'v-old', :at, 40, :at, 1.5, '{}')"
            ),
            {"at": applied},
        )
    registry = DefinitionRegistry(engine)
    try:
        assert db.version("alembic_version_features") == [FEATURES_HEAD]
        assert registry.active() == {"card_stats": ("v-old", old_spec)}
        assert [s["row_count"] for s in registry.stats_history("card_stats")] == [40]
        plan = registry.apply([CARD, _view("x", "y")])
        assert [c.kind for c in plan.changes if c.name == "card_stats"] == ["changed"]
        assert [v[0] for v in registry.versions("card_stats")] == ["v-old", _view("x", "y").version]
        registry.record_stats(
            {
                "view": "card_stats",
                "view_version": _view("x", "y").version,
                "computed_at": applied + timedelta(days=1),
                "row_count": 41,
                "newest": None,
                "freshness_s": None,
                "columns": {"x": {"nulls": 0}},
            }
        )
        assert [s["row_count"] for s in registry.stats_history("card_stats")] == [41, 40]
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT version FROM feature_schema")).all() == [(1,)]
    finally:
        registry.close()


def test_feature_definitions_at_f0001_upgrade_to_tenants_and_stay_the_default_tenants(
    db: Db,
) -> None:
    """Definitions applied before tenants are ``default``'s: another tenant neither sees
    them nor can take their names, and applies its own beside them."""
    engine = db.engine()
    upgrade_schema(engine, FEATURES, revision="f0001")
    engine.dispose()
    old = DefinitionRegistry.__new__(DefinitionRegistry)  # apply as f0001's code did
    old.engine = db.engine()
    with old.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO feature_definitions (name, version, kind, spec, applied_at, active) "
                "VALUES ('card_stats', 'v-old', 'feature_view', :spec, :at, :active)"
            ),
            {"spec": json.dumps({"kind": "feature_view"}), "at": T0, "active": True},
        )
    old.engine.dispose()

    registry = DefinitionRegistry(db.engine())
    try:
        assert db.version("alembic_version_features") == [FEATURES_HEAD]
        assert list(registry.active("default")) == ["card_stats"]
        assert registry.active("beta") == {}
        with pytest.raises(ConflictError, match="card_stats belong to another tenant"):
            registry.apply([CARD, _view("x")], tenant="beta")
        beta_card = Entity("beta_card", ["card_id"])
        other = FeatureView(
            "beta_stats", entities=[beta_card], source="b.parquet", timestamp_field="ts",
            schema=[Field("x", "float64")],
        )  # fmt: skip
        registry.apply([beta_card, other], tenant="beta")
        assert sorted(registry.active("beta")) == ["beta_card", "beta_stats"]
        assert sorted(registry.active()) == ["beta_card", "beta_stats", "card_stats"]
        assert registry.active("default")["card_stats"][0] == "v-old"  # untouched by beta
    finally:
        registry.close()


def test_features_revision_1_is_exactly_the_schema_made_before_migrations(
    db: Db, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    old_engine = db.engine()
    create_old_features(old_engine)
    fresh = make_db(request, tmp_path, db.kind, "fresh")
    new_engine = fresh.engine()
    upgrade_schema(new_engine, FEATURES, revision="f0001")
    try:
        assert shape(new_engine) == shape(old_engine)
        query = sa.text("SELECT version FROM feature_schema")
        with old_engine.connect() as old, new_engine.connect() as new:
            assert new.execute(query).all() == old.execute(query).all()
    finally:
        old_engine.dispose()
        new_engine.dispose()


# -- registry ---------------------------------------------------------------------------
def test_a_registry_at_r0002_upgrades_to_the_loop_tables_with_its_rows_intact(
    db: Db, tmp_path: Path
) -> None:
    engine = make_engine(db.url)
    upgrade_schema(engine, REGISTRY, revision="r0002")
    assert "driftloop_loop_decisions" not in sa.inspect(engine).get_table_names()
    engine.dispose()
    old = old_registry_rows(db.url, str(tmp_path / "a"))
    old.traffic.set("loans", {"arms": {"champion": 100}}, who="ana", why="before")
    old.close()

    registry = Registry(make_engine(db.url), artifact_store_from_url(str(tmp_path / "a")))
    try:
        assert db.version("driftloop_registry_version") == [REGISTRY_HEAD]
        assert registry.aliases("loans") == {"champion": 2}
        assert registry.traffic.get("loans").reason == "before"
        request_retrain(registry, "loans", "after the upgrade", who="ana")
        assert [d.rule for d in history(registry.engine, "loans")] == ["after the upgrade"]
        assert Lease(registry, "ctl", timedelta(seconds=5)).acquire("loans")
    finally:
        registry.close()


def test_a_registry_at_r0003_upgrades_to_tenants_and_keys_keeping_every_row(
    db: Db, tmp_path: Path
) -> None:
    """Models registered before tenants belong to tenant ``default``; versions, aliases,
    traffic policies and loop decisions stay; keys can be made at once."""
    engine = make_engine(db.url)
    upgrade_schema(engine, REGISTRY, revision="r0003")
    assert "driftloop_api_keys" not in sa.inspect(engine).get_table_names()
    engine.dispose()
    donor = old_registry_rows(db.url, str(tmp_path / "a"))
    donor.traffic.set("loans", {"arms": {"champion": 100}}, who="ana", why="before")
    request_retrain(donor, "loans", "before tenants", who="ana")
    donor.close()

    registry = Registry(make_engine(db.url), artifact_store_from_url(str(tmp_path / "a")))
    try:
        assert db.version("driftloop_registry_version") == [REGISTRY_HEAD]
        assert registry.list_models() == [
            {"name": "loans", "tenant": "default", "latest_version": 2, "aliases": {"champion": 2}}
        ]
        assert [v.metrics for v in registry.versions("loans")] == [{"roc_auc": 0.8}] * 2
        assert registry.traffic.get("loans").reason == "before"  # type: ignore[union-attr]
        assert [d.rule for d in history(registry.engine, "loans")] == ["before tenants"]
        key, secret = registry.keys.create("default", ["predict"], who="ana")
        assert registry.keys.verify(secret) == key
        assert registry.keys.snapshot().model_tenants == {"loans": "default"}
        model, X = toy_lightgbm()
        mv = registry.register("loans", model, signature=Signature.from_frame(X))
        assert mv.version == 3
    finally:
        registry.close()


def test_a_registry_at_r0004_upgrades_to_shared_usage_keeping_keys_and_quotas(
    db: Db, tmp_path: Path
) -> None:
    """Tenants, keys and quotas made at r0004 stay; the shared daily counts start empty
    and the audit storage quota is unset until given."""
    engine = make_engine(db.url)
    upgrade_schema(engine, REGISTRY, revision="r0004")
    old = sa.Table("driftloop_tenants", sa.MetaData(), autoload_with=engine)
    with engine.begin() as conn:
        conn.execute(old.insert().values(name="acme", created_at=T0, requests_per_day=50))
    engine.dispose()

    registry = Registry(make_engine(db.url), artifact_store_from_url(str(tmp_path / "a")))
    try:
        assert db.version("driftloop_registry_version") == [REGISTRY_HEAD]
        snapshot = registry.keys.snapshot()
        assert (snapshot.quotas, snapshot.audit_quotas) == ({"acme": 50}, {})
        usage = UsageStore(registry.engine)
        assert usage.used("acme", T0.date()) == 0
        assert usage.claim("acme", T0.date(), 40, limit=50) == 40
        assert usage.claim("acme", T0.date(), 40, limit=50) == 10
        registry.keys.set_quota("acme", 50, who="ana", max_audit_rows=1_000)
        assert registry.keys.snapshot().audit_quotas == {"acme": 1_000}
    finally:
        registry.close()


def test_registry_newest_revision_is_exactly_the_tables_the_code_uses(
    db: Db, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    migrated = db.engine()
    upgrade_schema(migrated, REGISTRY)
    declared_db = make_db(request, tmp_path, db.kind, "declared")
    declared = declared_db.engine()
    registry_metadata.create_all(declared)
    try:
        tables = (
            "driftloop_loop_decisions",
            "driftloop_loop_leases",
            "driftloop_models",
            "driftloop_tenants",
            "driftloop_api_keys",
            "driftloop_key_events",
            "driftloop_usage",
        )
        got, want = shape(migrated), shape(declared)
        assert {t: got[t] for t in tables} == {t: want[t] for t in tables}
    finally:
        migrated.dispose()
        declared.dispose()
