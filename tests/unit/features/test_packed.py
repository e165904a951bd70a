"""Packed online rows read back exactly, one by one and a batch at once, and a batch of
packed rows gives the same columns as the same rows decoded one by one."""

from __future__ import annotations

import math
import struct
from datetime import datetime
from typing import Any

import numpy as np
import pytest

from driftloop.features._packed import (
    NULL_BITS,
    Row,
    _dict_columns,
    pack_row,
    row_columns,
    unpack_row,
)
from driftloop.features._time import from_us


def test_awkward_floats_and_nulls_round_trip() -> None:
    values = {"nan": math.nan, "inf": math.inf, "ninf": -math.inf, "neg0": -0.0,
              "tiny": 5e-324, "null": None, "caf\u00e9 \"q\"": 1.25}  # fmt: skip
    payload = pack_row(-5, 2**62, values)
    assert payload is not None
    ts, got = unpack_row(payload)
    assert ts == -5
    assert math.isnan(got.pop("nan"))
    assert got["null"] is None
    assert math.copysign(1.0, got["neg0"]) == -1.0
    assert got == {k: v for k, v in values.items() if k != "nan"}


@pytest.mark.parametrize(
    "value", [1, True, "x", 2**70, struct.unpack("<d", NULL_BITS.to_bytes(8, "little"))[0]]
)
def test_what_a_float_row_cannot_hold_stays_json(value: Any) -> None:
    assert pack_row(1, None, {"f": 1.0, "g": value}) is None


def decoded(rows: list[Row]) -> tuple[list[int | None], list[dict[str, Any] | None]]:
    pairs = [unpack_row(r) if isinstance(r, bytes) else r for r in rows]
    return [p[0] if p else None for p in pairs], [p[1] if p else None for p in pairs]


@pytest.mark.parametrize("seed", range(6))
def test_a_packed_batch_gives_the_columns_of_its_rows_decoded_one_by_one(seed: int) -> None:
    rng = np.random.default_rng(seed)
    names = [f"f{j}" for j in range(int(rng.integers(1, 6)))]
    rows: list[Row] = []
    for _ in range(int(rng.integers(1, 40))):
        if rng.random() < 0.2:
            rows.append(None)
            continue
        values = {n: None if rng.random() < 0.2 else float(rng.normal()) for n in names}
        rows.append(pack_row(int(rng.integers(0, 100)), None, values))
    feats = [*rng.permutation(names).tolist(), "added_later"]
    oldest = None if seed % 2 else 50
    got = row_columns(rows, feats, oldest)
    want = _dict_columns(*decoded(rows), feats, oldest)
    assert got == want


def test_timestamps_of_a_batch_are_the_ones_of_each_row() -> None:
    stamps = [0, 1, 1_700_000_000_123_456, -86_400_000_001]
    rows: list[Row] = [pack_row(ts, None, {"f": 1.0}) for ts in stamps]
    times = row_columns(rows, ["f"], None)[1]
    assert times == [from_us(ts) for ts in stamps]
    assert all(type(t) is datetime for t in times)
