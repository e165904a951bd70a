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
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from driftloop.audit import AuditRecord, GroupCommitWriter
from driftloop.core.config import ServingConfig, TrafficPolicy
from driftloop.core.errors import InvalidParameterError
from driftloop.features import OnlineEvent, OnlineStore
from driftloop.recsys import Recommendation, RecommendRequest
from driftloop.serving._batcher import DynamicBatcher
from driftloop.serving._errors import HttpError, json_response, shown
from driftloop.serving._recommend_request import parse_interaction, parse_recommend
from driftloop.serving._server import Server, read_body, stopped
from driftloop.serving._traffic import (
    ActivePolicy,
    Router,
    active_policy,
    poll_policies,
    sync_policies,
)

if TYPE_CHECKING:
    from driftloop.recsys import Recommender

__all__ = ["SESSION_ITEMS", "RecommenderService", "Recommenders", "ServedRecommender"]

log = logging.getLogger(__name__)

SESSION_ITEMS = 10
_SESSION_RETENTION_US = 30 * 86_400 * 1_000_000


@dataclass(frozen=True)
class ServedRecommender:
    """A recommender answered for as ``name``; ``load`` returns the version to serve now
    (for example the registry's ``champion``), called at start and at every refresh.
    ``shadow`` returns a candidate version (or None) that answers the same requests off
    the response path: its lists are audited with route ``shadow``, never returned.

    With ``load_target`` (an alias or a version number -> that version, with its own
    index) the recommender follows a traffic policy as the predict path does: ``traffic``
    (the settings file's), replaced at run time by the server's traffic store; ``resolve``
    (an alias or version -> its version number) spares reloading a version that did not
    move. ``alias`` is what ``load`` follows: the arm a request falls back to."""

    name: str
    load: Callable[[], Recommender]
    shadow: Callable[[], Recommender | None] | None = None
    load_target: Callable[[str], Recommender] | None = None
    resolve: Callable[[str], str] | None = None
    traffic: TrafficPolicy | None = None
    alias: str = "champion"


_Key = tuple[str, int, tuple[str, ...], tuple[tuple[str, str | None], ...]]
# an answer, its prediction id and route, the request it answers, and the answering arm
_Answered = tuple[str, Recommendation, str]
_STICKY = "user_id"  # a recommender's requests are sticky by user unless a policy says


