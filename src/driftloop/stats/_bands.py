"""Alert bands learned from a reference period, as NannyML learns its thresholds.

A statistic computed on windows of a stable period varies from window to window: that
spread, not a fixed number, says how far a new window of the same size may stray before
it is unusual. :func:`learn_band` takes the values of the reference windows and gives
``mean ± sigmas * std`` (the sample standard deviation), on the side that matters:

* ``"lower"``: only a fall is bad (ROC AUC, recall, a p-value);
* ``"upper"``: only a rise is bad (PSI, a distance, an error metric);
* ``"both"``: either way.

A band learned from few windows, or from a statistic that barely moves (a feature that is
nearly always 0), can be narrower than any real window respects: ``min_width`` sets the
least distance from the mean to a limit.

>>> band = learn_band([0.90, 0.91, 0.89, 0.90, 0.92, 0.88], side="lower")
>>> round(band.lower, 3), band.upper
(0.858, inf)
>>> band.breached(0.85), band.breached(0.95)
(True, False)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from driftloop.core.errors import InvalidParameterError

__all__ = ["Band", "BandSide", "learn_band"]

BandSide = Literal["lower", "upper", "both"]


@dataclass(frozen=True)
class Band:
    """Where a statistic stays on stable windows: ``mean`` and ``std`` of the ``windows``
    reference values, and the limits ``mean ± max(sigmas * std, min_width)`` on ``side``
    (the other limit is infinite)."""

    mean: float
    std: float
    sigmas: float
    windows: int
    side: BandSide = "both"
    min_width: float = 0.0

    @property
    def width(self) -> float:
        """The distance from the mean to a limit."""
        return max(self.sigmas * self.std, self.min_width)

    @property
    def lower(self) -> float:
        return self.mean - self.width if self.side != "upper" else -math.inf

    @property
    def upper(self) -> float:
        return self.mean + self.width if self.side != "lower" else math.inf

    def breached(self, value: float) -> bool:
        """Whether ``value`` is outside the band (NaN never is)."""
        return math.isfinite(value) and not self.lower <= value <= self.upper

    def describe(self) -> str:
        """``"band 0.857 .. 0.943 (mean ± 3 sd of 12 reference windows)"``, one limit for a
        one-sided band."""
        if self.side == "lower":
            limits = f">= {self.lower:.3g}"
        elif self.side == "upper":
            limits = f"<= {self.upper:.3g}"
        else:
            limits = f"{self.lower:.3g} .. {self.upper:.3g}"
        floor = " (its least width)" if self.min_width > self.sigmas * self.std else ""
        return f"learned band {limits} (mean ± {self.sigmas:g} sd of {self.windows} windows{floor})"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "mean": self.mean,
            "std": self.std,
            "sigmas": self.sigmas,
            "windows": self.windows,
            "side": self.side,
            "min_width": self.min_width,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Band:
        side = str(data.get("side", "both"))
        if side not in ("lower", "upper", "both"):
            raise InvalidParameterError(f"Band side must be lower, upper or both; got {side!r}.")
        return cls(
            float(data["mean"]),
            float(data["std"]),
            float(data["sigmas"]),
            int(data["windows"]),
            side,  # type: ignore[arg-type]
            float(data.get("min_width", 0.0)),
        )


def learn_band(
    values: Sequence[float],
    *,
    sigmas: float = 3.0,
    side: BandSide = "both",
    min_width: float = 0.0,
) -> Band:
    """The band of ``values`` (one per reference window; NaN ones left out). Needs two
    finite values at least."""
    if sigmas <= 0:
        raise InvalidParameterError(f"'sigmas' must be > 0; got {sigmas}.")
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size < 2:
        raise InvalidParameterError(
            f"A band needs the values of two reference windows at least; got {x.size}."
        )
    if min_width < 0:
        raise InvalidParameterError(f"'min_width' must be >= 0; got {min_width}.")
    return Band(
        float(x.mean()), float(x.std(ddof=1)), float(sigmas), int(x.size), side, float(min_width)
    )
