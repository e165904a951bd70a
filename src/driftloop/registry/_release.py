"""Release changes made in one transaction: alias moves and traffic policies, committed
together with the caller's own rows (the loop controller's decision log), or not at all.

>>> import tempfile, lightgbm as lgb, numpy as np, pandas as pd
>>> from driftloop.registry import Registry, Signature
>>> from datetime import UTC, datetime
>>> folder = tempfile.mkdtemp()
>>> registry = Registry.from_url(f"sqlite:///{folder}/r.db", f"{folder}/artifacts")
>>> X = pd.DataFrame({"amount": np.arange(200.0)}); y = (X["amount"] > 150).astype(int)
>>> mv = registry.register("fraud", lgb.LGBMClassifier(n_estimators=5, verbose=-1).fit(X, y),
...                        signature=Signature.from_frame(X))
>>> with registry.release() as release:
...     _ = release.set_alias("fraud", "challenger", 1, who="loop", why="shadow",
...                           at=datetime.now(UTC))
...     _ = release.set_traffic("fraud", {"arms": {"champion": 100}, "shadow": "challenger"},
...                             who="loop", why="shadow")
>>> registry.aliases("fraud"), registry.traffic.get("fraud").policy["shadow"]
({'challenger': 1}, 'challenger')
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from driftloop.core.errors import ModelNotFoundError
from driftloop.registry._rows import check_name, utc
from driftloop.registry._schema import alias_events, model_versions
from driftloop.registry._traffic import TrafficState, write_policy
from driftloop.registry._types import AliasEvent

__all__ = ["Release"]

Mover = Callable[[Connection, str, str, "int | None", str, str, datetime, str], AliasEvent]


class Release:
    """Changes of release state inside one open write transaction (``conn``): get one
    from :meth:`Registry.release`; everything done through it commits when the ``with``
    block ends, or nothing does when it raises."""

    def __init__(self, conn: Connection, move: Mover) -> None:
        self.conn = conn
        self._move = move

    def _check_version(self, name: str, version: int) -> None:
        found = self.conn.execute(
            select(model_versions.c.version).where(
                model_versions.c.model_name == name, model_versions.c.version == version
            )
        ).first()
        if found is None:
            raise ModelNotFoundError(f"Model '{name}' has no version {version}.")

    def current(self, name: str, alias: str) -> int | None:
        """The version ``alias`` points at, as this transaction sees it."""
        version = self.conn.execute(
            select(alias_events.c.version)
            .where(alias_events.c.model_name == name, alias_events.c.alias == alias)
            .order_by(alias_events.c.id.desc())
            .limit(1)
        ).scalar()
        return None if version is None else int(version)

    def set_alias(
        self, name: str, alias: str, version: int, *, who: str, why: str, at: datetime
    ) -> AliasEvent:
        """Point ``alias`` at ``version`` (recorded at ``at`` with who and why)."""
        check_name("Alias", alias)
        self._check_version(name, version)
        return self._move(self.conn, name, alias, version, who, why, utc(at), "move")

    def remove_alias(
        self, name: str, alias: str, *, who: str, why: str, at: datetime
    ) -> AliasEvent | None:
        """Unset ``alias`` when it is set (None when it was not: nothing recorded)."""
        if self.current(name, alias) is None:
            return None
        return self._move(self.conn, name, alias, None, who, why, utc(at), "remove")

    def set_traffic(
        self, model: str, policy: dict[str, Any] | None, *, who: str, why: str
    ) -> TrafficState:
        """The model's traffic policy (None: back to the settings file's)."""
        return write_policy(self.conn, model, policy, who=who, why=why)
