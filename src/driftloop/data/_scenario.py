"""The parameters of a simulated world of card transactions, checked when built."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from driftloop.core.errors import InvalidParameterError

__all__ = ["DRIFT_KINDS", "DriftKind", "Scenario"]

DriftKind = Literal["inflation", "segment", "concept"]
DRIFT_KINDS: tuple[DriftKind, ...] = ("inflation", "segment", "concept")


@dataclass(frozen=True)
class Scenario:
    """Everything that shapes a simulation; the same scenario and seed give the same bytes.

    The base world follows the simulator of Le Borgne et al., *Reproducible Machine
    Learning for Credit Card Fraud Detection — Practical Handbook* (chapter 3):

    * customers and terminals sit uniformly on a ``grid_size`` x ``grid_size`` grid; a
      customer uses the terminals within ``radius`` of them, uniformly;
    * each customer has a spending profile: mean amount ~ U(5, 100), spread = mean / 2,
      transactions per day ~ U(0, 4) (Poisson per day), times of day ~ N(12h, 20000 s);
    * fraud scenario 1: every amount above ``amount_threshold`` is fraud;
    * fraud scenario 2: each day ``compromised_terminals_per_day`` terminals are
      compromised for ``terminal_compromise_days`` days; all their transactions are fraud;
    * fraud scenario 3: each day ``compromised_customers_per_day`` cards are compromised
      for ``customer_compromise_days`` days; a third of their transactions get their
      amount multiplied by 5 and are fraud.

    Drift switched on from day ``drift_at`` (``drift`` names which):

    * ``inflation`` (covariate drift): amounts are multiplied by ``inflation_factor``;
    * ``segment`` (covariate drift): a new segment of ``new_segment_share`` x customers,
      big spenders clustered in one corner of the grid, starts transacting;
    * ``concept`` (a new fraud pattern, scenario 4): each day
      ``card_testing_customers_per_day`` cards see a burst of 5 to 15 small
      "card-testing" transactions (0.5 to 5.0) at one terminal within ten minutes.

    Labels are delayed: the label of a transaction becomes known ``label_delay_days``
    after it (chargebacks and investigations take time).
    """

    customers: int = 5_000
    terminals: int = 10_000
    days: int = 60
    start_date: date = date(2025, 1, 1)
    seed: int = 0
    radius: float = 5.0
    grid_size: float = 100.0
    amount_threshold: float = 220.0
    compromised_terminals_per_day: int = 2
    terminal_compromise_days: int = 28
    compromised_customers_per_day: int = 3
    customer_compromise_days: int = 14
    drift_at: int | None = None
    drift: tuple[DriftKind, ...] = ()
    inflation_factor: float = 1.5
    new_segment_share: float = 0.2
    card_testing_customers_per_day: int = 10
    label_delay_days: float = 7.0
    age_bands: tuple[str, ...] = field(default=("18-29", "30-49", "50-64", "65+"))

    def __post_init__(self) -> None:
        positive = ("customers", "terminals", "days", "radius", "grid_size")
        for name in positive:
            if getattr(self, name) <= 0:
                _refuse(name, "must be > 0", getattr(self, name))
        non_negative = (
            "amount_threshold",
            "compromised_terminals_per_day",
            "terminal_compromise_days",
            "compromised_customers_per_day",
            "customer_compromise_days",
            "card_testing_customers_per_day",
            "label_delay_days",
        )
        for name in non_negative:
            if getattr(self, name) < 0:
                _refuse(name, "must be >= 0", getattr(self, name))
        if self.compromised_terminals_per_day > self.terminals:
            _refuse(
                "compromised_terminals_per_day",
                "must not exceed terminals",
                self.compromised_terminals_per_day,
            )
        if self.compromised_customers_per_day > self.customers:
            _refuse(
                "compromised_customers_per_day",
                "must not exceed customers",
                self.compromised_customers_per_day,
            )
        unknown = [kind for kind in self.drift if kind not in DRIFT_KINDS]
        if unknown:
            _refuse("drift", f"must be among {', '.join(DRIFT_KINDS)}", unknown)
        if self.drift and self.drift_at is None:
            _refuse("drift_at", "is required when drift is set", None)
        if self.drift_at is not None and not 0 <= self.drift_at < self.days:
            _refuse("drift_at", f"must be a day in [0, {self.days})", self.drift_at)
        if self.inflation_factor <= 0:
            _refuse("inflation_factor", "must be > 0", self.inflation_factor)
        if not 0 <= self.new_segment_share <= 10:
            _refuse("new_segment_share", "must be in [0, 10]", self.new_segment_share)
        if not self.age_bands:
            _refuse("age_bands", "must not be empty", self.age_bands)

    def drifts(self, kind: DriftKind) -> bool:
        """Whether drift ``kind`` is switched on."""
        return kind in self.drift

    @property
    def new_customers(self) -> int:
        """How many customers the ``segment`` drift adds."""
        return round(self.customers * self.new_segment_share) if self.drifts("segment") else 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description."""
        out = dataclasses.asdict(self)
        out["start_date"] = self.start_date.isoformat()
        out["drift"] = list(self.drift)
        out["age_bands"] = list(self.age_bands)
        return out


def _refuse(name: str, rule: str, got: object) -> None:
    raise InvalidParameterError(f"Scenario parameter '{name}' {rule}; got {got!r}.")
