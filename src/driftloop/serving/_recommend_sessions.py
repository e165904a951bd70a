"""A recommender's sessions: the last :data:`SESSION_ITEMS` items each user interacted
with, kept as events in the online store under ``recsys:{name}:{user}`` so that every
worker sees them; a batch reads all its users' sessions in one round trip."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from driftloop.features import OnlineEvent, OnlineStore

__all__ = ["SESSION_ITEMS", "Sessions"]

SESSION_ITEMS = 10
_SESSION_RETENTION_US = 30 * 86_400 * 1_000_000


class Sessions:
    """The sessions of recommender ``name`` in ``store`` (blocking calls: run them off
    the event loop)."""

    def __init__(self, store: OnlineStore, name: str) -> None:
        self.store = store
        self.name = name

    def key(self, user: str) -> str:
        return f"recsys:{self.name}:{user}"

    def append(self, user: str, item: str, now: datetime) -> None:
        """``item`` joins ``user``'s session at ``now``."""
        ts_us = int(now.timestamp() * 1_000_000)
        event = OnlineEvent(self.key(user), ts_us, uuid.uuid4().hex, {"item_id": item})
        self.store.append_events([event], _SESSION_RETENTION_US)

    def read(self, users: Sequence[str]) -> dict[str, tuple[str, ...]]:
        """Each user's last items, oldest first (users with none are left out)."""
        read = self.store.read([], [self.key(u) for u in users])
        out = {}
        for user in users:
            events = read.events.get(self.key(user), [])
            items = [str(values["item_id"]) for _, values in events][-SESSION_ITEMS:]
            if items:
                out[user] = tuple(items)
        return out
