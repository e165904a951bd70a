"""Gate results: one :class:`GateCheck` per rule, gathered in a :class:`GateReport`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from driftloop.core.errors import GateFailedError

__all__ = ["GateCheck", "GateReport"]


@dataclass(frozen=True)
class GateCheck:
    """One rule: did it pass, with the measured value and the threshold it was held to."""

    name: str
    passed: bool
    value: float | str | None = None
    threshold: float | str | None = None
    detail: str = ""


@dataclass(frozen=True)
class GateReport:
    """All checks of one gate run (stored with the model version it judged)."""

    gate: str
    checks: tuple[GateCheck, ...]

    @classmethod
    def of(cls, gate: str, checks: Iterable[GateCheck]) -> GateReport:
        return cls(gate, tuple(checks))

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def failed(self) -> list[GateCheck]:
        return [check for check in self.checks if not check.passed]

    def merge(self, other: GateReport) -> GateReport:
        return GateReport(self.gate, self.checks + other.checks)

    def summary(self) -> str:
        """One line naming the failed checks with their numbers (or 'all N checks passed')."""
        if self.passed:
            return f"{self.gate}: all {len(self.checks)} checks passed"
        failed = "; ".join(
            f"{c.name} ({c.detail or f'{c.value} vs threshold {c.threshold}'})" for c in self.failed
        )
        return f"{self.gate} failed {len(self.failed)} of {len(self.checks)} checks: {failed}"

    def raise_if_failed(self) -> None:
        if not self.passed:
            raise GateFailedError(self.summary())

    def to_dict(self) -> dict[str, Any]:
        return {
            "gate": self.gate,
            "passed": self.passed,
            "checks": [asdict(check) for check in self.checks],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GateReport:
        checks = tuple(
            GateCheck(**{k: v for k, v in c.items() if k in GateCheck.__dataclass_fields__})
            for c in data["checks"]
        )
        return cls(str(data["gate"]), checks)
