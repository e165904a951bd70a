"""Monitoring tables in PostgreSQL, as when the audit log lives there."""

from __future__ import annotations

import uuid

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from driftloop.monitoring import AlertManager, MonitoringStore, drift_report

pytestmark = pytest.mark.integration


def test_results_and_incidents_round_trip_in_postgres(postgres_url: str) -> None:
    prefix = f"mon_{uuid.uuid4().hex[:8]}_"
    store = MonitoringStore(postgres_url, table_prefix=prefix)
    try:
        rng = np.random.default_rng(0)
        ref = pd.DataFrame({"x": rng.normal(0, 1, 2_000), "c": rng.choice(["a", "b"], 2_000)})
        cur = pd.DataFrame({"x": rng.normal(1, 1, 2_000), "c": rng.choice(["a", "b"], 2_000)})
        report = drift_report(ref, cur, score=None, label=None)
        start = pd.Timestamp("2025-01-01", tz="UTC")
        placed = type(report)(
            **{
                **report.__dict__,
                "model": "m",
                "version": 1,
                "route": "champion",
                "start": start,
                "end": start + pd.Timedelta(days=1),
            }
        )
        store.save(placed)
        store.save(placed)  # replaced, not duplicated
        assert len(store.window_rows("m")) == 1
        psi = store.series("m", "psi")
        assert set(psi["feature"]) == {"x", "c"}
        assert bool(psi.loc[psi["feature"] == "x", "drifted"].iloc[0])
        manager = AlertManager(store, [])
        assert manager.observe(placed) is not None
        assert manager.observe(placed) is None
    finally:
        with store.engine.begin() as conn:
            for table in (store.windows, store.results, store.incidents):
                conn.execute(sa.text(f'DROP TABLE IF EXISTS "{table.name}"'))
            conn.execute(sa.text(f'DROP TABLE IF EXISTS "alembic_version_{prefix[:-1]}"'))
        store.dispose()