class RecommenderService:
    """One recommender: the versions its traffic policy routes to (each loaded whole, with
    its own index), its batcher, cache, shadow and sessions."""

    def __init__(
        self,
        served: ServedRecommender,
        *,
        settings: ServingConfig,
        writer: GroupCommitWriter | None,
        sessions: OnlineStore | None,
    ) -> None:
        self.served = served
        self.deployments: dict[str, Recommender] = {}  # by alias or version
        self.traffic = ActivePolicy(served.traffic)
        self.router = Router(served.traffic, base=served.alias)
        self.legacy_shadow: Recommender | None = None  # ``served.shadow``'s version
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

    @property
    def current(self) -> Recommender | None:
        """The version of the base alias (the champion): the one every arm falls back to."""
        return self.deployments.get(self.served.alias)

    @property
    def shadow(self) -> Recommender | None:
        """The version answering copies now: the policy's shadow, else ``served.shadow``'s."""
        target = self.router.shadow
        return self.deployments.get(target) if target is not None else self.legacy_shadow

    # -- versions ---------------------------------------------------------------------
    async def refresh(self) -> bool:
        """Follow every alias the policy routes to (new versions load off the event loop,
        then replace the old whole). True if any version changed."""
        if self.served.shadow is not None:
            self.legacy_shadow = await asyncio.to_thread(self.served.shadow)
        changed = False
        for target in dict.fromkeys((self.served.alias, *self.router.targets)):
            changed |= await self._follow(target)
        if changed:
            self._cache.clear()
        return changed

    async def _follow(self, target: str) -> bool:
        """Bring ``target`` (an alias or a version number) to its current version."""
        served, old = self.served, self.deployments.get(target)
        if served.resolve is not None:
            version = await asyncio.to_thread(served.resolve, target)
            if old is not None and old.version == version:
                return False
            same = next((r for r in self.deployments.values() if r.version == version), None)
            if same is not None:
                self.deployments[target] = same
                return True
        if target == served.alias:
            rec = await asyncio.to_thread(served.load)
        elif served.load_target is not None:
            rec = await asyncio.to_thread(served.load_target, target)
        else:
            raise InvalidParameterError(
                f"Recommender '{served.name}' serves its '{served.alias}' alias only; it "
                f"cannot load '{target}'."
            )
        if old is not None and old.version == rec.version:
            return False
        self.deployments[target] = rec  # one reference: batches running keep their version
        return True

    def swap(self, rec: Recommender) -> None:
        """Serve ``rec`` at the base alias from now on (model and index travel together)."""
        self.deployments[self.served.alias] = rec
        self._cache.clear()

    async def apply(self, state: ActivePolicy) -> None:
        """Route by ``state`` from now on. Every version it needs is loaded first (one
        that cannot be refuses the change, naming it, and the old policy stays);
        batches already running finish on the versions they started with."""
        router = await self.preload(state.policy)
        self.router, self.traffic = router, state
        keep = {self.served.alias, *router.targets}
        for target in [t for t in self.deployments if t not in keep]:
            del self.deployments[target]

    async def preload(self, policy: TrafficPolicy | None) -> Router:
        """Load every version ``policy`` routes to (aliases may have moved with it, as the
        loop moves them); one that cannot be loaded is refused, naming it."""
        router = Router(policy, base=self.served.alias)
        for target in router.targets:
            if target not in self.deployments or self.served.resolve is not None:
                try:
                    await self._follow(target)
                except Exception as exc:
                    raise InvalidParameterError(
                        f"Traffic for recommender '{self.served.name}': arm or shadow "
                        f"'{target}' cannot be loaded: {exc}"
                    ) from None
        return router

    def describe(self) -> dict[str, Any]:
        """The policy routed by now, as ``GET /v1/models/{name}/traffic`` shows it."""
        state, router = self.traffic, self.router
        total = sum(router.weights)
        shadow = self.deployments.get(router.shadow) if router.shadow is not None else None
        return {
            "model": self.served.name,
            "alias": self.served.alias,
            "source": state.source,
            "revision": state.revision,
            "changed_by": state.changed_by,
            "changed_at": state.changed_at,
            "reason": state.reason,
            "arms": [
                {
                    "name": name,
                    "version": rec.version if (rec := self.deployments.get(name)) else None,
                    "weight": round(100.0 * weight / total, 4),
                }
                for name, weight in zip(router.arms, router.weights, strict=True)
            ],
            "sticky_key": router.sticky_key or _STICKY,
            "shadow": router.shadow,
            "shadow_version": shadow.version if shadow is not None else None,
            "shadow_sample": router.shadow_sample if router.shadow is not None else None,
        }

    def sticky(self, request: RecommendRequest) -> str | int | float | None:
        """The request's sticky key: its ``user_id``, or the context field the policy
        names."""
        field = self.router.sticky_key or _STICKY
        if field == _STICKY:
            return request.user_id
        value = request.context.get(field)
        return value if isinstance(value, str | int | float) else None

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
        base = self.current
        if base is None:
            raise HttpError("not-ready", f"Recommender '{self.served.name}' is not loaded yet.")
        router, deployments = self.router, self.deployments
        started = time.perf_counter()
        now = time.monotonic()
        answers: list[Recommendation | None] = [None] * len(requests)
        routes = ["recommend"] * len(requests)
        groups: dict[int, tuple[Recommender, list[int]]] = {}  # by version object
        for k, request in enumerate(requests):
            rec = deployments.get(router.pick(self.sticky(request)), base)
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
        shadow = self.shadow
        if shadow is None or self.writer is None:
            return
        router = self.router
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

    async def start(self) -> None:
        for served in self.served:
            service = self.by_name[served.name] = RecommenderService(
                served,
                settings=self.server.settings,
                writer=self.server.writer,
                sessions=self.sessions,
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
        for service in self.by_name.values():
            try:
                await service.refresh()
            except Exception as exc:  # keep serving the version loaded
                log.warning("Could not refresh recommender %s: %s", service.served.name, exc)

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
            self.by_name,
            lambda service, row: active_policy(row, service.served.traffic),
        )

    async def _poll_traffic(self) -> None:
        await poll_policies(self.sync_traffic)

    async def stop(self) -> None:
        for task in (self._refresher, self._poller):
            if task is not None:
                await stopped(task)
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
        pid, answer, route = await service.recommend(parsed)
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
                "route": route,
                "confidence": answer.confidence,
            }
        )

    async def interaction(self, request: Request, server: Server) -> Response:
        service = self.service(request.path_params["name"])
        user, item = parse_interaction(await read_body(request, server.settings.max_body_bytes))
        await service.record(user, item, server.clock())
        return json_response({"user_id": user, "item_id": item, "recorded": True})
