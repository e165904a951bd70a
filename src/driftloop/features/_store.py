"""``FeatureStore``: the one object users hold — training frames, online reads, pushes."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from driftloop.compute import Engine, LocalEngine, open_engine
from driftloop.core.config import Settings
from driftloop.core.errors import DataValidationError, InvalidParameterError
from driftloop.core.urls import local_path, scheme_of
from driftloop.features._catalog import Catalog, Definition
from driftloop.features._definitions import FeatureView
from driftloop.features._offline import OfflineStore, ViewRequest
from driftloop.features._on_demand import apply_on_demand
from driftloop.features._online import (
    OnlineEvent,
    OnlineRow,
    OnlineStore,
    SqliteOnlineStore,
    read_batch,
)
from driftloop.features._online_cache import CachedOnlineStore
from driftloop.features._partitioned import partitioned_training_frame
from driftloop.features._registry import DefinitionRegistry
from driftloop.features._stats import view_stats
from driftloop.features._time import from_us, now_utc, to_us
from driftloop.features._windows import (
    CREATED_KEY,
    StreamFeatureView,
    evaluate_windows,
    window_events_after_us,
)

__all__ = ["ONLINE_STORES", "FeatureStore", "OnlineFeatures", "online_store_from_url"]

WRITTEN_KEY = "written"  # online meta: when rows were last written (materialize, push)


def _redis_store(url: str, root: Path) -> OnlineStore:
    from driftloop.features._redis import RedisOnlineStore

    return RedisOnlineStore.from_url(url)  # ?prefix=: several projects in one database


# Online backends by URL scheme (STYLE.md: an explicit mapping, never dotted strings).
ONLINE_STORES: dict[str, Callable[[str, Path], OnlineStore]] = {
    "sqlite": SqliteOnlineStore.from_url,
    "redis": _redis_store,
}


def online_store_from_url(url: str, root: Path) -> OnlineStore:
    """The online store a URL names (``sqlite:///...`` or ``redis://...``)."""
    scheme = scheme_of(url)
    if scheme not in ONLINE_STORES:
        raise InvalidParameterError(
            f"Online store URL '{url}' has scheme '{scheme}'. Known: {', '.join(ONLINE_STORES)}."
        )
    return ONLINE_STORES[scheme](url, root)


def entity_key(view_name: str, values: Sequence[Any]) -> str:
    return view_name + ":" + "|".join(str(v) for v in values)


@dataclass(frozen=True)
class OnlineFeatures:
    """Feature values per requested feature (one list entry per entity row) and the event
    time of the row (or newest event) each value came from."""

    values: dict[str, list[Any]]
    timestamps: dict[str, list[datetime | None]]

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.values)

    def to_rows(self) -> list[dict[str, Any]]:
        names = list(self.values)
        return [
            dict(zip(names, row, strict=True)) for row in zip(*self.values.values(), strict=True)
        ]


