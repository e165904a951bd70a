"""Traffic routing: which version answers a request (A/B arms, canary) and which
requests a shadow also scores.

Sticky routing is weighted rendezvous hashing: each arm scores a key as
``-ln(u) / weight`` with ``u`` uniform from a hash of (key, arm), and the lowest score
wins. A key keeps its arm while the weights stay; raising one arm's weight moves keys
only onto that arm, lowering it moves keys only off it, so a canary going from 10% to
25% moves 15% of the keys and no others. Requests without the key are split at random
by the weights.

>>> from driftloop.core.config import TrafficPolicy
>>> router = Router(TrafficPolicy(arms={"champion": 90, "challenger": 10},
...                 sticky_key="account"), base="champion")
>>> router.pick("a-42") == router.pick("a-42")
True
>>> Router(None, base="champion").pick("anyone")
'champion'
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import logging
import math
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from driftloop.core.config import TrafficPolicy
from driftloop.registry import TrafficState, TrafficStore
from driftloop.stats import category_text

__all__ = [
    "TRAFFIC_POLL_S",
    "ActivePolicy",
    "Router",
    "active_policy",
    "poll_policies",
    "refresh_services",
    "sync_policies",
]

log = logging.getLogger(__name__)

TRAFFIC_POLL_S = 0.25  # a change reaches every worker within about this

_SCALE = 2.0**64
_SEEN = 100_000  # sticky keys whose arm is remembered
# what a sticky key may be (a tuple: ``str | int | float`` built a union per call, which
# made reading the key cost more than picking the arm)
_KEY_TYPES = (str, int, float)
_random = random.random  # the module's generator (``random.seed`` reseeds it)


@dataclass(frozen=True)
class ActivePolicy:
    """The policy a model is routed by, and where it came from: the settings file
    (``config``, revision 0) or a run-time change (``runtime``) by ``changed_by``."""

    policy: TrafficPolicy | None
    source: str = "config"
    revision: int = 0
    changed_by: str = ""
    changed_at: str = ""
    reason: str = ""


def active_policy(row: TrafficState, configured: TrafficPolicy | None) -> ActivePolicy:
    """A stored policy as routed: its own (``runtime``), or the settings file's
    (``configured``) when the stored one was cleared."""
    if row.policy is None:
        policy, source = configured, "config"
    else:
        policy, source = TrafficPolicy.model_validate(row.policy), "runtime"
    return ActivePolicy(
        policy, source, row.revision, row.changed_by, row.changed_at.isoformat(), row.reason
    )


class Router:
    """Picks an arm (an alias or a version) per request, and the shadow's sample."""

    def __init__(self, policy: TrafficPolicy | None, *, base: str) -> None:
        self.policy = policy
        arms = dict(policy.arms) if policy is not None and policy.arms else {base: 1.0}
        self.arms = tuple(name for name, weight in arms.items() if weight > 0)
        self.weights = tuple(arms[name] for name in self.arms)
        self.sticky_key = policy.sticky_key if policy is not None else None
        self.shadow = policy.shadow if policy is not None else None
        self.shadow_sample = policy.shadow_sample if policy is not None else 0.0
        # the shadow's sample, decided per request with one comparison: always (1.0),
        # never (no shadow: -1.0, below any draw), or a draw under the share
        self._sample = -1.0 if self.shadow is None else min(self.shadow_sample, 1.0)
        total, cumulative = 0.0, []
        for weight in self.weights:
            total += weight
            cumulative.append(total)
        self._total = total
        self._cumulative = cumulative
        self._salts = tuple(b"\0" + name.encode() for name in self.arms)
        self._single = self.arms[0] if len(self.arms) == 1 else None
        self._seen: dict[Any, str] = {}  # key -> arm: fixed while the weights are

    @property
    def targets(self) -> tuple[str, ...]:
        """Every alias or version this policy needs loaded (arms, then the shadow)."""
        extra = (self.shadow,) if self.shadow is not None else ()
        return tuple(dict.fromkeys((*self.arms, *extra)))

    def pick(self, key: Any = None) -> str:
        """The arm of a request whose sticky field holds ``key`` (None: at random)."""
        if self._single is not None:
            return self._single
        if key is None:
            at = random.random() * self._total
            return self.arms[min(bisect.bisect_right(self._cumulative, at), len(self.arms) - 1)]
        # remembered by the value as sent: 42, 42.0 and "42" hash alike (as one text), and
        # equal values share an entry, except True (== 1) whose text is "true"
        arm = self._seen.get(key) if type(key) is not bool else None
        if arm is None:
            if len(self._seen) >= _SEEN:
                self._seen.clear()  # bounded: a flood of new keys costs hashing, not memory
            arm = self._hashed(category_text(key))
            if type(key) is not bool:
                self._seen[key] = arm
        return arm

    def _hashed(self, text: str) -> str:
        """Weighted rendezvous: the arm whose ``-ln(u) / weight`` is lowest, ``u`` from
        a hash of (key, arm)."""
        data = text.encode()
        best, best_score = self.arms[0], math.inf
        for name, salt, weight in zip(self.arms, self._salts, self.weights, strict=True):
            digest = hashlib.blake2b(data + salt, digest_size=8).digest()
            u = (int.from_bytes(digest, "big") + 0.5) / _SCALE
            score = -math.log(u) / weight
            if score < best_score:
                best, best_score = name, score
        return best

    def key_of(self, instance: Any) -> Any:
        """The sticky field's value in one request instance (None when absent)."""
        if self.sticky_key is None or type(instance) is not dict:
            return None
        value = instance.get(self.sticky_key)
        return value if isinstance(value, _KEY_TYPES) else None

    def shadowed(self) -> bool:
        """Does this request also go to the shadow?"""
        sample = self._sample
        return sample >= 1.0 or _random() < sample


