"""One recommender's answers: :class:`RecommenderService` batches its requests, reads
their sessions, asks each request's arm (:mod:`._recommend_arms`) for the lists, keeps a
small cache, writes the audit log and sends copies to the shadow.

Requests are batched (the server's ``[serving.batching]``): a batch reads every user's
session from the online store in one round trip, makes one model call and one index
query per version for its personalized users (off the event loop), and writes one audit
commit with the group-commit writer (the list, the level, the version), as the predict
path does. A batch is answered by the versions it started with: a new version (its own
index inside) replaces the old whole, so no answer mixes two. Answers are kept in a small
cache (``[serving.cache]``) until a new version or a new interaction.

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
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from driftloop.audit import AuditRecord, GroupCommitWriter
from driftloop.core.config import ServingConfig
from driftloop.features import OnlineEvent, OnlineStore
from driftloop.recsys import Recommendation, RecommendRequest
from driftloop.serving._batcher import DynamicBatcher
from driftloop.serving._errors import HttpError
from driftloop.serving._recommend_arms import RecommenderArms, ServedRecommender

if TYPE_CHECKING:
    from driftloop.recsys import Recommender

__all__ = ["SESSION_ITEMS", "RecommenderService"]

log = logging.getLogger(__name__)

SESSION_ITEMS = 10
_SESSION_RETENTION_US = 30 * 86_400 * 1_000_000

_Key = tuple[str, int, tuple[str, ...], tuple[tuple[str, str | None], ...]]
# an answer's prediction id, the answer, and its route
_Answered = tuple[str, Recommendation, str]


class RecommenderService:
    """One recommender: its arms (the versions its traffic policy routes to, each loaded
    whole with its own index), its batcher, cache, shadow and sessions."""

    def __init__(
        self,
        served: ServedRecommender,
        *,
        settings: ServingConfig,
        writer: GroupCommitWriter | None,
        sessions: OnlineStore | None,
    ) -> None:
        self.served = served
        self.arms = RecommenderArms(served)
        self._shadowing: set[asyncio.Task[None]] = set()
        self._shadow_capacity = settings.shadow_queue  # copies in flight; more are dropped
        self._shadow_pending = 0
        self.shadow_dropped = 0
        self.shadow_failed = 0
        self.fell_back = 0  # requests an arm failed, answered by the base alias's version
        self.writer = writer
        self.sessions = sessions
        self.tenant = "default"  # its audit rows' tenant (the server sets it: registered)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=f"recommend-{served.name}")
        # the shadow's own thread: a shadow that hangs holds it, and nothing else
        self._shadow_pool = ThreadPoolExecutor(1, thread_name_prefix=f"rec-shadow-{served.name}")
        self._cache: OrderedDict[_Key, tuple[float, Recommendation]] = OrderedDict()
        self._cache_on = settings.cache.enabled and settings.cache.max_entries > 0
        self._cache_size = settings.cache.max_entries
        self._ttl = settings.cache.ttl_s
        self.batcher: DynamicBatcher[RecommendRequest, _Answered] = DynamicBatcher(
            self._run,
            size=lambda _: 1,
            max_rows=settings.batching.max_batch_size,
            max_wait_s=settings.batching.max_wait_ms / 1000.0,
        )

    async def refresh(self) -> bool:
        """Follow every alias the policy routes to; True (and the cache emptied) if any
        version changed."""
        changed = await self.arms.refresh()
        if changed:
            self._cache.clear()
        return changed

    def swap(self, rec: Recommender) -> None:
        """Serve ``rec`` at the base alias from now on (model and index travel together)."""
        self.arms.swap(rec)
        self._cache.clear()

    async def recommend(self, request: RecommendRequest) -> _Answered:
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

    async def _run(self, requests: Sequence[RecommendRequest]) -> list[_Answered]:
        """A batch: each request to its arm's version (sticky by user), one model call
        per version; an arm that raises is answered for by the base alias's version
        (route ``recommend:champion``); then one audit commit, then the shadow's copies."""
        arms = self.arms
        base = arms.current
        if base is None:
            raise HttpError("not-ready", f"Recommender '{self.served.name}' is not loaded yet.")
        router, deployments = arms.router, arms.deployments
        started = time.perf_counter()
        now = time.monotonic()
        answers: list[Recommendation | None] = [None] * len(requests)
        routes = ["recommend"] * len(requests)
        groups: dict[int, tuple[Recommender, list[int]]] = {}  # by version object
        for k, request in enumerate(requests):
            rec = deployments.get(router.pick(arms.sticky(request)), base)
            hit = self._cache.get(self._key(request)) if self._cache_on else None
            if hit is not None and hit[0] > now and hit[1].version == rec.version:
                answers[k] = hit[1]
            else:
                groups.setdefault(id(rec), (rec, []))[1].append(k)
        for rec, todo in groups.values():
            fresh = await self._answer(rec, base, [requests[k] for k in todo])
            for k, answer in zip(todo, fresh, strict=True):
                answers[k] = answer
                if answer.version != rec.version:
                    routes[k] = "recommend:champion"
                elif self._cache_on:
                    self._cache[self._key(requests[k])] = (now + self._ttl, answer)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        done = [a for a in answers if a is not None]
        ids = [uuid.uuid4().hex for _ in done]
        if self.writer is not None:
            latency_ms = (time.perf_counter() - started) * 1000.0
            stamp = datetime.now(UTC)
            records = [
                _audit(self.served.name, pid, request, answer, stamp, latency_ms, self.tenant, r)
                for pid, request, answer, r in zip(ids, requests, done, routes, strict=True)
            ]
            await self.writer.awrite(records)  # one group commit for the whole batch
        self._offer_shadow(requests, ids, done)
        return list(zip(ids, done, routes, strict=True))

    async def _answer(
        self, rec: Recommender, base: Recommender, requests: list[RecommendRequest]
    ) -> list[Recommendation]:
        """``rec``'s answers; if it raises (and is not the base), the base's."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, self._compute, rec, requests)
        except Exception as exc:
            if rec is base:
                raise
            self.fell_back += len(requests)
            log.debug("Recommender %s v%s failed: %s", self.served.name, rec.version, exc)
        return await loop.run_in_executor(self._pool, self._compute, base, requests)

    def _offer_shadow(
        self, requests: Sequence[RecommendRequest], ids: list[str], done: list[Recommendation]
    ) -> None:
        """Copies of the answered requests the shadow samples (not those its own version
        answered) go to it off the response path; over capacity they are dropped."""
        shadow = self.arms.shadow
        if shadow is None or self.writer is None:
            return
        router = self.arms.router
        policy_shadow = router.shadow is not None
        picked = [
            k
            for k, answer in enumerate(done)
            if answer.version != shadow.version and (not policy_shadow or router.shadowed())
        ]
        if not picked:
            return
        if self._shadow_pending + len(picked) > self._shadow_capacity:
            self.shadow_dropped += len(picked)
            return
        self._shadow_pending += len(picked)
        copies = [requests[k] for k in picked]
        copy_ids = [f"{ids[k]}:shadow" for k in picked]
        task = asyncio.get_running_loop().create_task(self._shadowed(shadow, copies, copy_ids))
        self._shadowing.add(task)
        task.add_done_callback(self._shadowing.discard)

    async def _shadowed(
        self, rec: Recommender, requests: Sequence[RecommendRequest], ids: list[str]
    ) -> None:
        """The shadow version's lists for copies of answered requests, in its own thread,
        audited under route ``shadow`` (each id the primary's with ``:shadow``)."""
        assert self.writer is not None
        try:
            started = time.perf_counter()
            loop = asyncio.get_running_loop()
            answers = await loop.run_in_executor(self._shadow_pool, self._compute, rec, requests)
            latency_ms = (time.perf_counter() - started) * 1000.0
            stamp = datetime.now(UTC)
            name, tenant = self.served.name, self.tenant
            await self.writer.awrite(
                [
                    _audit(name, pid, r, a, stamp, latency_ms, tenant, "shadow")
                    for pid, r, a in zip(ids, requests, answers, strict=True)
                ]
            )
        except Exception as exc:  # a shadow never fails a request
            self.shadow_failed += len(requests)
            log.debug("Shadow v%s of recommender %s failed: %s", rec.version, self.served.name, exc)
        finally:
            self._shadow_pending -= len(requests)

    async def close(self) -> None:
        for task in list(self._shadowing):
            with contextlib.suppress(Exception):
                await task
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._shadow_pool.shutdown(wait=False, cancel_futures=True)


def _audit(
    model: str,
    pid: str,
    request: RecommendRequest,
    answer: Recommendation,
    stamp: datetime,
    latency_ms: float,
    tenant: str,
    route: str = "recommend",
) -> AuditRecord:
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
