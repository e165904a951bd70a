"""The rows an audit commit inserts: predictions as raw tuples (the columns of
:data:`driftloop.audit._sql.COLUMNS`, or without ``missing`` and ``outputs``) and their
entity rows, from :class:`AuditBatch` es and :class:`AuditRecord` s."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from driftloop.audit._batch import AuditBatch
from driftloop.audit._record import AuditRecord, utc

__all__ = ["audit_rows", "from_us", "to_us"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_us(ts: datetime) -> int:
    delta = utc(ts) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(us: int) -> datetime:
    return datetime.fromtimestamp(us // 1_000_000, UTC).replace(microsecond=us % 1_000_000)


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NAIVE_UTC).decode()


def audit_rows(
    batches: Sequence[AuditBatch], records: Sequence[AuditRecord]
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[str, str, int, str]]]:
    """The full rows (with missing features or outputs), the short rows (without those
    two columns: binding two NULLs per row measurably slowed the hot path's inserts) and
    the entity rows (name, value, ts_us, prediction_id) of one commit."""
    full: list[tuple[Any, ...]] = []  # the 16 columns of _COLUMNS
    short: list[tuple[Any, ...]] = []  # the first 13 and the tenant: no missing, outputs
    for r in records:
        row = (
            r.prediction_id,
            to_us(r.ts),
            r.model,
            r.version,
            r.route,
            float(r.score),
            r.decision,
            float(r.latency_ms),
            _json(r.entity_keys),
            _json(r.features),
            _json(r.feature_ts),
            None if r.explanation is None else _json(r.explanation),
            None if r.served_at is None else to_us(r.served_at),
        )
        if r.missing or r.outputs is not None:
            full.append(
                (
                    *row,
                    _json(list(r.missing)) if r.missing else None,
                    None if r.outputs is None else _json(r.outputs),
                    r.tenant,
                )
            )
        else:
            short.append((*row, r.tenant))
    entities = [
        (name, str(value), to_us(r.ts), r.prediction_id)
        for r in records
        for name, value in r.entity_keys.items()
    ]
    dumps, opts = orjson.dumps, orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NAIVE_UTC
    for b in batches:
        served_us, names, absent = to_us(b.ts), b.feature_names, [None] * len(b)
        tenant = b.tenant
        event_us = (
            [served_us] * len(b)
            if b.event_ts is None
            else [served_us if e is None else to_us(e) for e in b.event_ts]
        )
        rows = [
            (
                pid,
                ts_us,
                b.model,
                b.version,
                b.route,
                score,
                decision,
                latency,
                dumps(keys, option=opts).decode() if keys else "{}",
                dumps(dict(zip(names, values, strict=True)), option=opts).decode(),
                dumps(stamps, option=opts).decode() if stamps else "{}",
                None if expl is None else dumps(expl, option=opts).decode(),
                served_us,
                tenant,
            )
            for pid, ts_us, score, decision, values, keys, stamps, expl, latency in zip(
                b.prediction_ids,
                event_us,
                b.scores,
                b.decisions,
                b.values,
                b.entity_keys,
                b.feature_ts,
                b.explanations or absent,
                b.latencies(),
                strict=True,
            )
        ]
        if b.missing is None and b.outputs is None:
            short += rows
        else:
            missing = (
                absent
                if b.missing is None
                else [dumps(list(m), option=opts).decode() if m else None for m in b.missing]
            )
            outputs = (
                absent
                if b.outputs is None
                else [None if o is None else dumps(o, option=opts).decode() for o in b.outputs]
            )
            full += [
                (*r[:-1], m, o, tenant) for r, m, o in zip(rows, missing, outputs, strict=True)
            ]
        entities += [
            (name, str(value), ts_us, pid)
            for pid, keys, ts_us in zip(b.prediction_ids, b.entity_keys, event_us, strict=True)
            for name, value in keys.items()
        ]
    return full, short, entities
