"""What one recommendation request and answer are, and the fallback levels."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["LEVELS", "Level", "RecommendRequest", "Recommendation"]

Level = Literal["personalized", "hybrid", "cohort", "popular"]
LEVELS: tuple[Level, ...] = ("personalized", "hybrid", "cohort", "popular")
"""From the most to the least personal: retrieval + ranking, content of the items seen,
the user's demographic cohort's popular items, everyone's popular items."""


@dataclass(frozen=True)
class RecommendRequest:
    """``n`` items for ``user_id``. ``session`` holds the items the user interacted with
    lately (oldest first; they count as seen); ``context`` may give the user's features
    (demographics) for a user the model does not know."""

    user_id: str
    n: int = 10
    session: tuple[str, ...] = ()
    context: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Recommendation:
    """The answer: items best first with their scores, the level that answered, the
    model version whose index they came from, and the model's confidence (0 to 1; the
    top ``n``'s share of the retrieval softmax, personalized level only)."""

    user_id: str
    items: tuple[str, ...]
    scores: tuple[float, ...]
    level: Level
    version: str
    confidence: float = 0.0
    interactions: int = 0
