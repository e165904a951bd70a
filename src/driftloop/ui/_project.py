"""What the dashboard reads: one project's registry, audit log, monitoring results and
feature statistics, each opened on first use from the project's settings and shared by
every request (each part's own object is safe across the server's threads)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa

from driftloop.audit import AuditLog, open_audit_log
from driftloop.core.config import Settings
from driftloop.features import DefinitionRegistry, FeatureStore
from driftloop.monitoring import MonitoringStore
from driftloop.registry import Registry, TrafficStore

__all__ = ["ProjectReader"]

_T = TypeVar("_T")


class ProjectReader:
    """The parts of the project at ``settings`` (opened lazily, closed by :meth:`close`).

    ``traffic`` replaces the registry's traffic store (a server that serves from a models
    folder keeps its policies elsewhere).
    """

    def __init__(self, settings: Settings, *, traffic: TrafficStore | None = None) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._opened: dict[str, Any] = {}
        self._closers: list[Callable[[], None]] = []
        self._traffic = traffic

    def _once(self, key: str, make: Callable[[], _T], close: Callable[[_T], None]) -> _T:
        with self._lock:
            if key not in self._opened:
                made = make()
                self._opened[key] = made
                self._closers.append(lambda: close(made))
            found: _T = self._opened[key]
            return found

    @property
    def registry(self) -> Registry:
        return self._once("registry", lambda: Registry.from_settings(self.settings), Registry.close)

    @property
    def traffic(self) -> TrafficStore:
        return self._traffic if self._traffic is not None else self.registry.traffic

    @property
    def audit(self) -> AuditLog:
        s = self.settings
        log: AuditLog = self._once(
            "audit", lambda: open_audit_log(s.audit.url, root=s.root), _close
        )
        return log

    @property
    def monitoring(self) -> MonitoringStore:
        s = self.settings
        return self._once(
            "monitoring",
            lambda: MonitoringStore(s.audit.url, root=s.root),
            MonitoringStore.dispose,
        )

    @property
    def features(self) -> DefinitionRegistry | None:
        """Feature definitions and statistics (never the offline store: its DuckDB file
        is locked by whoever materializes)."""
        found: DefinitionRegistry | None = self._once(
            "features", lambda: FeatureStore(self.settings).registry, _close
        )
        return found

    def open_incidents(self, model: str) -> list[dict[str, Any]]:
        """The model's drift incidents not closed yet, newest first."""
        i = self.monitoring.incidents
        query = (
            sa.select(i)
            .where(i.c.model == model, i.c.closed_at.is_(None))
            .order_by(i.c.opened_at.desc())
        )
        with self.monitoring.engine.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings().all()]

    def latest_windows(self, model: str) -> list[dict[str, Any]]:
        """The newest assessed window of each version and route of ``model`` (without the
        histograms), newest first."""
        w = self.monitoring.windows
        newest = (
            sa.select(sa.func.max(w.c.id).label("id"))
            .where(w.c.model == model)
            .group_by(w.c.version, w.c.route)
            .subquery()
        )
        columns = [c for c in w.c if c.name != "histograms"]
        query = sa.select(*columns).where(w.c.id.in_(sa.select(newest.c.id)))
        with self.monitoring.engine.connect() as conn:
            rows = [dict(row) for row in conn.execute(query).mappings().all()]
        return sorted(rows, key=lambda r: (r["window_end"], r["rows"]), reverse=True)

    def newest_labelled_window(self, model: str) -> dict[str, Any] | None:
        """The newest window of ``model`` assessed with labels (realized performance), the
        one with most labels among those ending last; None when none had labels."""
        w = self.monitoring.windows
        columns = [c for c in w.c if c.name != "histograms"]
        query = (
            sa.select(*columns)
            .where(w.c.model == model, w.c.labelled > 0)
            .order_by(w.c.window_end.desc(), w.c.labelled.desc())
            .limit(1)
        )
        with self.monitoring.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return None if row is None else dict(row)

    def windows(self, model: str) -> list[dict[str, Any]]:
        """Every assessed window of ``model`` without its histograms, oldest first."""
        w = self.monitoring.windows
        columns = [c for c in w.c if c.name != "histograms"]
        query = sa.select(*columns).where(w.c.model == model).order_by(w.c.window_end, w.c.id)
        with self.monitoring.engine.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings().all()]

    def results(self, window_ids: list[int], statistics: list[str]) -> list[dict[str, Any]]:
        """The monitoring results of these windows for these statistics (window_id,
        window_end, feature, statistic, value, drifted), oldest first: read by the
        results' window index, only the columns the drift page draws."""
        r = self.monitoring.results
        columns = [r.c.window_id, r.c.window_end, r.c.feature, r.c.statistic, r.c.value,
                   r.c.drifted]  # fmt: skip
        query = (
            sa.select(*columns)
            .where(r.c.window_id.in_(window_ids), r.c.statistic.in_(statistics))
            .order_by(r.c.window_end)
        )
        with self.monitoring.engine.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings().all()]

    def histograms(self, window_id: int) -> str | None:
        """The stored histograms (JSON text) of one window."""
        w = self.monitoring.windows
        with self.monitoring.engine.connect() as conn:
            found = conn.execute(sa.select(w.c.histograms).where(w.c.id == window_id)).scalar()
        return None if found is None else str(found)

    def close(self) -> None:
        with self._lock:
            for close in reversed(self._closers):
                close()
            self._closers.clear()
            self._opened.clear()


def _close(thing: Any) -> None:
    if thing is not None:
        thing.close()