class _Routed(Protocol):
    """What follows a stored policy: a service of the predict or the recommend path."""

    @property
    def traffic(self) -> ActivePolicy: ...

    async def apply(self, policy: ActivePolicy) -> None: ...


S = TypeVar("S", bound=_Routed)


async def sync_policies(
    store: TrafficStore,
    seen: int,
    services: Mapping[str, S],
    state: Callable[[S, TrafficState], ActivePolicy],
) -> int:
    """Apply each stored policy whose revision the service does not route by yet, when
    the store's revision moved from ``seen``; return the revision now seen. A policy
    that cannot be applied is logged and the one in force kept."""
    revision = await asyncio.to_thread(store.revision)
    if revision == seen:
        return seen
    stored = await asyncio.to_thread(store.all)
    for name, service in services.items():
        row = stored.get(name)
        if row is None or row.revision == service.traffic.revision:
            continue
        try:
            await service.apply(state(service, row))
        except Exception as exc:  # keep routing by the policy in force
            log.warning("Traffic policy %s for %s not applied: %s", row.revision, name, exc)
    return revision


async def poll_policies(sync: Callable[[], Awaitable[None]]) -> None:
    """Call ``sync`` every :data:`TRAFFIC_POLL_S` forever; a store that is down keeps
    the policies in force."""
    while True:
        await asyncio.sleep(TRAFFIC_POLL_S)
        try:
            await sync()
        except Exception as exc:
            log.warning("Could not read traffic policies: %s", exc)


class _Refreshed(Protocol):
    async def refresh(self) -> bool: ...


async def refresh_services(
    services: Mapping[str, _Refreshed], sync: Callable[[], Awaitable[None]] | None, kind: str
) -> None:
    """Follow every alias once. A service that fails is tried again after the traffic
    policies are read (``sync``): a rollout that ends removes the challenger alias and
    the policy routing to it in one transaction, and this worker's poll may not have
    seen the policy yet. A failure after that keeps the version being served, logged."""
    for name, service in services.items():
        try:
            await service.refresh()
        except Exception:
            try:
                if sync is not None:
                    await sync()
                await service.refresh()
            except Exception as exc:
                log.warning("Could not refresh %s %s: %s", kind, name, exc)
