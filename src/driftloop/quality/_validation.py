"""The data gate on a model's own features: rows, kinds, nulls, ranges, drift; quarantine.

>>> import pandas as pd
>>> from driftloop.core.config import GatesConfig
>>> from driftloop.registry import Signature
>>> frame = pd.DataFrame({"income": [10.0, None, None], "city": ["a", "b", None]})
>>> report = validate_features(frame, Signature.infer(frame),
...                            config=GatesConfig(min_rows=1, max_null_rate=0.5))
>>> [c.name for c in report.failed]
['nulls:income']
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from driftloop.core.config import GatesConfig
from driftloop.quality._drift import profile_psi
from driftloop.quality._report import GateCheck, GateReport
from driftloop.registry import Signature
from driftloop.stats import Profile

__all__ = ["quarantine", "validate_features"]


def validate_features(
    frame: pd.DataFrame,
    signature: Signature,
    *,
    config: GatesConfig,
    reference: Signature | None = None,
    profile: Profile | None = None,
) -> GateReport:
    """The data gate on a model's own features: the row count; each feature's null rate
    (at most ``max_null_rate``, and at most ``max_null_rate_increase`` above the previous
    training set's); with the previous version's ``reference`` signature, unchanged kinds;
    with its ``profile``, the share of values outside its range (``max_out_of_range``)
    and drift (PSI up to ``max_psi``)."""
    checks = [_rows(frame, config)]
    names = signature.names
    previous = {f.name: f for f in reference.features} if reference is not None else {}
    for spec in signature.features:
        before = previous.get(spec.name)
        if before is not None and before.kind != spec.kind:
            checks.append(
                GateCheck(
                    f"kind:{spec.name}",
                    False,
                    spec.kind,
                    before.kind,
                    f"'{spec.name}' is {spec.kind} now, {before.kind} in the previous training set",
                )
            )
        checks.append(_null_rate(spec.name, frame[spec.name], config.max_null_rate))
    if profile is not None and len(frame):
        for name in names:
            checks += _against_profile(name, frame[name], profile, config)
        checks += _drift(profile, frame[[n for n in names if n in profile.features]], config)
    return GateReport.of("data validation", checks)


def _rows(frame: pd.DataFrame, config: GatesConfig) -> GateCheck:
    return GateCheck(
        "rows",
        len(frame) >= config.min_rows,
        len(frame),
        config.min_rows,
        f"{len(frame)} row(s), need at least {config.min_rows}",
    )


def _null_rate(name: str, column: pd.Series, limit: float) -> GateCheck:
    rate = float(column.isna().mean()) if len(column) else 0.0
    detail = f"null rate {rate:.2%} > {limit:.2%}" + (" (every value is null)" if rate == 1 else "")
    return GateCheck(f"nulls:{name}", rate <= limit, round(rate, 6), limit, detail)


def _against_profile(
    name: str, column: pd.Series, profile: Profile, config: GatesConfig
) -> list[GateCheck]:
    ref = profile.numeric.get(name) or profile.categorical.get(name)
    if ref is None:
        return []
    total = ref.count + ref.nulls
    was = ref.nulls / total if total else 0.0
    rate = float(column.isna().mean()) if len(column) else 0.0
    limit = was + config.max_null_rate_increase
    checks = [
        GateCheck(
            f"null_increase:{name}",
            rate <= limit,
            round(rate, 6),
            round(limit, 6),
            f"null rate {rate:.2%} vs {was:.2%} in the previous training set",
        )
    ]
    numeric = profile.numeric.get(name)
    if numeric is not None and numeric.count and pd.api.types.is_numeric_dtype(column):
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)
        values = values[~np.isnan(values)]
        outside = (
            float(((values < numeric.min) | (values > numeric.max)).mean()) if len(values) else 0.0
        )
        checks.append(
            GateCheck(
                f"range:{name}",
                outside <= config.max_out_of_range,
                round(outside, 6),
                config.max_out_of_range,
                f"{outside:.1%} of values outside the previous range "
                f"[{numeric.min:.4g}, {numeric.max:.4g}]",
            )
        )
    return checks


def _drift(reference: Profile, frame: pd.DataFrame, config: GatesConfig) -> list[GateCheck]:
    return [
        GateCheck(
            f"drift:{name}",
            value <= config.max_psi,
            round(value, 6),
            config.max_psi,
            f"PSI {value:.3f} vs previous training set > {config.max_psi}",
        )
        for name, value in profile_psi(reference, frame).items()
    ]


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
