"""Recommenders over HTTP: ``POST /v1/models/{name}/recommend`` and
``POST /v1/models/{name}/interactions``.

Requests for one recommender are batched (the server's ``[serving.batching]``): a batch
reads every user's session from the online store in one round trip, makes one model call
and one index query for its personalized users (off the event loop), and writes one
audit commit with the group-commit writer (the list, the level, the version), as the
predict path does. A batch is answered by the one version it started with: a new version
(its own index inside) replaces the old whole, so no answer mixes two. Answers are kept
in a small cache (``[serving.cache]``) until a new version or a new interaction.

Sessions (the last :data:`SESSION_ITEMS` items a user interacted with) are events in the
online store under ``recsys:{name}:{user}``, so every worker sees them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from driftloop.audit import AuditRecord, GroupCommitWriter
from driftloop.core.config import ServingConfig
from driftloop.features import OnlineEvent, OnlineStore
from driftloop.recsys import Recommendation, RecommendRequest
from driftloop.serving._batcher import DynamicBatcher
from driftloop.serving._errors import HttpError, json_response, shown
from driftloop.serving._recommend_request import parse_interaction, parse_recommend
from driftloop.serving._server import Server, read_body

if TYPE_CHECKING:
    from driftloop.recsys import Recommender

__all__ = ["SESSION_ITEMS", "RecommenderService", "Recommenders", "ServedRecommender"]

log = logging.getLogger(__name__)

SESSION_ITEMS = 10
_SESSION_RETENTION_US = 30 * 86_400 * 1_000_000


@dataclass(frozen=True)
class ServedRecommender:
    """A recommender answered for as ``name``; ``load`` returns the version to serve now
    (for example the registry's ``champion``), called at start and at every refresh."""

    name: str
    load: Callable[[], Recommender]


_Key = tuple[str, int, tuple[str, ...], tuple[tuple[str, str | None], ...]]


class RecommenderService:
    """One recommender: the version served, its batcher, cache and sessions."""

    def __init__(
        self,
        served: ServedRecommender,
        *,
        settings: ServingConfig,
        writer: GroupCommitWriter | None,
        sessions: OnlineStore | None,
    ) -> None:
        self.served = served
        self.current: Recommender | None = None
        self.writer = writer
        self.sessions = sessions
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=f"recommend-{served.name}")
        self._cache: OrderedDict[_Key, tuple[float, Recommendation]] = OrderedDict()
        self._cache_on = settings.cache.enabled and settings.cache.max_entries > 0
        self._cache_size = settings.cache.max_entries
        self._ttl = settings.cache.ttl_s
        self.batcher: DynamicBatcher[RecommendRequest, tuple[str, Recommendation]] = DynamicBatcher(
            self._run,
            size=lambda _: 1,
            max_rows=settings.batching.max_batch_size,
            max_wait_s=settings.batching.max_wait_ms / 1000.0,
        )

    async def refresh(self) -> bool:
        """Serve the version ``load`` returns now, if it is another one (True)."""
        rec = await asyncio.to_thread(self.served.load)
        if self.current is not None and rec.version == self.current.version:
            return False
        self.current = rec  # one reference: batches already running keep their version
        self._cache.clear()
        return True

    def swap(self, rec: Recommender) -> None:
        """Serve ``rec`` from now on (model and index travel together in it)."""
        self.current = rec
        self._cache.clear()

    async def recommend(self, request: RecommendRequest) -> tuple[str, Recommendation]:
        return await self.batcher.submit(request)

    def forget(self, user: str) -> None:
        for key in [k for k in self._cache if k[0] == user]:
            del self._cache[key]

    async def record(self, user: str, item: str, now: datetime) -> None:
        """An interaction: the item joins the user's session (in the online store)."""
        if self.sessions is None:
            raise HttpError("not-ready", "Sessions need the online store, which is off.")
        ts_us = int(now.timestamp() * 1_000_000)
        event = OnlineEvent(self._session_key(user), ts_us, uuid.uuid4().hex, {"item_id": item})
        await asyncio.to_thread(self.sessions.append_events, [event], _SESSION_RETENTION_US)
        self.forget(user)

    def _session_key(self, user: str) -> str:
        return f"recsys:{self.served.name}:{user}"

    def _read_sessions(self, users: Sequence[str]) -> dict[str, tuple[str, ...]]:
        if self.sessions is None:
            return {}
        read = self.sessions.read([], [self._session_key(u) for u in users])
        out = {}
        for user in users:
            events = read.events.get(self._session_key(user), [])
            items = [str(values["item_id"]) for _, values in events][-SESSION_ITEMS:]
            if items:
                out[user] = tuple(items)
        return out

    def _compute(
        self, rec: Recommender, requests: Sequence[RecommendRequest]
    ) -> list[Recommendation]:
        """Sessions (one read), then the version's answers, off the event loop."""
        stored = self._read_sessions(sorted({r.user_id for r in requests}))
        merged = [
            replace(r, session=(*stored.get(r.user_id, ()), *r.session))
            if r.user_id in stored
            else r
            for r in requests
        ]
        return rec.recommend_many(merged)

    @staticmethod
    def _key(request: RecommendRequest) -> _Key:
        return (
            request.user_id,
            request.n,
            request.session,
            tuple(sorted(request.context.items())),
        )

    async def _run(self, requests: Sequence[RecommendRequest]) -> list[tuple[str, Recommendation]]:
        rec = self.current
        if rec is None:
            raise HttpError("not-ready", f"Recommender '{self.served.name}' is not loaded yet.")
        started = time.perf_counter()
        now = time.monotonic()
        answers: list[Recommendation | None] = [None] * len(requests)
        todo = []
        for k, request in enumerate(requests):
            hit = self._cache.get(self._key(request)) if self._cache_on else None
            if hit is not None and hit[0] > now and hit[1].version == rec.version:
                answers[k] = hit[1]
            else:
                todo.append(k)
        if todo:
            loop = asyncio.get_running_loop()
            fresh = await loop.run_in_executor(
                self._pool, self._compute, rec, [requests[k] for k in todo]
            )
            for k, answer in zip(todo, fresh, strict=True):
                answers[k] = answer
                if self._cache_on:
                    self._cache[self._key(requests[k])] = (now + self._ttl, answer)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        done = [a for a in answers if a is not None]
        ids = [uuid.uuid4().hex for _ in done]
        if self.writer is not None:
            latency_ms = (time.perf_counter() - started) * 1000.0
            stamp = datetime.now(UTC)
            records = [
                _audit(self.served.name, pid, request, answer, stamp, latency_ms)
                for pid, request, answer in zip(ids, requests, done, strict=True)
            ]
            await self.writer.awrite(records)  # one group commit for the whole batch
        return list(zip(ids, done, strict=True))

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _audit(
    model: str,
    pid: str,
    request: RecommendRequest,
    answer: Recommendation,
    stamp: datetime,
    latency_ms: float,
) -> AuditRecord:
    return AuditRecord(
        prediction_id=pid,
        ts=stamp,
        model=model,
        version=answer.version,
        route="recommend",
        score=answer.confidence,
        decision=answer.level,
        latency_ms=latency_ms,
        features={"n": request.n, "interactions": answer.interactions},
        entity_keys={"user_id": request.user_id},
        served_at=stamp,
        outputs={"items": list(answer.items), "level": answer.level, "scores": list(answer.scores)},
    )


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

    async def start(self) -> None:
        for served in self.served:
            self.by_name[served.name] = RecommenderService(
                served,
                settings=self.server.settings,
                writer=self.server.writer,
                sessions=self.sessions,
            )
        await self.refresh_all()
        if self.server.refresh_s > 0 and self.by_name:
            self._refresher = asyncio.get_running_loop().create_task(self._refresh_forever())

    async def refresh_all(self) -> None:
        for service in self.by_name.values():
            try:
                await service.refresh()
            except Exception as exc:  # keep serving the version loaded
                log.warning("Could not refresh recommender %s: %s", service.served.name, exc)

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self.server.refresh_s)
            await self.refresh_all()

    async def stop(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        for service in self.by_name.values():
            await service.close()

    def service(self, name: str) -> RecommenderService:
        service = self.by_name.get(name)
        if service is None:
            raise HttpError("model-not-found", f"Recommender '{shown(name)}' is not served.")
        return service

    async def recommend(self, request: Request, server: Server) -> Response:
        service = self.service(request.path_params["name"])
        parsed = parse_recommend(await read_body(request, server.settings.max_body_bytes))
        pid, answer = await service.recommend(parsed)
        return json_response(
            {
                "id": pid,
                "user_id": answer.user_id,
                "items": [
                    {"item_id": item, "score": score}
                    for item, score in zip(answer.items, answer.scores, strict=True)
                ],
                "level": answer.level,
                "model": service.served.name,
                "version": answer.version,
                "confidence": answer.confidence,
            }
        )

    async def interaction(self, request: Request, server: Server) -> Response:
        service = self.service(request.path_params["name"])
        user, item = parse_interaction(await read_body(request, server.settings.max_body_bytes))
        await service.record(user, item, server.clock())
        return json_response({"user_id": user, "item_id": item, "recorded": True})
