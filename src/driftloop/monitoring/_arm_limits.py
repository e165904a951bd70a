"""What a rollout step tolerates and needs: the limits :func:`~driftloop.monitoring.
compare_arms` and :func:`~driftloop.monitoring.verdict` are taken with."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from driftloop.core.errors import InvalidParameterError

__all__ = ["ArmLimits"]


@dataclass(frozen=True)
class ArmLimits:
    """What a rollout step tolerates and needs (``docs/loop-analysis.md``).

    Rollback: the challenger's ``error_rate`` over ``max_error_rate`` (on at least
    ``min_error_requests`` requests) or significantly worse than the champion's; its p99
    latency over ``max_p99_ms`` or over ``max_p99_ratio`` times the champion's (on at
    least ``min_latency_requests`` answers); a label metric significantly worse; and, when
    set, score PSI over ``max_score_psi``, shadow disagreement over ``max_disagreement``,
    shadow coverage under ``min_coverage``. Promote: ``min_sample`` challenger requests,
    ``min_labelled`` labelled answers per arm (0: labels are not waited for), and every
    sequential test "not worse": errors by at most ``error_margin`` (absolute), label
    metrics by at most ``metric_margin`` times the champion's value. ``alpha`` is the
    tests' level; a regression's shadow pair disagrees beyond ``disagreement_tolerance``
    standard deviations of the champion's values; the score shift needs
    ``min_shift_rows`` rows per arm.
    """

    min_sample: int = 500
    min_labelled: int = 200
    max_error_rate: float = 0.02
    min_error_requests: int = 20
    error_margin: float = 0.01
    max_p99_ms: float | None = None
    max_p99_ratio: float | None = None
    min_latency_requests: int = 100
    metric_margin: float = 0.05
    alpha: float = 0.05
    max_score_psi: float | None = None
    max_disagreement: float | None = None
    min_coverage: float | None = None
    disagreement_tolerance: float = 0.1
    min_shift_rows: int = 100

    def __post_init__(self) -> None:
        for name in ("min_sample", "min_labelled", "min_error_requests", "min_latency_requests"):
            if getattr(self, name) < 0:
                raise InvalidParameterError(f"'{name}' must be >= 0; got {getattr(self, name)}.")
        for name in ("max_error_rate", "min_coverage", "max_disagreement"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise InvalidParameterError(f"'{name}' must be in [0, 1]; got {value}.")
        for name in ("error_margin", "metric_margin", "disagreement_tolerance"):
            if not getattr(self, name) >= 0.0:
                raise InvalidParameterError(f"'{name}' must be >= 0; got {getattr(self, name)}.")
        for name in ("max_p99_ms", "max_p99_ratio", "max_score_psi"):
            value = getattr(self, name)
            if value is not None and not value > 0.0:
                raise InvalidParameterError(f"'{name}' must be > 0; got {value}.")
        if not 0.0 < self.alpha < 1.0:
            raise InvalidParameterError(f"'alpha' must be in (0, 1); got {self.alpha}.")
        if self.min_shift_rows < 1:
            raise InvalidParameterError(
                f"'min_shift_rows' must be >= 1; got {self.min_shift_rows}."
            )

    def margin(self, test: str, champion: float) -> float:
        """The non-inferiority margin of a sequential test: ``error_margin`` for
        ``errors``, else ``metric_margin`` times the champion's value of the metric."""
        if test == "errors":
            return self.error_margin
        return self.metric_margin * abs(champion) if math.isfinite(champion) else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}
