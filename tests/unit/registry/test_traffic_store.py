"""Traffic policies in the registry's database: current state, history and the revision
servers poll, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa

from driftloop.core.errors import InvalidParameterError
from driftloop.core.migrations import upgrade_schema
from driftloop.registry import Registry, TrafficStore
from driftloop.registry._db import BRANCH, make_engine
from registry_helpers import old_registry_rows, postgres_schema

SPLIT = {"arms": {"champion": 90, "challenger": 10}, "sticky_key": "customer_id"}
CANARY = {"arms": {"champion": 75, "challenger": 25}, "shadow": None}


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TrafficStore]:
    if request.param == "sqlite":
        one = TrafficStore.at(f"sqlite:///{tmp_path}/traffic.db")
        yield one
        one.close()
        return
    with postgres_schema(request.getfixturevalue("postgres_url")) as url:
        one = TrafficStore.at(url)
        yield one
        one.close()


def test_a_set_policy_is_read_back_with_who_when_and_why(store: TrafficStore) -> None:
    assert store.get("fraud") is None
    state = store.set("fraud", SPLIT, who="ana", why="try v7 on 10%")
    again = store.get("fraud")
    assert again == state
    assert (again.policy, again.changed_by, again.reason, again.revision) == (
        SPLIT,
        "ana",
        "try v7 on 10%",
        1,
    )
    assert again.changed_at.tzinfo is not None


def test_clearing_keeps_who_cleared_it_and_a_null_policy(store: TrafficStore) -> None:
    store.set("fraud", SPLIT, who="ana")
    cleared = store.set("fraud", None, who="bo", why="back to the config")
    assert store.get("fraud") == cleared
    assert (cleared.policy, cleared.changed_by, cleared.revision) == (None, "bo", 2)
    with store.engine.connect() as conn:  # SQL NULL, not the JSON text 'null'
        nulls = conn.execute(
            sa.text("SELECT count(*) FROM driftloop_traffic_policies WHERE policy IS NULL")
        ).scalar()
    assert nulls == 1


def test_revision_grows_with_every_change_of_any_model(store: TrafficStore) -> None:
    assert store.revision() == 0
    store.set("fraud", SPLIT, who="ana")
    store.set("churn", CANARY, who="ana")
    store.set("fraud", None, who="ana")
    assert store.revision() == 3
    assert {m: s.revision for m, s in store.all().items()} == {"churn": 2, "fraud": 3}
    assert store.all()["fraud"].policy is None


def test_history_lists_a_models_changes_newest_first(store: TrafficStore) -> None:
    store.set("fraud", SPLIT, who="ana", why="a/b")
    store.set("churn", CANARY, who="cy")
    store.set("fraud", CANARY, who="bo", why="canary")
    store.set("fraud", None, who="ana", why="done")
    history = store.history("fraud")
    assert [(s.revision, s.changed_by, s.reason) for s in history] == [
        (4, "ana", "done"),
        (3, "bo", "canary"),
        (1, "ana", "a/b"),
    ]
    assert [s.policy for s in history] == [None, CANARY, SPLIT]
    assert [s.revision for s in store.history("fraud", limit=2)] == [4, 3]
    assert store.history("nope") == []


def test_bad_input_is_refused_before_anything_is_written(store: TrafficStore) -> None:
    with pytest.raises(InvalidParameterError, match="Model name"):
        store.set("no spaces", SPLIT, who="ana")
    with pytest.raises(InvalidParameterError, match="JSON object"):
        store.set("fraud", [1, 2], who="ana")  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="must be named"):
        store.set("fraud", SPLIT, who="")
    with pytest.raises(InvalidParameterError, match="limit"):
        store.history("fraud", limit=0)
    assert store.revision() == 0


def test_two_engines_on_one_sqlite_file_see_each_others_changes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/traffic.db"
    a, b = TrafficStore.at(url), TrafficStore.at(url)
    assert (a.revision(), b.revision()) == (0, 0)
    a.set("fraud", SPLIT, who="worker-a")
    assert b.revision() == 1
    assert b.get("fraud") is not None
    b.set("fraud", CANARY, who="worker-b")
    assert a.revision() == 2
    assert a.all()["fraud"].policy == CANARY
    a.close()
    b.close()


def test_the_registry_keeps_traffic_policies_in_its_own_database(tmp_path: Path) -> None:
    registry = Registry.from_url(f"sqlite:///{tmp_path}/r.db", str(tmp_path / "a"))
    registry.traffic.set("fraud", SPLIT, who="ana")
    assert registry.traffic.engine is registry.engine
    assert registry.traffic.revision() == 1
    registry.close()


def test_a_registry_at_r0001_upgrades_with_its_rows_intact(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/r.db"
    old_engine = make_engine(url)
    upgrade_schema(old_engine, BRANCH, revision="r0001")
    old_engine.dispose()
    old_registry_rows(url, str(tmp_path / "a")).close()
    probe = make_engine(url)
    assert "driftloop_traffic_policies" not in sa.inspect(probe).get_table_names()
    probe.dispose()

    registry = Registry.from_url(url, str(tmp_path / "a"))
    with registry.engine.connect() as conn:
        version = conn.execute(sa.text("SELECT version_num FROM driftloop_registry_version"))
        assert version.scalar() == "r0005_shared_usage"
    assert registry.resolve("loans", "champion").version == 2
    assert [e.why for e in registry.history("loans")] == ["before tenants"]
    assert registry.traffic.revision() == 0
    registry.traffic.set("fraud", SPLIT, who="ana")
    assert registry.traffic.get("fraud") is not None
    registry.close()


def test_writers_at_once_never_share_or_skip_a_revision(store: TrafficStore) -> None:
    def write(who: str) -> None:
        for i in range(10):
            store.set(f"model-{who}", {"arms": {"champion": 100 - i, "challenger": i}}, who=who)

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(write, ["a", "b"]))
    revisions = sorted(s.revision for w in "ab" for s in store.history(f"model-{w}"))
    assert revisions == list(range(1, 21))
    assert store.revision() == 20
