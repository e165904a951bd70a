"""Inputs to the model's matrix, by its signature: one rule for frames and for JSON values.

Training, gates and batch scoring encode frames (:func:`encode_frame`); the server
encodes request values one by one (:class:`ValueEncoder`). Both use the same tables, so a
row scores the same offline and online:

* number: the value as a float (null -> NaN);
* boolean: 1.0 / 0.0 (null -> NaN);
* category: the index of the value's text among the signature's categories; a value not
  seen in training is NaN and reported as unseen;
* timestamp part: the part (``hour``, ``day_of_week``, ...) of the input time in UTC (a
  naive time is taken to be UTC).

>>> import pandas as pd
>>> from driftloop.registry._signature import Signature
>>> sig = Signature.infer(pd.DataFrame({"n": [1.0], "city": ["a"]}))
>>> encoded = encode_frame(sig, pd.DataFrame({"n": [2.5, None], "city": ["a", "z"]}))
>>> encoded.matrix.tolist(), encoded.unseen
([[2.5, 0.0], [nan, nan]], {'city': [1]})
>>> ValueEncoder(sig.features[1]).encode("a")
0.0
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from driftloop.core.errors import SchemaMismatchError
from driftloop.registry._signature import PARTS, FeatureSpec, Signature
from driftloop.stats import category_text

__all__ = [
    "EncodedFrame",
    "InvalidValue",
    "ValueEncoder",
    "encode_frame",
    "feature_frame",
    "parse_time",
    "time_part",
    "time_parts",
]

_EPOCH = pd.Timestamp(0, tz="UTC")


@dataclass
class EncodedFrame:
    """The model's matrix, and the rows (by feature) whose category was never seen."""

    matrix: NDArray[np.float64]
    unseen: dict[str, list[int]] = field(default_factory=dict)


def encode_frame(signature: Signature, frame: pd.DataFrame) -> EncodedFrame:
    """``frame`` (one column per input) as the model's float matrix."""
    missing = [name for name in signature.inputs if name not in frame.columns]
    if missing:
        raise SchemaMismatchError(
            f"Input lacks column(s) {', '.join(missing)}; the model takes "
            f"{', '.join(signature.inputs)}."
        )
    matrix = np.empty((len(frame), len(signature.features)), dtype=np.float64)
    unseen: dict[str, list[int]] = {}
    times: dict[str, pd.Series] = {}
    for j, spec in enumerate(signature.features):
        if spec.derived_from is not None:
            if spec.derived_from not in times:
                times[spec.derived_from] = _as_time(frame[spec.derived_from], spec.derived_from)
            matrix[:, j] = _part(times[spec.derived_from], spec.part or "")
        elif spec.kind == "category":
            codes = _category_codes(frame[spec.name], spec)
            present = frame[spec.name].notna().to_numpy()
            rows = np.flatnonzero(present & np.isnan(codes))
            if len(rows):
                unseen[spec.name] = rows.tolist()
            matrix[:, j] = codes
        elif spec.kind == "boolean":
            matrix[:, j] = _booleans(frame[spec.name], spec.name)
        else:
            matrix[:, j] = _numbers(frame[spec.name], spec.name)
    return EncodedFrame(matrix, unseen)


def feature_frame(signature: Signature, frame: pd.DataFrame) -> pd.DataFrame:
    """One column per feature as profiles and the audit log keep them: the raw value
    (number, boolean, category text), timestamp parts computed."""
    out = pd.DataFrame(index=frame.index)
    for spec in signature.features:
        if spec.derived_from is not None:
            out[spec.name] = time_parts(frame[spec.derived_from], spec.part or "")
        else:
            out[spec.name] = frame[spec.name]
    return out


def _numbers(column: pd.Series, name: str) -> NDArray[np.float64]:
    try:
        return column.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError):
        bad = next((v for v in column.dropna() if not _is_number(v)), None)
        raise SchemaMismatchError(
            f"Feature '{name}' must be numbers; got {type(bad).__name__} {bad!r} "
            f"(column dtype {column.dtype})."
        ) from None


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


_TRUE = {"true": 1.0, "false": 0.0, "1": 1.0, "0": 0.0}


def _booleans(column: pd.Series, name: str) -> NDArray[np.float64]:
    if pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column):
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~np.isnan(values) & (values != 0) & (values != 1)
        if bad.any():
            raise SchemaMismatchError(
                f"Feature '{name}' is boolean; got {values[bad][0]!r} (expected true/false)."
            )
        return values
    out = np.full(len(column), np.nan)
    for i, value in enumerate(column.to_numpy(dtype=object)):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        number = _TRUE.get(category_text(value).lower())
        if number is None:
            raise SchemaMismatchError(
                f"Feature '{name}' is boolean; got {value!r} (expected true/false)."
            )
        out[i] = number
    return out


