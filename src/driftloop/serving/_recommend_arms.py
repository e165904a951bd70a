"""The versions one recommender routes to: what is served (:class:`ServedRecommender`)
and its arms (:class:`RecommenderArms`): each alias or version of its traffic policy
loaded whole (model and index together), the policy routing requests among them,
following the aliases as they move, and a circuit breaker per version.

A new version replaces the old whole by swapping one reference, so a batch running keeps
the version it started with and no answer mixes two versions' model and index.

Each version has its own :class:`~._breaker.CircuitBreaker` (the server's
``[serving.breaker]``), as a predict arm has: a version whose calls raise opens it, and
while it is open the version is not called (its requests go to the base alias's version,
the champion); a version newly loaded starts closed. The breakers' clock is a parameter,
so tests step time instead of sleeping; ``on_change`` hears each change of state (the
server sets ``driftloop_breaker_state{model, target}``, ``target`` the version).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from driftloop.core.config import BreakerConfig, TrafficPolicy
from driftloop.core.errors import InvalidParameterError
from driftloop.recsys import RecommendRequest
from driftloop.serving._breaker import CircuitBreaker
from driftloop.serving._traffic import ActivePolicy, Router

if TYPE_CHECKING:
    from driftloop.recsys import Recommender

__all__ = ["RecommenderArms", "ServedRecommender"]

STICKY = "user_id"  # a recommender's requests are sticky by user unless a policy says


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


class RecommenderArms:
    """The versions a recommender's traffic policy routes to, by alias or version, each
    loaded whole with its own index, and each version's circuit breaker; ``current`` is
    the base alias's (the champion)."""

    def __init__(
        self,
        served: ServedRecommender,
        *,
        breaker: BreakerConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[str, str], None] | None = None,
    ) -> None:
        self.served = served
        self.deployments: dict[str, Recommender] = {}  # by alias or version
        self.traffic = ActivePolicy(served.traffic)
        self.router = Router(served.traffic, base=served.alias)
        self.legacy_shadow: Recommender | None = None  # ``served.shadow``'s version
        self.breaker_config = breaker or BreakerConfig()
        self.clock = clock
        self._on_change = on_change  # (version, new state): the metrics gauge
        self.breakers: dict[str, CircuitBreaker] = {}  # by version
        self.failed: Counter[str] = Counter()  # by version: requests its calls raised on
        self.refused: Counter[str] = Counter()  # by version: requests its open breaker refused

    def breaker(self, rec: Recommender) -> CircuitBreaker:
        """``rec``'s breaker (a version seen for the first time starts closed)."""
        version = rec.version
        breaker = self.breakers.get(version)
        if breaker is None:
            told = self._on_change
            changed = None if told is None else lambda state: told(version, state)
            breaker = CircuitBreaker(self.breaker_config, self.clock, changed)
            self.breakers[version] = breaker
            if told is not None:
                told(version, "closed")
        return breaker

    def _forget_gone(self) -> None:
        """Drop the breakers of versions no longer served: one loaded again starts closed."""
        served = {rec.version for rec in self.deployments.values()}
        for version in [v for v in self.breakers if v not in served]:
            del self.breakers[version]

    @property
    def current(self) -> Recommender | None:
        """The version of the base alias (the champion): the one every arm falls back to."""
        return self.deployments.get(self.served.alias)

    @property
    def shadow(self) -> Recommender | None:
        """The version answering copies now: the policy's shadow, else ``served.shadow``'s."""
        target = self.router.shadow
        return self.deployments.get(target) if target is not None else self.legacy_shadow

    async def refresh(self) -> bool:
        """Follow every alias the policy routes to (new versions load off the event loop,
        then replace the old whole). True if any version changed."""
        if self.served.shadow is not None:
            self.legacy_shadow = await asyncio.to_thread(self.served.shadow)
        changed = False
        for target in dict.fromkeys((self.served.alias, *self.router.targets)):
            changed |= await self._follow(target)
        if changed:
            self._forget_gone()
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
        self._forget_gone()

    async def apply(self, state: ActivePolicy) -> None:
        """Route by ``state`` from now on. Every version it needs is loaded first (one
        that cannot be refuses the change, naming it, and the old policy stays);
        batches already running finish on the versions they started with."""
        router = await self.preload(state.policy)
        self.router, self.traffic = router, state
        keep = {self.served.alias, *router.targets}
        for target in [t for t in self.deployments if t not in keep]:
            del self.deployments[target]
        self._forget_gone()

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
                self._arm(name, round(100.0 * weight / total, 4))
                for name, weight in zip(router.arms, router.weights, strict=True)
            ],
            "sticky_key": router.sticky_key or STICKY,
            "shadow": router.shadow,
            "shadow_version": shadow.version if shadow is not None else None,
            "shadow_sample": router.shadow_sample if router.shadow is not None else None,
        }

    def _arm(self, name: str, weight: float) -> dict[str, Any]:
        """An arm as routed now: its version, weight (percent), breaker state, and the
        requests to its version since start (this process's) that raised (``failed``) or
        that its open breaker refused (``refused``), each answered by the base alias's
        version."""
        rec = self.deployments.get(name)
        version = rec.version if rec is not None else None
        breaker = self.breaker(rec).state if rec is not None else None
        return {
            "name": name,
            "version": version,
            "weight": weight,
            "breaker": breaker,
            "failed": self.failed[version] if version is not None else 0,
            "refused": self.refused[version] if version is not None else 0,
        }

    def sticky(self, request: RecommendRequest) -> str | int | float | None:
        """The request's sticky key: its ``user_id``, or the context field the policy
        names."""
        field = self.router.sticky_key or STICKY
        if field == STICKY:
            return request.user_id
        value = request.context.get(field)
        return value if isinstance(value, str | int | float) else None
