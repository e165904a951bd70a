"""Instances that carry entity keys and leave features to enrichment take the keyed path,
which gives exactly what the checked path gives (matrix, entity rows, what to enrich,
event times), and steps aside for anything the checked path would convert or refuse."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from driftloop.serving._errors import HttpError
from driftloop.serving._validation import RowSpec, _keyed_numeric, _Parser, parse_instances

FEATURES = tuple(f"f{j}" for j in range(6))
SPEC = RowSpec(features=FEATURES, entity_keys=("card_id",), keys=("customer_id",))
TWO_KEYS = RowSpec(features=FEATURES, entity_keys=("card_id", "merchant_id"))
WHEN = datetime(2026, 3, 1, tzinfo=UTC)


def keyed(n: int, *, spec: RowSpec = SPEC, given: int = 3) -> list[dict[str, Any]]:
    rng = np.random.default_rng(n)
    out = []
    for i in range(n):
        row: dict[str, Any] = {k: f"{k}-{i}" if i % 2 else i for k in spec.entity_keys}
        for f in FEATURES[:given]:
            row[f] = float(rng.normal()) if i % 3 else int(rng.integers(-5, 5))
        out.append(row)
    return out


@pytest.mark.parametrize(
    ("spec", "given", "when"),
    [(SPEC, 3, None), (SPEC, 0, WHEN), (SPEC, 5, None), (TWO_KEYS, 2, WHEN)],
)
def test_the_keyed_path_equals_the_checked_path(
    spec: RowSpec, given: int, when: datetime | None
) -> None:
    rows = keyed(40, spec=spec, given=given)
    fast = _keyed_numeric(rows, spec, when)
    checked = _Parser(spec, when, False).parse(rows)
    assert fast is not None
    np.testing.assert_array_equal(fast.matrix, checked.matrix)  # NaN where enriched
    assert fast.entity_rows == checked.entity_rows
    assert fast.enrich == checked.enrich
    assert fast.enrich[0] == FEATURES[given:]
    assert fast.event_ts == checked.event_ts
    assert fast.raw is None
    assert fast.complete is False  # the enriched features are still to come


def test_the_sticky_key_may_come_along() -> None:
    rows = [{**row, "customer_id": 7} for row in keyed(5)]
    fast = _keyed_numeric(rows, SPEC, None)
    assert fast is not None
    assert fast.entity_rows == _Parser(SPEC, None, False).parse(rows).entity_rows


@pytest.mark.parametrize(
    "change",
    [
        {"card_id": 7.0},  # a whole float: the checked path makes it 7
        {"card_id": True},  # a boolean is no key
        {"card_id": ""},
        {"card_id": 2**63},
        {"f0": float("inf")},
        {"f0": "1.5"},
        {"f0": None},
        {"f0": 10**400},
        {"amount": 1.0},  # unknown field
        {"event_time": "2026-01-01T00:00:00Z"},
    ],
)
def test_the_keyed_path_steps_aside_for_what_it_does_not_take(change: dict[str, Any]) -> None:
    rows = keyed(4)
    rows[2] = {**rows[2], **change}
    assert _keyed_numeric(rows, SPEC, None) is None


def test_instances_of_other_fields_or_without_keys_take_the_checked_path() -> None:
    rows = keyed(4)
    del rows[1]["f0"]  # another field set in the same request
    assert _keyed_numeric(rows, SPEC, None) is None
    no_key = [dict.fromkeys(FEATURES[:3], 1.0)]
    assert _keyed_numeric(no_key, SPEC, None) is None
    every_feature = [{"card_id": "c1", **dict.fromkeys(FEATURES, 1.0)}]
    assert _keyed_numeric(every_feature, SPEC, None) is None  # nothing to enrich
    assert _keyed_numeric(keyed(3, spec=TWO_KEYS), SPEC, None) is None


def test_a_bad_key_is_still_named_with_its_instance_and_rule() -> None:
    rows = keyed(3)
    rows[1]["card_id"] = "x" * 300
    with pytest.raises(HttpError) as caught:
        parse_instances(rows, SPEC)
    assert caught.value.violations[0]["instance"] == 1
    assert caught.value.violations[0]["field"] == "card_id"


def test_a_client_sending_ever_new_field_sets_cannot_grow_the_shapes() -> None:
    spec = RowSpec(features=tuple(f"g{j}" for j in range(200)), entity_keys=("k",))
    for j in range(150):
        parse_instances([{"k": "a", f"g{j}": 1.0}], spec)
    assert len(spec.shapes) <= 64
