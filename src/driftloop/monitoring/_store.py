"""Monitoring results as a time series, in the audit log's database (SQLAlchemy 2 Core).

Tables (created and upgraded by the monitoring migrations, :mod:`._schema`):

* ``monitoring_windows``: one row per assessed window (model, version, route, start, end),
  with its verdict, reasons, performance and the per-feature histograms the HTML report
  draws;
* ``monitoring_results``: one row per window, feature and statistic (long format, so
  trends chart with one query);
* ``monitoring_incidents``: open and closed drift incidents, so an alert is sent once per
  incident and not once per window;
* ``monitoring_references``: per model version and route, the reference learned from its
  reference period (``[monitoring] thresholds = "learned"``), learned once.

A result row judged against a learned band keeps the band's limits (``lower``,
``upper``); estimated metrics are rows named ``estimated_<metric>``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from driftloop.core.errors import BackendUnavailableError
from driftloop.core.migrations import upgrade_schema
from driftloop.core.urls import local_path
from driftloop.monitoring._bands import Bands
from driftloop.monitoring._references import Reference
from driftloop.monitoring._report import DriftReport
from driftloop.monitoring._schema import branch
from driftloop.stats import Band

__all__ = ["Incident", "MonitoringStore"]


def _tables(metadata: sa.MetaData, prefix: str) -> tuple[sa.Table, sa.Table, sa.Table, sa.Table]:
    """The tables as the code uses them; a change here goes with a new migration."""

    def key() -> list[sa.Column[Any]]:
        return [
            sa.Column("model", sa.String(200), nullable=False),
            sa.Column("version", sa.Integer, nullable=False),
            sa.Column("route", sa.String(100), nullable=False),
        ]

    windows = sa.Table(
        f"{prefix}windows",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        *key(),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("labelled", sa.Integer, nullable=False),
        sa.Column("verdict", sa.String(40), nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("histograms", sa.Text, nullable=False),
        sa.Column("tenant", sa.String(100), nullable=False, server_default="default"),
        sa.UniqueConstraint("model", "version", "route", "window_start", "window_end"),
    )
    results = sa.Table(
        f"{prefix}results",
        metadata,
        sa.Column("window_id", sa.Integer, nullable=False, index=True),
        *key(),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("feature", sa.String(200), nullable=False),
        sa.Column("statistic", sa.String(40), nullable=False),
        sa.Column("value", sa.Float, nullable=True),
        sa.Column("p_value", sa.Float, nullable=True),
        sa.Column("drifted", sa.Boolean, nullable=False),
        sa.Column("lower", sa.Float, nullable=True),
        sa.Column("upper", sa.Float, nullable=True),
        sa.Column("tenant", sa.String(100), nullable=False, server_default="default"),
        sa.Index(f"{prefix}results_series", "model", "feature", "statistic", "window_end"),
    )
    incidents = sa.Table(
        f"{prefix}incidents",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        *key(),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
    )
    references = sa.Table(
        f"{prefix}references",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        *key(),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("learned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reference", sa.Text, nullable=False),
        sa.UniqueConstraint("model", "version", "route"),
    )
    return windows, results, incidents, references


@dataclass(frozen=True)
class Incident:
    """A drift incident: open from the first window with the verdict until one without."""

    id: int
    model: str
    version: int
    route: str
    kind: str
    opened_at: datetime
    last_seen: datetime
    closed_at: datetime | None


class MonitoringStore:
    """Monitoring tables in the database at ``url`` (``sqlite:///...`` or ``postgresql://``)."""

    def __init__(
        self, url: str, *, root: str | Path = ".", table_prefix: str = "monitoring_"
    ) -> None:
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
            path = local_path(url, Path(root)).resolve()
            path.parent.mkdir(parents=True, exist_ok=True)
            url = f"sqlite:///{path}"
        self.engine: Engine = sa.create_engine(url)
        self._metadata = sa.MetaData()
        self.windows, self.results, self.incidents, self.references = _tables(
            self._metadata, table_prefix
        )
        upgrade_schema(self.engine, branch(table_prefix, self._metadata))

    @contextmanager
    def _begin(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as conn:
                yield conn
        except sa.exc.OperationalError as exc:
            raise BackendUnavailableError(
                f"Monitoring database {self.engine.url!r} cannot be used: {exc.orig}."
            ) from exc

    def assessed_counts(self, report: DriftReport) -> tuple[int, int] | None:
        """How many records and labelled records the stored assessment of this window had
        (None: not stored). A window assessed while still filling has fewer records."""
        w = self.windows
        with self._begin() as conn:
            query = sa.select(w.c.rows, w.c.labelled).where(*self._window_key(report))
            found = conn.execute(query).first()
        return None if found is None else (int(found[0]), int(found[1]))

    def _window_key(self, report: DriftReport) -> list[sa.ColumnElement[bool]]:
        w = self.windows
        return [
            w.c.model == report.model,
            w.c.version == report.version,
            w.c.route == report.route,
            w.c.window_start == _utc(report.start),
            w.c.window_end == _utc(report.end),
        ]

    def save(self, report: DriftReport, *, tenant: str = "default") -> int:
        """Store (or replace) the assessment of one window, as ``tenant``'s (the tenant of
        the records assessed); return its id."""
        w, r = self.windows, self.results
        labelled = report.performance.labelled if report.performance else 0
        with self._begin() as conn:
            old = conn.execute(sa.select(w.c.id).where(*self._window_key(report))).first()
            if old is not None:
                conn.execute(r.delete().where(r.c.window_id == old[0]))
                conn.execute(w.delete().where(w.c.id == old[0]))
            inserted = conn.execute(
                w.insert().values(
                    model=report.model,
                    version=report.version,
                    route=report.route,
                    window_start=_utc(report.start),
                    window_end=_utc(report.end),
                    computed_at=datetime.now(UTC),
                    rows=report.rows,
                    labelled=labelled,
                    verdict=report.verdict,
                    summary=json.dumps(report.summary()),
                    histograms=json.dumps(histograms(report)),
                    tenant=tenant,
                )
            )
            window_id = _new_id(inserted)
            rows = [{**row, "tenant": tenant} for row in _result_rows(report, window_id)]
            if rows:
                conn.execute(r.insert(), rows)
        return window_id

    def series(
        self, model: str, statistic: str | None = None, *, tenant: str | None = None
    ) -> pd.DataFrame:
        """The time series of results of ``model`` (one statistic, or all; of ``tenant``
        only when given)."""
        r = self.results
        query = sa.select(r).where(r.c.model == model).order_by(r.c.window_end)
        if statistic is not None:
            query = query.where(r.c.statistic == statistic)
        if tenant is not None:
            query = query.where(r.c.tenant == tenant)
        with self._begin() as conn:
            return pd.DataFrame(conn.execute(query).mappings().all(), columns=list(r.c.keys()))

    def window_rows(self, model: str, *, tenant: str | None = None) -> list[dict[str, Any]]:
        """Every stored window of ``model`` (of ``tenant`` only when given), oldest first."""
        w = self.windows
        query = sa.select(w).where(w.c.model == model).order_by(w.c.window_end, w.c.version)
        if tenant is not None:
            query = query.where(w.c.tenant == tenant)
        with self._begin() as conn:
            return [dict(row) for row in conn.execute(query).mappings().all()]

    def learned_reference(self, model: str, version: int, route: str) -> Reference | None:
        """The reference learned for this model version and route, if any."""
        t = self.references
        query = sa.select(t.c.reference).where(
            t.c.model == model, t.c.version == version, t.c.route == route
        )
        with self._begin() as conn:
            found = conn.execute(query).first()
        return None if found is None else Reference.from_dict(json.loads(found[0]))

    def save_reference(
        self,
        model: str,
        version: int,
        route: str,
        reference: Reference,
        period: tuple[datetime | pd.Timestamp, datetime | pd.Timestamp],
    ) -> None:
        """Keep (or replace) the reference learned from ``period`` (start, end)."""
        t = self.references
        with self._begin() as conn:
            conn.execute(
                t.delete().where(t.c.model == model, t.c.version == version, t.c.route == route)
            )
            conn.execute(
                t.insert().values(
                    model=model,
                    version=version,
                    route=route,
                    period_start=_utc(period[0]),
                    period_end=_utc(period[1]),
                    learned_at=datetime.now(UTC),
                    reference=json.dumps(reference.to_dict()),
                )
            )

    def open_incident(self, model: str, version: int, route: str, kind: str) -> Incident | None:
        """The open incident of this kind, if any."""
        i = self.incidents
        query = sa.select(i).where(
            i.c.model == model,
            i.c.version == version,
            i.c.route == route,
            i.c.kind == kind,
            i.c.closed_at.is_(None),
        )
        with self._begin() as conn:
            row = conn.execute(query).mappings().first()
        return None if row is None else Incident(**dict(row))

    def open(self, model: str, version: int, route: str, kind: str, at: datetime) -> int:
        """Open an incident; return its id."""
        with self._begin() as conn:
            result = conn.execute(
                self.incidents.insert().values(
                    model=model,
                    version=version,
                    route=route,
                    kind=kind,
                    opened_at=_utc(at),
                    last_seen=_utc(at),
                    closed_at=None,
                )
            )
        return _new_id(result)

    def touch(self, incident_id: int, at: datetime) -> None:
        """Record that an open incident was seen again."""
        i = self.incidents
        with self._begin() as conn:
            conn.execute(i.update().where(i.c.id == incident_id).values(last_seen=_utc(at)))

    def close_all(self, model: str, version: int, route: str, at: datetime) -> int:
        """Close every open incident of this model version and route; return how many."""
        i = self.incidents
        with self._begin() as conn:
            result = conn.execute(
                i.update()
                .where(
                    i.c.model == model,
                    i.c.version == version,
                    i.c.route == route,
                    i.c.closed_at.is_(None),
                )
                .values(closed_at=_utc(at))
            )
        return int(result.rowcount)

    def dispose(self) -> None:
        """Close the connection pool."""
        self.engine.dispose()


def _new_id(result: sa.CursorResult[Any]) -> int:
    key = result.inserted_primary_key
    if key is None:  # pragma: no cover - every table here has an integer key
        raise RuntimeError("the database returned no key for an inserted row")
    return int(key[0])


def _utc(ts: datetime | pd.Timestamp | None) -> datetime:
    if ts is None:
        return datetime(1970, 1, 1, tzinfo=UTC)
    stamp = pd.Timestamp(ts)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.to_pydatetime()


def _num(x: Any) -> float | None:
    return float(x) if x is not None and np.isfinite(float(x)) else None


_NAME_LENGTH, _STATISTIC_LENGTH = 200, 40  # of the results' feature and statistic columns


def _limits(band: Band | None) -> dict[str, float | None]:
    if band is None:
        return {"lower": None, "upper": None}
    return {"lower": _num(band.lower), "upper": _num(band.upper)}


def _result_rows(report: DriftReport, window_id: int) -> list[dict[str, Any]]:
    base = {
        "window_id": window_id,
        "model": report.model,
        "version": report.version,
        "route": report.route,
        "window_end": _utc(report.end),
    }
    bands = report.bands or Bands(0, 0)
    rows: list[dict[str, Any]] = []
    for table in (report.features, report.prediction):
        if table is None:
            continue
        long = table.to_frame().dropna(subset=["statistic"])
        rows.extend(
            {
                **base,
                "feature": str(rec["feature"]),
                "statistic": str(rec["statistic"]),
                "value": _num(rec["value"]),
                "p_value": _num(rec["p_value"]),
                "drifted": bool(rec["drifted"]),
                **_limits(bands.drift.get((str(rec["feature"]), str(rec["statistic"])))),
            }
            for rec in long.to_dict("records")
        )
    drifted = set(report.drifted_features)
    rows.extend(
        {
            **base,
            "feature": name,
            "statistic": "missing_rate",
            "value": rate,
            "p_value": None,
            "drifted": name in drifted,
            **_limits(None),
        }
        for name, rate in report.missing_rates.items()
        if rate > 0 and len(name) <= _NAME_LENGTH
    )
    # The task's metrics by name (their standard errors stay in the window's summary), and
    # the estimated ones as estimated_<name>.
    for prefix, performance, dropped, banded in (
        ("", report.performance, report.dropped_metrics, bands.performance),
        ("estimated_", report.estimated, report.estimated_drops, bands.estimated),
    ):
        if performance is None:
            continue
        values = {"labelled" if not prefix else "rows": float(performance.labelled)}
        values.update(performance.metrics)
        rows.extend(
            {
                **base,
                "feature": "",
                "statistic": prefix + name,
                "value": _num(value),
                "p_value": None,
                "drifted": name in dropped,
                **_limits(banded.get(name)),
            }
            for name, value in values.items()
            if not name.endswith("_se") and len(prefix + name) <= _STATISTIC_LENGTH
        )
    return rows


def histograms(report: DriftReport) -> dict[str, dict[str, list[float]]]:
    """Per feature (and ``score``): reference and current proportions per bin."""
    out: dict[str, dict[str, list[float]]] = {}
    for table in (report.features, report.prediction):
        if table is None:
            continue
        for pair in (table.numeric, table.categorical):
            if pair is None:
                continue
            for i, name in enumerate(pair.names):
                m = pair.mask[i]
                ref, cur = pair.ref_counts[i][m], pair.cur_counts[i][m]
                out[name] = {
                    "reference": [round(float(v), 4) for v in ref / max(ref.sum(), 1)],
                    "current": [round(float(v), 4) for v in cur / max(cur.sum(), 1)],
                }
    return out
