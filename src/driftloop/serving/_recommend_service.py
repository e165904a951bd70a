"""One recommender's answers: :class:`RecommenderService` batches its requests, reads
their sessions, asks each request's arm (:mod:`._recommend_arms`) for the lists through
its circuit breaker, keeps a small cache, writes the audit log and sends copies to the
shadow (:mod:`._recommend_shadow`).

Requests are batched (the server's ``[serving.batching]``): a batch reads every user's
session from the online store in one round trip, makes one model call and one index
query per version for its personalized users (off the event loop), and writes one audit
commit with the group-commit writer (the list, the level, the version that answered), as
the predict path does. A batch is answered by the versions it started with: a new
version (its own index inside) replaces the old whole, so no answer mixes two. Answers
are kept in a small cache (``[serving.cache]``) until a new version or a new interaction.

An arm whose version raises, or whose breaker is open, is answered for by the base
alias's version (the champion; route ``recommend:champion``). When the champion cannot
answer either, those requests (only those) get a 503 ``unavailable``, never a 500.

A request's session is what it sends plus what the online store holds for its user
(:mod:`._recommend_sessions`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from driftloop.audit import GroupCommitWriter
from driftloop.core.config import ServingConfig
from driftloop.features import OnlineStore
from driftloop.recsys import Recommendation, RecommendRequest
from driftloop.serving._batcher import DynamicBatcher
from driftloop.serving._errors import HttpError
from driftloop.serving._recommend_arms import RecommenderArms, ServedRecommender
from driftloop.serving._recommend_audit import audit_record
from driftloop.serving._recommend_sessions import Sessions
from driftloop.serving._recommend_shadow import Shadow

if TYPE_CHECKING:
    from driftloop.recsys import Recommender

__all__ = ["RecommenderService"]

log = logging.getLogger(__name__)

_Key = tuple[str, int, tuple[str, ...], tuple[tuple[str, str | None], ...]]
# an answer's prediction id, the answer, and its route
_Answered = tuple[str, Recommendation, str]


class RecommenderService:
    """One recommender: its arms (the versions its traffic policy routes to, each loaded
    whole with its own index, each with a breaker), its batcher, cache, shadow and
    sessions. ``clock`` is the breakers' (seconds, monotonic); ``on_breaker`` hears a
    version's breaker change state (version, state)."""

    def __init__(
        self,
        served: ServedRecommender,
        *,
        settings: ServingConfig,
        writer: GroupCommitWriter | None,
        sessions: OnlineStore | None,
        clock: Callable[[], float] = time.monotonic,
        on_breaker: Callable[[str, str], None] | None = None,
    ) -> None:
        self.served = served
        self.arms = RecommenderArms(
            served, breaker=settings.breaker, clock=clock, on_change=on_breaker
        )
        # requests an arm could not answer (it raised, or its breaker was open), answered
        # by the base alias's version
        self.fell_back = 0
        self._warned: dict[str, float] = {}  # version -> when its failure was logged
        self.writer = writer
        self.sessions = None if sessions is None else Sessions(sessions, served.name)
        self.shadow = Shadow(served.name, writer, self._compute, settings.shadow_queue)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=f"recommend-{served.name}")
        self._cache: OrderedDict[_Key, tuple[float, Recommendation]] = OrderedDict()
        self._cache_on = settings.cache.enabled and settings.cache.max_entries > 0
        self._cache_size = settings.cache.max_entries
        self._ttl = settings.cache.ttl_s
        self.batcher: DynamicBatcher[RecommendRequest, _Answered | HttpError] = DynamicBatcher(
            self._run,
            size=lambda _: 1,
            max_rows=settings.batching.max_batch_size,
            max_wait_s=settings.batching.max_wait_ms / 1000.0,
        )

    @property
    def tenant(self) -> str:
        """Its audit rows' tenant (the server sets it: the registered model's)."""
        return self.shadow.tenant

    @tenant.setter
    def tenant(self, tenant: str) -> None:
        self.shadow.tenant = tenant

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
        """The request's answer, its prediction id and route; an :class:`HttpError` (503)
        when no version could answer it."""
        answered = await self.batcher.submit(request)
        if isinstance(answered, HttpError):
            raise HttpError(answered.code, answered.message)  # one raise per caller
        return answered

    def forget(self, user: str) -> None:
        for key in [k for k in self._cache if k[0] == user]:
            del self._cache[key]

    async def record(self, user: str, item: str, now: datetime) -> None:
        """An interaction: the item joins the user's session (in the online store)."""
        if self.sessions is None:
            raise HttpError("not-ready", "Sessions need the online store, which is off.")
        await asyncio.to_thread(self.sessions.append, user, item, now)
        self.forget(user)

    def _compute(
        self, rec: Recommender, requests: Sequence[RecommendRequest]
    ) -> list[Recommendation]:
        """Sessions (one read), then the version's answers, off the event loop."""
        users = sorted({r.user_id for r in requests})
        stored = self.sessions.read(users) if self.sessions is not None else {}
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

    async def _run(self, requests: Sequence[RecommendRequest]) -> list[_Answered | HttpError]:
        """A batch: each request to its arm's version (sticky by user), one model call
        per version through its breaker (:meth:`_answer`); then one audit commit for the
        answered requests, then the shadow's copies."""
        arms = self.arms
        base = arms.current
        if base is None:
            raise HttpError("not-ready", f"Recommender '{self.served.name}' is not loaded yet.")
        router, deployments = arms.router, arms.deployments
        started = time.perf_counter()
        now = time.monotonic()
        answers: list[Recommendation | None] = [None] * len(requests)
        failed: dict[int, HttpError] = {}
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
            by, fresh = await self._answer(rec, base, [requests[k] for k in todo])
            if isinstance(fresh, HttpError):
                failed.update(dict.fromkeys(todo, fresh))
                continue
            for k, answer in zip(todo, fresh, strict=True):
                answers[k] = answer
                if by is not rec:
                    routes[k] = "recommend:champion"
                elif self._cache_on:
                    self._cache[self._key(requests[k])] = (now + self._ttl, answer)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        ids = [uuid.uuid4().hex for _ in requests]
        done = [(k, answer) for k, answer in enumerate(answers) if answer is not None]
        if self.writer is not None and done:
            latency_ms = (time.perf_counter() - started) * 1000.0
            stamp = datetime.now(UTC)
            name, tenant = self.served.name, self.tenant
            records = [
                audit_record(name, ids[k], requests[k], a, stamp, latency_ms, tenant, routes[k])
                for k, a in done
            ]
            await self.writer.awrite(records)  # one group commit for the whole batch
        self.shadow.offer(
            arms.shadow,
            router,
            [requests[k] for k, _ in done],
            [ids[k] for k, _ in done],
            [answer for _, answer in done],
        )
        answered = {k: (ids[k], answer, routes[k]) for k, answer in done}
        return [answered.get(k) or failed[k] for k in range(len(requests))]

    async def _answer(
        self, rec: Recommender, base: Recommender, requests: list[RecommendRequest]
    ) -> tuple[Recommender, list[Recommendation] | HttpError]:
        """The version that answered and its answers: ``rec``, or the base when ``rec``
        raises or its breaker is open; when the base cannot answer either, the 503 those
        requests get."""
        if rec is not base:
            answers = await self._call(rec, requests)
            if not isinstance(answers, str):
                return rec, answers
            self.fell_back += len(requests)
        answers = await self._call(base, requests)
        if not isinstance(answers, str):
            return base, answers
        return base, HttpError(
            "unavailable",
            f"Recommender '{self.served.name}' could not answer: version {base.version} "
            f"('{self.served.alias}') {answers}, and no other version answers for it.",
        )

    async def _call(
        self, rec: Recommender, requests: list[RecommendRequest]
    ) -> list[Recommendation] | str:
        """``rec``'s answers through its breaker, or why it gave none."""
        arms = self.arms
        breaker = arms.breaker(rec)
        if not breaker.allow():
            arms.refused[rec.version] += len(requests)
            return "has its circuit breaker open"
        t0 = time.perf_counter()
        try:
            loop = asyncio.get_running_loop()
            answers = await loop.run_in_executor(self._pool, self._compute, rec, requests)
        except Exception as exc:
            seconds = time.perf_counter() - t0
            for _ in requests:  # the breaker counts requests, as on the predict path
                breaker.record(False, seconds)
            arms.failed[rec.version] += len(requests)
            if time.monotonic() - self._warned.get(rec.version, -1e9) > 10.0:
                self._warned[rec.version] = time.monotonic()  # once per 10 s, not per call
                log.warning(
                    "Recommender %s version %s failed (%s: %s).",
                    self.served.name, rec.version, type(exc).__name__, exc,
                )  # fmt: skip
            return f"failed ({type(exc).__name__})"
        except BaseException:  # cancelled: it tells nothing about the version
            breaker.cancel()
            raise
        seconds = time.perf_counter() - t0
        for _ in requests:
            breaker.record(True, seconds)
        return answers

    async def close(self) -> None:
        await self.shadow.close()
        self._pool.shutdown(wait=False, cancel_futures=True)
