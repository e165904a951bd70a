"""The column-wise path for instances of typed values gives exactly what the checked path
gives (matrix, audited values, unseen categories, event times), and steps aside for
anything it does not take."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest

from driftloop.registry import Signature
from driftloop.serving._errors import HttpError
from driftloop.serving._validation import RowSpec, _all_typed, _Parser, parse_instances

FRAME = pd.DataFrame(
    {
        "income": [1.5, 2.0, 3.0],
        "owns_home": [True, False, True],
        "channel": ["web", "app", "branch"],
        "region": ["north", "south", "east"],
    }
)
SPEC = RowSpec.of(Signature.infer(FRAME, task="binary", classes=("no", "yes"), timestamp="at"))


def instances(seed: int, n: int = 50, *, with_time: bool = False) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        row: dict[str, Any] = {
            "income": float(rng.normal()) if i % 3 else int(rng.integers(0, 99)),
            "owns_home": bool(rng.random() < 0.5),
            "channel": str(rng.choice(["web", "app", "branch", "kiosk"])),  # kiosk: unseen
            "region": str(rng.choice(["north", "south", "east"])),
        }
        if with_time:
            row["at"] = f"2026-03-0{1 + i % 9}T12:00:00Z"
        out.append(row)
    return out


@pytest.mark.parametrize("with_time", [False, True])
def test_the_typed_path_equals_the_checked_path(with_time: bool) -> None:
    rows = instances(1, with_time=with_time)
    request_time = datetime(2026, 1, 1, tzinfo=UTC)
    typed = _all_typed(rows, SPEC, request_time)
    checked = _Parser(SPEC, request_time, False).parse(rows)
    assert typed is not None
    np.testing.assert_array_equal(typed.matrix, checked.matrix)  # NaN where unseen
    assert typed.raw == checked.raw
    assert typed.unseen == checked.unseen
    assert typed.unseen  # some kiosks
    assert typed.event_ts == checked.event_ts
    assert typed.complete is False  # unseen categories leave NaN for the missing policy


@pytest.mark.parametrize(
    "change",
    [
        {"income": None},
        {"income": "12"},
        {"owns_home": 1},
        {"channel": 3},
        {"region": None},
        {"extra": 1},
        {"income": 10**400},
        {"income": float("inf")},
    ],
)
def test_anything_else_takes_the_checked_path(change: dict[str, Any]) -> None:
    rows = instances(2, n=3)
    rows[1] = {**rows[1], **change}
    assert _all_typed(rows, SPEC, None) is None


def test_an_unseen_category_under_reject_is_still_refused_by_name() -> None:
    rows = [{**instances(3, n=1)[0], "channel": "kiosk"}]
    with pytest.raises(HttpError) as refused:
        parse_instances(rows, SPEC, reject_unseen=True)
    assert refused.value.violations[0]["field"] == "channel"