class FeatureStore:
    """Definitions plus an offline store (DuckDB) and an online store (SQLite or Redis).

    Build it from settings (``FeatureStore(settings, definitions=...)``) or from explicit
    backends (``connection=duckdb.connect()``, ``online_store=SqliteOnlineStore(...)``).
    Relative source paths are read from ``root`` (the settings' project folder).
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        definitions: Iterable[Definition] = (),
        connection: duckdb.DuckDBPyConnection | None = None,
        online_store: OnlineStore | None = None,
        registry: DefinitionRegistry | None = None,
        root: str | Path | None = None,
        engine: Engine | None = None,
        partitions: int | None = None,
    ) -> None:
        self.settings = settings
        self.root = Path(root) if root is not None else (settings.root if settings else Path("."))
        self.catalog = Catalog(definitions)
        self._offline = OfflineStore(connection, self.root) if connection is not None else None
        self._online = online_store
        self._written = False  # this object marked the online store as holding rows
        self._registry = registry
        self._engine = engine
        self._own_engine = False
        self._partitions = partitions

    def _connect_offline(self) -> duckdb.DuckDBPyConnection:
        if self.settings is None:
            return duckdb.connect()
        path = local_path(self.settings.features.offline_store, self.root)
        path.parent.mkdir(parents=True, exist_ok=True)
        return duckdb.connect(str(path))

    @property
    def offline(self) -> OfflineStore:
        """The offline store (opened on first use from ``settings.features.offline_store``).

        Opened lazily: a DuckDB file takes one process's lock, and a store that only
        serves online features (every ``driftloop serve`` worker) must not hold it while a
        training job or materialization needs it.
        """
        if self._offline is None:
            self._offline = OfflineStore(self._connect_offline(), self.root)
        return self._offline

    @property
    def online(self) -> OnlineStore:
        """The online store (opened on first use from ``settings.features.online_store``)."""
        if self._online is None:
            url = self.settings.features.online_store if self.settings else "sqlite:///:memory:"
            online = online_store_from_url(url, self.root)
            ages = {
                v.name: v.online_max_age.total_seconds()
                for v in self.catalog.views.values()
                if isinstance(v, FeatureView) and isinstance(v.online_max_age, timedelta)
            }
            # views that declare how stale their rows may be are served from memory
            self._online = CachedOnlineStore(online, ages) if ages else online
        return self._online

    @property
    def registry(self) -> DefinitionRegistry | None:
        """Where definitions and statistics are recorded (``settings.registry.url``)."""
        if self._registry is None and self.settings is not None:
            url = self.settings.registry.url
            if scheme_of(url) == "sqlite":
                path = local_path(url, self.root)
                path.parent.mkdir(parents=True, exist_ok=True)
                url = f"sqlite:///{path}"
            self._registry = DefinitionRegistry(url)
        return self._registry

    def stats(self, view_name: str, *, until: datetime | None = None) -> dict[str, Any]:
        """Row count, null rates, freshness and quantiles of a view's source."""
        return view_stats(self.offline, self.view(view_name), until=until)

    def register(self, *definitions: Definition) -> None:
        self.catalog.add(*definitions)

    def view(self, name: str) -> FeatureView | StreamFeatureView:
        return self.catalog.view(name)

    def training_frame(
        self,
        entity_df: pd.DataFrame,
        features: Sequence[str],
        *,
        timestamp_field: str = "event_timestamp",
        output: str = "pandas",
    ) -> Any:
        """``entity_df`` with each feature as of its row's ``timestamp_field``.

        Point-in-time correct (no row later than the event, none older than the view's
        TTL, none created after the event), computed inside DuckDB. ``output`` is
        ``"pandas"`` or ``"arrow"``.
        """
        if output not in ("pandas", "arrow"):
            raise InvalidParameterError(f"output must be 'pandas' or 'arrow', got {output!r}.")
        resolved = self.catalog.resolve(features)
        self._check_entity_frame(entity_df, timestamp_field, resolved.views)
        clash = sorted(set(entity_df.columns) & {f for fs in resolved.views.values() for f in fs})
        if clash:
            raise DataValidationError(
                f"Entity frame columns {', '.join(clash)} have the names of requested features; "
                "rename or drop them."
            )
        requests = [ViewRequest(self.catalog.view(v), fs) for v, fs in resolved.views.items()]
        want_arrow = output == "arrow" and not resolved.on_demand
        engine, parts = self._partitioning()
        if parts > 1 and requests and len(entity_df):
            frame = partitioned_training_frame(
                self.offline,
                engine,
                entity_df,
                timestamp_field,
                requests,
                "arrow" if want_arrow else "pandas",
                parts=parts,
            )
        else:
            frame = self.offline.training_frame(
                entity_df, timestamp_field, requests, "arrow" if want_arrow else "pandas"
            )
        if want_arrow:
            return frame
        frame = apply_on_demand(frame, resolved.on_demand)
        keep = [*entity_df.columns, *resolved.outputs]
        frame = frame[keep]
        if output == "arrow":
            import pyarrow as pa

            return pa.Table.from_pandas(frame, preserve_index=False)
        return frame

    def _partitioning(self) -> tuple[Engine, int]:
        """The engine training frames run on and how many key partitions they are cut
        into: given, else from ``[compute]`` (on Ray, one per CPU of the cluster unless
        ``partitions`` says; in process, one: the plain local join)."""
        if self._engine is None:
            config = self.settings.compute if self.settings is not None else None
            self._engine = open_engine(config) if config is not None else LocalEngine()
            self._own_engine = True
        parts = self._partitions
        if parts is None and self.settings is not None:
            parts = self.settings.compute.partitions
        if parts is None:
            parts = self._engine.workers if self._engine.name != "local" else 1
        return self._engine, parts

    def _check_entity_frame(
        self, entity_df: pd.DataFrame, timestamp_field: str, views: Mapping[str, list[str]]
    ) -> None:
        if timestamp_field not in entity_df.columns:
            raise DataValidationError(
                f"Entity frame has no timestamp column '{timestamp_field}'. Columns: "
                f"{', '.join(map(str, entity_df.columns))}. Pass timestamp_field=... to name it."
            )
        for name in views:
            missing = [k for k in self.catalog.view(name).join_keys if k not in entity_df.columns]
            if missing:
                raise DataValidationError(
                    f"Entity frame lacks join key(s) {', '.join(missing)} needed by feature view "
                    f"'{name}'. Columns: {', '.join(map(str, entity_df.columns))}."
                )

    def online_features(
        self,
        features: Sequence[str],
        entity_rows: Sequence[Mapping[str, Any]] | pd.DataFrame,
        *,
        as_of: datetime | None = None,
    ) -> OnlineFeatures:
        """Feature values for many entities in one round trip to the online store.

        Window aggregates are evaluated as of ``as_of`` (default: now, UTC). On-demand
        features are computed from the looked-up features and the rows' request fields.
        """
        rows: Sequence[Mapping[Any, Any]] = (
            entity_rows.to_dict("records") if isinstance(entity_rows, pd.DataFrame) else entity_rows
        )
        resolved = self.catalog.resolve(features)
        keys: dict[str, list[str]] = {}
        for name in resolved.views:
            keys[name] = _entity_keys(name, self.catalog.view(name).join_keys, rows)
        stream = [n for n in keys if isinstance(self.catalog.view(n), StreamFeatureView)]
        plain = [n for n in keys if n not in stream]
        # now, without a pandas Timestamp (a fifth of a one-entity read)
        as_of_us = to_us(as_of) if as_of is not None else time.time_ns() // 1_000
        since = min(
            (window_events_after_us(self._stream(n), as_of_us) for n in stream), default=as_of_us
        )
        batch = read_batch(
            self.online,
            [k for n in plain for k in keys[n]],
            [k for n in stream for k in keys[n]],
            since,
        )
        values: dict[str, list[Any]] = {}
        stamps: dict[str, list[datetime | None]] = {}
        n = len(rows)
        for i, name in enumerate(plain):
            view = self.catalog.view(name)
            feats = resolved.views[name]
            columns, times = batch.columns(
                i * n, (i + 1) * n, feats, None if view.ttl_us is None else as_of_us - view.ttl_us
            )
            for f, column in zip(feats, columns, strict=True):
                values[f] = column
                stamps[f] = times
        for i, name in enumerate(stream):
            view = self._stream(name)
            events = batch.events[i * n : (i + 1) * n]
            evaluated = [evaluate_windows(view, evs, as_of_us) for evs in events]
            newest = [_newest(evs, as_of_us) for evs in events]
            for f in resolved.views[name]:
                values[f] = [e[f] for e in evaluated]
                stamps[f] = newest
        if resolved.on_demand:
            frame = pd.DataFrame(list(rows)).reset_index(drop=True)
            for f, vals in values.items():
                frame[f] = pd.array(vals, dtype="Float64").astype(float) if _numeric(vals) else vals
            frame = apply_on_demand(frame, resolved.on_demand)
            for od in resolved.on_demand:
                values[od.name] = frame[od.name].tolist()
                stamps[od.name] = [None] * len(rows)
        return OnlineFeatures(
            {f: values[f] for f in resolved.outputs}, {f: stamps[f] for f in resolved.outputs}
        )

    def push(self, view_name: str, events: pd.DataFrame | Sequence[Mapping[str, Any]]) -> int:
        """Send new events of a view to the online store; return how many were sent.

        For a stream view the events feed its window aggregates (re-pushing an event
        is a no-op); for a plain view each event is a new feature row.
        """
        view = self.catalog.view(view_name)
        records: list[dict[str, Any]] = (
            [{str(k): v for k, v in r.items()} for r in events.to_dict("records")]
            if isinstance(events, pd.DataFrame)
            else [dict(r) for r in events]
        )
        needed = [*view.join_keys, view.timestamp_field]
        needed += view.value_columns if isinstance(view, StreamFeatureView) else view.feature_names
        for rec in records[:1]:
            missing = [c for c in needed if c not in rec]
            if missing:
                raise DataValidationError(
                    f"Events for '{view_name}' lack column(s) {', '.join(missing)}."
                )
        if isinstance(view, StreamFeatureView):
            self.online.append_events(_events(view, records), view.retention_us)
        else:
            created = view.created_timestamp_field
            self.online.write_rows(
                [
                    OnlineRow(
                        entity_key(view.name, [r[k] for k in view.join_keys]),
                        to_us(r[view.timestamp_field]),
                        {f: _plain(r[f]) for f in view.feature_names},
                        _created_us(r.get(created), r[view.timestamp_field]) if created else None,
                    )
                    for r in records
                ]
            )
        if not self._written:  # once per store object: the mark says rows were written
            self.online.set_meta(WRITTEN_KEY, now_utc().isoformat())
            self._written = True
        return len(records)

    def online_problem(self) -> str | None:
        """Why the online store cannot serve features now (None: it can): unreachable,
        or holding no rows (new, or a Redis restarted without its data)."""
        from driftloop.features._materialize import online_problem

        return online_problem(self)

    def materialize(
        self,
        start: datetime,
        end: datetime,
        *,
        views: Sequence[str] | None = None,
        progress: bool = True,
    ) -> list[Any]:
        """Write the latest row per entity in ``[start, end)`` of each view online."""
        from driftloop.features._materialize import materialize, progress_bar

        with progress_bar(progress) as report:
            return materialize(self, start, end, views, report)

    def materialize_incremental(
        self,
        end: datetime | None = None,
        *,
        views: Sequence[str] | None = None,
        progress: bool = True,
    ) -> list[Any]:
        """Materialize each view from where its last run ended up to ``end`` (now)."""
        from driftloop.features._materialize import materialize_incremental, progress_bar

        with progress_bar(progress) as report:
            return materialize_incremental(self, end, views, report)

    def _stream(self, name: str) -> StreamFeatureView:
        view = self.catalog.view(name)
        assert isinstance(view, StreamFeatureView)
        return view

    def close(self) -> None:
        if self._online is not None:
            self._online.close()
        if self._registry is not None:
            self._registry.close()
        if self._offline is not None:
            self._offline.connection.close()
        if self._engine is not None and self._own_engine:
            self._engine.close()


