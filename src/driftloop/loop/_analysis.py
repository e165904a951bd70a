"""The seam between the rollout and the judging of a challenger: :class:`Analysis`.

At every check of a shadow or canary step the controller asks its analysis for a
:class:`Verdict` on the challenger against the champion since the step began: go on
watching (``continue``), this step passed (``promote_step``), or a rollback criterion
fired (``rollback``), with the numbers that decided and the rule. Any object with this
``judge`` method can judge (``driftloop.monitoring``'s per-arm comparison, or
:class:`~driftloop.loop.AuditArmAnalysis`, the built-in one).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

__all__ = ["VERDICTS", "Analysis", "Verdict"]

VERDICTS = ("continue", "promote_step", "rollback")
Action = Literal["continue", "promote_step", "rollback"]


@dataclass(frozen=True)
class Verdict:
    """What one check found: ``action`` (see :data:`VERDICTS`), the ``numbers`` that
    decided (JSON-ready) and the ``rule`` that applied, in words."""

    action: Action
    rule: str
    numbers: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.action not in VERDICTS:
            raise ValueError(f"Verdict action {self.action!r} is not one of {VERDICTS}.")


@runtime_checkable
class Analysis(Protocol):
    """Judges a challenger against the champion on the live traffic since ``since``."""

    def judge(
        self, model: str, champion_version: int, challenger_version: int, since: datetime
    ) -> Verdict:
        """The verdict of one check of the current step."""
        ...
