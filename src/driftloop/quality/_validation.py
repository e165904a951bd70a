"""The data validation gate: schema, row count, nulls, value ranges, drift; quarantine.

>>> import pandas as pd
>>> from driftloop.core.config import GatesConfig
>>> frame = pd.DataFrame({"amount": [10.0, -5.0, None]})
>>> report = validate_frame(frame, schema={"amount": "numeric"},
...                         ranges={"amount": (0, None)}, config=GatesConfig(min_rows=1))
>>> [c.name for c in report.failed]
['nulls:amount', 'range:amount']
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from driftloop.core.config import GatesConfig
from driftloop.quality._drift import profile_psi
from driftloop.quality._report import GateCheck, GateReport
from driftloop.stats import Profile

__all__ = ["column_kind", "quarantine", "validate_frame"]

Range = tuple[float | None, float | None]


def column_kind(series: pd.Series) -> str:
    """``numeric``, ``datetime`` or ``string`` (booleans count as numeric)."""
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "datetime"
    return "string"


def _range_check(name: str, series: pd.Series, bounds: Range) -> GateCheck:
    low, high = bounds
    values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = np.zeros(values.shape, dtype=bool)
    if low is not None:
        bad |= values < low
    if high is not None:
        bad |= values > high
    count = int(bad.sum())
    shown = f"[{'-inf' if low is None else low}, {'inf' if high is None else high}]"
    detail = f"{count} value(s) outside {shown}" if count else ""
    return GateCheck(f"range:{name}", count == 0, count, shown, detail)


def validate_frame(
    frame: pd.DataFrame,
    *,
    schema: Mapping[str, str],
    config: GatesConfig,
    ranges: Mapping[str, Range] | None = None,
    reference: Profile | None = None,
) -> GateReport:
    """Check ``frame`` against its declared ``schema`` (column -> kind), ``ranges``, the
    null-rate limit and, with a ``reference`` profile, drift (PSI) of every profiled column."""
    checks = [
        GateCheck(
            "rows",
            len(frame) >= config.min_rows,
            len(frame),
            config.min_rows,
            f"{len(frame)} row(s), need at least {config.min_rows}",
        )
    ]
    present = []
    for name, kind in schema.items():
        if name not in frame.columns:
            checks.append(GateCheck(f"schema:{name}", False, "missing", kind, "column missing"))
            continue
        got = column_kind(frame[name])
        checks.append(
            GateCheck(f"schema:{name}", got == kind, got, kind, f"is {got}, expected {kind}")
        )
        present.append(name)
    for name in present:
        rate = float(frame[name].isna().mean()) if len(frame) else 0.0
        checks.append(
            GateCheck(
                f"nulls:{name}",
                rate <= config.max_null_rate,
                round(rate, 6),
                config.max_null_rate,
                f"null rate {rate:.2%} > {config.max_null_rate:.2%}",
            )
        )
    for name, bounds in (ranges or {}).items():
        if name in present:
            checks.append(_range_check(name, frame[name], bounds))
    if reference is not None and len(frame):
        for name, value in profile_psi(reference, frame[present]).items():
            checks.append(
                GateCheck(
                    f"drift:{name}",
                    value <= config.max_psi,
                    round(value, 6),
                    config.max_psi,
                    f"PSI {value:.3f} vs previous training set > {config.max_psi}",
                )
            )
    return GateReport.of("data validation", checks)


def quarantine(frame: pd.DataFrame, report: GateReport, folder: str | Path) -> Path:
    """Keep a failing batch aside with its report; returns the batch's folder."""
    hashed = np.ascontiguousarray(pd.util.hash_pandas_object(frame, index=False).to_numpy())
    digest = hashlib.sha256(hashed.tobytes()).hexdigest()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = Path(folder) / f"{stamp}-{digest[:12]}"
    target.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(target / "batch.parquet", index=False)
    (target / "report.json").write_text(
        json.dumps({**report.to_dict(), "summary": report.summary()}, indent=2, default=str)
    )
    return target
