"""Recommenders over HTTP: :class:`Recommenders` holds the recommenders one server
answers for (one :class:`~._recommend_service.RecommenderService` each), starts, refreshes
and stops them, follows the stored traffic policies, and answers their two endpoints:
``POST /v1/models/{name}/recommend`` and ``POST /v1/models/{name}/interactions``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from driftloop.features import OnlineStore
from driftloop.recsys import Recommendation
from driftloop.serving._breaker import STATES
from driftloop.serving._errors import HttpError, json_response, shown
from driftloop.serving._recommend_arms import ServedRecommender
from driftloop.serving._recommend_request import parse_interaction, parse_recommend
from driftloop.serving._recommend_service import RecommenderService
from driftloop.serving._server import Server, read_body, stopped
from driftloop.serving._traffic import (
    active_policy,
    poll_policies,
    refresh_services,
    sync_policies,
)

__all__ = ["Recommenders", "answer_body"]

log = logging.getLogger(__name__)


class Recommenders:
    """The recommenders one server answers for, and their two endpoints."""

    def __init__(
        self,
        served: Sequence[ServedRecommender],
        server: Server,
        *,
        sessions: OnlineStore | None = None,
    ) -> None:
        self.served = list(served)
        self.server = server
        self.sessions = sessions
        self.by_name: dict[str, RecommenderService] = {}
        self._refresher: asyncio.Task[None] | None = None
        self._poller: asyncio.Task[None] | None = None
        self._traffic_seen = -1
        # the arms' breakers' clock (seconds, monotonic); tests set it before start
        self.clock: Callable[[], float] = time.monotonic

    async def start(self) -> None:
        for served in self.served:
            service = self.by_name[served.name] = RecommenderService(
                served,
                settings=self.server.settings,
                writer=self.server.writer,
                sessions=self.sessions,
                clock=self.clock,
                on_breaker=self._gauge(served.name),
            )
            gate = self.server.gate
            service.tenant = gate.tenant_of(served.name) if gate is not None else "default"
        await self.refresh_all()
        loop = asyncio.get_running_loop()
        if self.server.traffic is not None and self.by_name:
            try:
                await self.sync_traffic()
            except Exception as exc:  # the settings file's policies, until the store answers
                log.warning("Could not read traffic policies: %s", exc)
            self._poller = loop.create_task(self._poll_traffic())
        if self.server.refresh_s > 0 and self.by_name:
            self._refresher = loop.create_task(self._refresh_forever())

    async def refresh_all(self) -> None:
        sync = self.sync_traffic if self.server.traffic is not None else None
        await refresh_services(self.by_name, sync, "recommender")

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self.server.refresh_s)
            await self.refresh_all()

    async def sync_traffic(self) -> None:
        """Route by the stored policies (the loop's, or ``driftloop traffic set``'s) when
        the store's revision moved, as the predict path does (:meth:`Server.sync_traffic`)."""
        store = self.server.traffic
        assert store is not None
        self._traffic_seen = await sync_policies(
            store,
            self._traffic_seen,
            {name: service.arms for name, service in self.by_name.items()},
            lambda arms, row: active_policy(row, arms.served.traffic),
        )

    async def _poll_traffic(self) -> None:
        await poll_policies(self.sync_traffic)

    async def stop(self) -> None:
        for task in (self._refresher, self._poller):
            if task is not None:
                await stopped(task)
        for service in self.by_name.values():
            await service.close()

    def _gauge(self, name: str) -> Callable[[str, str], None]:
        gauge = self.server.metrics.breaker_state

        def changed(version: str, state: str) -> None:
            gauge.labels(name, version).set(STATES[state])

        return changed

    def degraded(self) -> list[str]:
        """The versions whose breaker is not closed (for ``/readyz``'s ``degraded``)."""
        return [
            f"{name}@{version}: breaker {breaker.state}"
            for name, service in sorted(self.by_name.items())
            for version, breaker in sorted(service.arms.breakers.items())
            if breaker.state != "closed"
        ]

    def service(self, name: str) -> RecommenderService:
        service = self.by_name.get(name)
        if service is None:
            raise HttpError("model-not-found", f"Recommender '{shown(name)}' is not served.")
        return service

    async def recommend(self, request: Request, server: Server) -> Response:
        service = self.service(request.path_params["name"])
        parsed = parse_recommend(await read_body(request, server.settings.max_body_bytes))
        pid, answer, route = await service.recommend(parsed)
        return json_response(answer_body(pid, answer, service.served.name, route))

    async def interaction(self, request: Request, server: Server) -> Response:
        service = self.service(request.path_params["name"])
        user, item = parse_interaction(await read_body(request, server.settings.max_body_bytes))
        await service.record(user, item, server.clock())
        return json_response({"user_id": user, "item_id": item, "recorded": True})


def answer_body(pid: str, answer: Recommendation, model: str, route: str) -> dict[str, Any]:
    """The recommend endpoint's answer: the list with its scores, the fallback level that
    answered, the version and route."""
    return {
        "id": pid,
        "user_id": answer.user_id,
        "items": [
            {"item_id": item, "score": score}
            for item, score in zip(answer.items, answer.scores, strict=True)
        ],
        "level": answer.level,
        "model": model,
        "version": answer.version,
        "route": route,
        "confidence": answer.confidence,
    }
