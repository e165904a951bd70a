"""One online row packed as bytes, and a batch of rows decoded at once with numpy.

A row whose values are all floats or nulls (what materializing numeric features gives) is
stored as one value per (entity, view), laid out little-endian as::

    0xD1 | ts int64 | created int64 (-2**63: none) | k uint16 | k float64 | names (JSON)

Null is one NaN bit pattern (:data:`NULL_BITS`), so NaN, the infinities and -0.0 read
back exactly; a row holding anything else (integers, booleans, text, that one NaN) stays
JSON. Rows of one view share their length and names, so a batch of them is one
``np.frombuffer`` and each requested feature one column: no per-row decoding.

>>> payload = pack_row(10, None, {"a": 1.5, "b": None})
>>> unpack_row(payload)
(10, {'a': 1.5, 'b': None})
>>> pack_row(10, None, {"a": 1}) is None  # an integer stays JSON, and an integer
True
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import lru_cache
from operator import itemgetter
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import orjson

from driftloop.features._time import from_us, from_us_many

__all__ = ["MAGIC", "NULL_BITS", "Row", "pack_row", "row_columns", "unpack_row"]

MAGIC = 0xD1
"""The first byte of a packed row (JSON starts with ``[`` or ``{``)."""
NULL_BITS = 0x7FF8_0000_DEAD_BEEF
"""The quiet NaN that stands for null in a packed row."""
_NULL = struct.unpack("<d", NULL_BITS.to_bytes(8, "little"))[0]
_NO_CREATED = -(2**63)
_HEAD = struct.Struct("<BqqH")
_PER_ROW = 4
"""Batches of this many rows or fewer are unpacked row by row (numpy's fixed cost per
call is more than a few rows' struct unpacking)."""
_VALUES = _HEAD.size  # 19: where the values start

Row = bytes | tuple[int, dict[str, Any]] | None
"""A row as a store read it: packed bytes, (event time, values) decoded from JSON, or
None (no row)."""


def pack_row(ts_us: int, created_us: int | None, values: dict[str, Any]) -> bytes | None:
    """The packed row, or None when a value is not a float or null (store it as JSON)."""
    floats = list(values.values())
    nan = False
    for v in floats:
        if type(v) is not float:
            if v is not None:
                return None
        elif v != v:
            nan = True
    if len(floats) > 0xFFFF:
        return None
    if nan and any(v is not None and struct.pack("<d", v) == _NULL_BYTES for v in floats):
        return None  # a NaN with null's bit pattern: JSON keeps it apart from null
    if None in floats:
        floats = [_NULL if v is None else v for v in floats]
    body = struct.pack(f"<{len(floats)}d", *floats)
    created = _NO_CREATED if created_us is None else created_us
    return _HEAD.pack(MAGIC, ts_us, created, len(floats)) + body + orjson.dumps(list(values))


_NULL_BYTES = NULL_BITS.to_bytes(8, "little")


@lru_cache(maxsize=1_024)
def _names(tail: bytes) -> tuple[str, ...]:
    return tuple(orjson.loads(tail))


def unpack_row(payload: bytes) -> tuple[int, dict[str, Any]]:
    """The event time and values of one packed row."""
    _magic, ts, _created, k = _HEAD.unpack_from(payload)
    values = struct.unpack_from(f"<{k}d", payload, _VALUES)
    names = _names(payload[_VALUES + 8 * k :])
    return ts, {
        n: None if v != v and struct.pack("<d", v) == _NULL_BYTES else v
        for n, v in zip(names, values, strict=True)
    }


def row_columns(
    rows: Sequence[Row], feats: Sequence[str], oldest_us: int | None
) -> tuple[list[list[Any]], list[datetime | None]]:
    """One list per feature, and the event time of each row, from rows read in order.

    A missing row, or one older than ``oldest_us`` (the TTL cut), gives ``None``; a row
    written before a feature existed lacks it and gives ``None`` for it. Packed rows of
    one layout are decoded together (one ``np.frombuffer`` for the batch); others one
    by one.
    """
    present = list(filter(None, rows))  # C loops: rows are None, bytes or a pair
    if len(present) > _PER_ROW and set(map(type, present)) == {bytes}:
        got = _packed_columns(rows, cast("list[bytes]", present), feats, oldest_us)
        if got is not None:
            return got
    row_ts = [None if r is None else unpack_row(r)[0] if type(r) is bytes else r[0] for r in rows]
    values = [
        None
        if r is None
        else unpack_row(r)[1]
        if type(r) is bytes
        else cast("tuple[int, dict[str, Any]]", r)[1]
        for r in rows
    ]
    return _dict_columns(row_ts, values, feats, oldest_us)


def _packed_columns(
    rows: Sequence[Row], present: list[bytes], feats: Sequence[str], oldest_us: int | None
) -> tuple[list[list[Any]], list[datetime | None]] | None:
    """Columns of packed rows sharing one layout, decoded as one matrix; None when they
    do not share it."""
    first = present[0]
    size = len(first)
    if len(set(map(len, present))) > 1:
        return None
    k = int.from_bytes(first[17:19], "little")
    start_names = _VALUES + 8 * k
    grid = np.frombuffer(b"".join(present), np.uint8).reshape(len(present), size)
    if len(present) > 1:  # the same magic, count and names in every row
        layout = np.concatenate([grid[:, :1], grid[:, 17:19], grid[:, start_names:]], axis=1)
        if not (layout == layout[0]).all():
            return None
    names = _names(first[start_names:])
    ts = np.ascontiguousarray(grid[:, 1:9]).view("<i8").ravel()
    index = _index(names)
    wanted = [index.get(f) for f in feats]
    known = [j for j in wanted if j is not None]
    # only the requested features' bytes are copied out, as one (rows, features) matrix
    spans = np.add.outer(np.array(known, np.intp) * 8 + _VALUES, np.arange(8)).ravel()
    values = np.ascontiguousarray(grid[:, spans]).view("<f8")
    n = len(rows)
    fresh = None if oldest_us is None else ts >= oldest_us
    nulls = values.view("<u8") == NULL_BITS
    if len(present) == n and (fresh is None or fresh.all()):
        times: list[datetime | None] = list(from_us_many(ts))
        got = values.T.tolist() if not nulls.any() else _with_nulls(values, nulls).T.tolist()
    else:
        at = np.flatnonzero(np.fromiter((r is not None for r in rows), bool, n))
        if fresh is not None:  # rows past the TTL read as missing
            at, ts, values, nulls = at[fresh], ts[fresh], values[fresh], nulls[fresh]
        times = [None] * n
        for i, t in zip(at.tolist(), from_us_many(ts), strict=True):
            times[i] = t
        full = np.full((n, len(known)), None, dtype=object)
        full[at] = _with_nulls(values, nulls)
        got = full.T.tolist()
    taken = iter(got)
    return [next(taken) if j is not None else [None] * n for j in wanted], times


@lru_cache(maxsize=1_024)
def _index(names: tuple[str, ...]) -> dict[str, int]:
    return {name: j for j, name in enumerate(names)}


def _with_nulls(values: npt.NDArray[np.float64], nulls: npt.NDArray[np.bool_]) -> Any:
    """``values`` as Python objects, None where null."""
    out = values.astype(object)
    out[nulls] = None
    return out


def _dict_columns(
    row_ts: Sequence[int | None],
    row_values: Sequence[dict[str, Any] | None],
    feats: Sequence[str],
    oldest_us: int | None,
) -> tuple[list[list[Any]], list[datetime | None]]:
    """:func:`row_columns` of decoded rows: taken apart by one ``itemgetter`` each and
    transposed by ``zip``, in C loops when every row is there and fresh."""
    rows: list[dict[str, Any] | None]
    times: list[datetime | None]
    stamps = cast("list[int]", row_ts)
    if None not in row_ts and (oldest_us is None or min(stamps, default=0) >= oldest_us):
        rows = list(row_values)
        times = list(map(from_us, stamps))
    else:
        keep = [ts is not None and (oldest_us is None or ts >= oldest_us) for ts in row_ts]
        rows = [r if k else None for r, k in zip(row_values, keep, strict=True)]
        times = [from_us(ts) if k else None for ts, k in zip(stamps, keep, strict=True)]
    single = len(feats) == 1
    absent = None if single else (None,) * len(feats)
    pick: Callable[[Any], Any] = itemgetter(*feats)
    try:
        if None in rows:
            picked = [pick(r) if r is not None else absent for r in rows]
        else:
            picked = list(map(pick, rows))
    except KeyError:  # a row written before one of the features existed
        picked = [
            absent if r is None else r.get(feats[0]) if single else tuple(r.get(f) for f in feats)
            for r in rows
        ]
    if single:
        return [picked], times
    if not picked:
        return [[] for _ in feats], times
    return [list(column) for column in zip(*picked, strict=True)], times