def _category_codes(column: pd.Series, spec: FeatureSpec) -> NDArray[np.float64]:
    text = column.map(_text, na_action="ignore")
    codes = pd.Index(spec.categories, dtype=object).get_indexer(pd.Index(text)).astype(np.float64)
    codes[codes < 0] = np.nan  # null, or a category never seen in training
    return codes


def _text(value: Any) -> str:
    return value if isinstance(value, str) else category_text(value)


def time_parts(column: pd.Series, part: str) -> NDArray[np.float64]:
    """One part of every time of a column (ISO text or datetimes; naive is UTC)."""
    return _part(_as_time(column, str(column.name)), part)


def _as_time(column: pd.Series, name: str) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(column):
        out = column
    else:
        try:
            out = pd.to_datetime(column, utc=True, format="ISO8601")
        except (TypeError, ValueError) as exc:
            raise SchemaMismatchError(
                f"Timestamp input '{name}' has values that are not ISO 8601 times: {exc}."
            ) from None
    utc: pd.Series = out.dt.tz_localize("UTC") if out.dt.tz is None else out.dt.tz_convert("UTC")
    return utc


def _part(times: pd.Series, part: str) -> NDArray[np.float64]:
    values: pd.Series = (
        (times - _EPOCH) / pd.Timedelta(days=1) if part == "epoch_days" else getattr(times.dt, part)
    )
    out: NDArray[np.float64] = values.to_numpy(dtype=np.float64, na_value=np.nan)
    return out


def time_part(when: datetime, part: str) -> float:
    """One part of one time (UTC), as :func:`encode_frame` computes it for a column."""
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    if part == "epoch_days":
        return (when - _EPOCH.to_pydatetime()).total_seconds() / 86_400.0
    if part == "day_of_week":
        return float(when.weekday())
    if part == "day_of_year":
        return float(when.timetuple().tm_yday)
    if part not in PARTS:
        raise SchemaMismatchError(f"Unknown timestamp part {part!r}; known: {', '.join(PARTS)}.")
    return float(getattr(when, part))


class InvalidValue(Exception):
    """A JSON value breaks its feature's rule (``rule`` says which)."""

    def __init__(self, rule: str) -> None:
        super().__init__(rule)
        self.rule = rule


class ValueEncoder:
    """Encodes one JSON value of one (non-timestamp) feature as :func:`encode_frame`
    encodes a column. ``encode`` returns the float (NaN for null, or for an unseen
    category: ``unseen(value)`` tells which) or raises :class:`InvalidValue`."""

    def __init__(self, spec: FeatureSpec) -> None:
        self.spec = spec
        self._codes: Mapping[str, float] = {c: float(i) for i, c in enumerate(spec.categories)}
        self.encode: Callable[[Any], float] = {
            "number": self._number,
            "boolean": self._boolean,
            "category": self._category,
        }[spec.kind]
        self.rule = {
            "number": "must be a number or null",
            "boolean": "must be true, false or null",
            "category": "must be a string (or a whole number) or null",
        }[spec.kind]

    def _number(self, value: Any) -> float:
        if value is None:
            return math.nan
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidValue(self.rule)
        try:
            number = float(value)
        except OverflowError:
            raise InvalidValue("must be a number within double range") from None
        if not math.isfinite(number):
            raise InvalidValue("must be a finite number")
        return number

    def _boolean(self, value: Any) -> float:
        if value is None:
            return math.nan
        if isinstance(value, bool):
            return 1.0 if value else 0.0
        raise InvalidValue(self.rule)

    def _category(self, value: Any) -> float:
        if value is None:
            return math.nan
        if isinstance(value, str):
            return self._codes.get(value, math.nan)
        if isinstance(value, int) and not isinstance(value, bool):
            return self._codes.get(str(value), math.nan)
        raise InvalidValue(self.rule)

    def unseen(self, value: Any) -> bool:
        """Whether a valid, non-null category ``value`` was never seen in training."""
        return (
            self.spec.kind == "category"
            and value is not None
            and self._codes.get(value if isinstance(value, str) else str(value)) is None
        )


def parse_time(value: Any) -> datetime:
    """A JSON time: an ISO 8601 string (``Z`` or an offset; naive is UTC) or epoch
    seconds; raises :class:`InvalidValue`."""
    if isinstance(value, str):
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidValue("must be an ISO 8601 date-time string or epoch seconds") from None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        try:
            when = datetime.fromtimestamp(float(value), UTC)
        except (OverflowError, OSError, ValueError):
            raise InvalidValue("must be epoch seconds within the years 1 to 9999") from None
    else:
        raise InvalidValue("must be an ISO 8601 date-time string or epoch seconds")
    try:
        return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    except OverflowError:  # an offset that moves year 1 or 9999 out of range
        raise InvalidValue("must be a date-time within the years 1 to 9999 in UTC") from None
