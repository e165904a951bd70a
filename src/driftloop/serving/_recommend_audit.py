"""A recommendation as an audit record: the list, its level and scores, the version that
answered it, and the route it took (``recommend``, ``recommend:champion`` or ``shadow``)."""

from __future__ import annotations

from datetime import datetime

from driftloop.audit import AuditRecord
from driftloop.recsys import Recommendation, RecommendRequest

__all__ = ["audit_record"]


def audit_record(
    model: str,
    pid: str,
    request: RecommendRequest,
    answer: Recommendation,
    stamp: datetime,
    latency_ms: float,
    tenant: str,
    route: str = "recommend",
) -> AuditRecord:
    """The record of ``answer`` to ``request`` (prediction id ``pid``); its ``version`` is
    always the version whose model and index made the list."""
    return AuditRecord(
        prediction_id=pid,
        ts=stamp,
        model=model,
        version=answer.version,
        route=route,
        score=answer.confidence,
        decision=answer.level,
        latency_ms=latency_ms,
        features={"n": request.n, "interactions": answer.interactions},
        entity_keys={"user_id": request.user_id},
        served_at=stamp,
        outputs={"items": list(answer.items), "level": answer.level, "scores": list(answer.scores)},
        tenant=tenant,
    )
