"""Signatures keep kinds and categories; frames and JSON values encode the same way."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from driftloop.core.errors import SchemaMismatchError
from driftloop.registry import (
    FeatureSpec,
    InvalidValue,
    Signature,
    ValueEncoder,
    encode_frame,
    parse_time,
    time_part,
)


def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "income": [52_000.0, None, 31_500.5],
            "owns_home": pd.Series([True, None, False], dtype=object),
            "state": ["CA", "NY", None],
            "zip": [94110, 10001, 94110],
        }
    )


def test_kinds_and_categories_come_from_the_training_frame() -> None:
    sig = Signature.infer(frame(), categorical=["zip"], task="binary", classes=("no", "yes"))
    kinds = {f.name: (f.kind, f.categories) for f in sig.features}
    assert kinds == {
        "income": ("number", ()),
        "owns_home": ("boolean", ()),
        "state": ("category", ("CA", "NY")),
        "zip": ("category", ("10001", "94110")),
    }
    assert Signature.from_json(sig.to_json()) == sig


def test_signatures_of_the_first_format_read_as_binary() -> None:
    old = [{"name": "amount", "dtype": "float64", "view": None, "view_version": None}]
    sig = Signature.from_json(old)
    assert (sig.task, sig.classes, sig.features[0].kind) == ("binary", ("0", "1"), "number")


def test_json_values_encode_exactly_like_the_frame() -> None:
    sig = Signature.infer(frame(), categorical=["zip"])
    encoded = encode_frame(sig, frame()).matrix
    rows = frame().astype(object).where(frame().notna(), None).to_dict("records")
    encoders = [ValueEncoder(spec) for spec in sig.features]
    by_value = np.array([[e.encode(row[e.spec.name]) for e in encoders] for row in rows])
    np.testing.assert_array_equal(np.isnan(by_value), np.isnan(encoded))
    np.testing.assert_array_equal(np.nan_to_num(by_value), np.nan_to_num(encoded))


def test_unseen_categories_are_null_and_reported() -> None:
    sig = Signature.infer(frame())
    new = frame().assign(state=["TX", "CA", None])
    encoded = encode_frame(sig, new)
    assert encoded.unseen == {"state": [0]}
    assert math.isnan(encoded.matrix[0, 2])
    encoder = ValueEncoder(sig.spec("state"))
    assert encoder.unseen("TX")
    assert not encoder.unseen("CA")


def test_wrong_json_types_name_the_rule() -> None:
    sig = Signature.infer(frame())
    with pytest.raises(InvalidValue, match="true, false or null"):
        ValueEncoder(sig.spec("owns_home")).encode("yes")
    with pytest.raises(InvalidValue, match="number or null"):
        ValueEncoder(sig.spec("income")).encode(True)
    with pytest.raises(SchemaMismatchError, match="'income' must be numbers"):
        encode_frame(sig, frame().assign(income=["a", "b", "c"]))


def test_timestamp_parts_are_the_same_from_a_column_and_from_one_value() -> None:
    specs = tuple(
        FeatureSpec(f"signup.{part}", derived_from="signup", part=part)
        for part in ("hour", "day_of_week", "day_of_year", "epoch_days", "month")
    )
    sig = Signature(specs, "regression")
    times = ["2026-03-01T23:30:00+02:00", "2025-12-31T00:00:00Z"]
    matrix = encode_frame(sig, pd.DataFrame({"signup": times})).matrix
    for row, text in zip(matrix, times, strict=True):
        when = parse_time(text)
        assert when.tzinfo == UTC
        expected = [time_part(when, s.part or "") for s in specs]
        np.testing.assert_allclose(row, expected)
    assert matrix[0, 0] == 21.0  # 23:30 at +02:00 is 21:30 UTC
    assert parse_time(0) == datetime(1970, 1, 1, tzinfo=UTC)
    with pytest.raises(InvalidValue, match="ISO 8601"):
        parse_time("yesterday")