def _entity_keys(
    view_name: str, join_keys: Sequence[str], rows: Sequence[Mapping[Any, Any]]
) -> list[str]:
    """``entity_key`` of every row, built with the view's key names looked up once."""
    prefix = view_name + ":"
    try:
        if len(join_keys) == 1:
            (k,) = join_keys
            return [prefix + str(r[k]) for r in rows]
        return [prefix + "|".join([str(r[k]) for k in join_keys]) for r in rows]
    except KeyError as exc:
        raise DataValidationError(
            f"Entity row lacks join key {exc.args[0]!r} needed by feature view '{view_name}'."
        ) from None


def _plain(value: Any) -> Any:
    if value is None or (isinstance(value, float) and value != value):
        return None
    if hasattr(value, "item"):
        return value.item()
    return value


def _created_us(value: Any, event_time: Any) -> int:
    """A created timestamp in microseconds; a missing one (null, NaT) is the event time,
    as in the offline point-in-time join."""
    return to_us(event_time if value is None or pd.isna(value) else value)


def _numeric(values: list[Any]) -> bool:
    return all(v is None or isinstance(v, int | float) for v in values) and any(
        v is not None for v in values
    )


def _newest(events: list[tuple[int, dict[str, Any]]], as_of_us: int) -> datetime | None:
    """The time of the newest event a window as of ``as_of_us`` may cover (stamped and
    created before it)."""
    inside = [ts for ts, v in events if ts < as_of_us and v.get(CREATED_KEY, ts) < as_of_us]
    return from_us(max(inside)) if inside else None


def _events(view: StreamFeatureView, records: list[dict[str, Any]]) -> list[OnlineEvent]:
    """The online events of ``records``; one with a null join key is left out (offline,
    no entity row matches it)."""
    out: list[OnlineEvent] = []
    seen: dict[str, int] = {}
    for r in records:
        join = [r[k] for k in view.join_keys]
        if any(_plain(v) is None or v is pd.NA for v in join):
            continue
        key = entity_key(view.name, join)
        ts = to_us(r[view.timestamp_field])
        values = {c: _plain(r[c]) for c in view.value_columns}
        if view.created_timestamp_field:  # read by evaluate_windows; part of the identity
            values[CREATED_KEY] = _created_us(r.get(view.created_timestamp_field), ts)
        digest = hashlib.blake2b(f"{key}|{ts}|{sorted(values.items())}".encode(), digest_size=8)
        base = digest.hexdigest()
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.append(OnlineEvent(key, ts, f"{base}{n}" if n else base, values))
    return out
