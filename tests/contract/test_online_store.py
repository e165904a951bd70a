"""Every online store backend passes the same contract battery."""

from __future__ import annotations

import socket
import sqlite3
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

sys.path.insert(0, str(Path(__file__).parent))

from test_online_store_battery import CHECKS

from driftloop.core.errors import BackendUnavailableError, ConflictError, InvalidParameterError
from driftloop.features import (
    CachedOnlineStore,
    OnlineEvent,
    OnlineRow,
    OnlineStore,
    RedisOnlineStore,
    SqliteOnlineStore,
    online_store_from_url,
)


@pytest.fixture(params=["sqlite-file", "sqlite-memory", "redis", "cached-sqlite"])
def factory(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], OnlineStore]:
    if request.param == "sqlite-file":
        return lambda: SqliteOnlineStore(tmp_path / f"{uuid.uuid4().hex}.db")
    if request.param == "sqlite-memory":
        return lambda: SqliteOnlineStore(":memory:")
    if request.param == "cached-sqlite":  # every view the battery uses may be cached
        ages = {"v": 60.0, "s": 60.0, "card": 60.0}
        return lambda: CachedOnlineStore(SqliteOnlineStore(":memory:"), ages)
    url = request.getfixturevalue("redis_url")
    return lambda: RedisOnlineStore(url, prefix=f"test:{uuid.uuid4().hex}:")


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_online_store_contract(factory: Callable[[], OnlineStore], check: Callable) -> None:
    store = factory()
    try:
        check(store)
    finally:
        store.close()


def test_redis_down_raises_backend_unavailable() -> None:
    with socket.socket() as sock:  # a port with nothing listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = RedisOnlineStore(f"redis://127.0.0.1:{port}/0", timeout_s=0.2)
    with pytest.raises(BackendUnavailableError, match="unavailable"):
        store.read(["v:1"])


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A server that accepts connections and never answers (a hung Redis)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.05)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


def test_hung_redis_times_out_instead_of_hanging(silent_server: int) -> None:
    store = RedisOnlineStore(f"redis://127.0.0.1:{silent_server}/0", timeout_s=0.2)
    with pytest.raises(BackendUnavailableError):
        store.read(["v:1"])


def test_sqlite_file_of_layout_1_reads_as_before_and_takes_created_times(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:  # the tables as driftloop wrote them before layout 2
        db.execute(
            "CREATE TABLE latest (key TEXT PRIMARY KEY, ts INTEGER NOT NULL, "
            "payload TEXT NOT NULL) WITHOUT ROWID"
        )
        db.execute("INSERT INTO latest VALUES ('v:1', 10, '{\"f\":1.5,\"s\":null}')")
    store = SqliteOnlineStore(path)
    try:
        assert store.read(["v:1"]).rows["v:1"] == OnlineRow("v:1", 10, {"f": 1.5, "s": None})
        store.write_rows([OnlineRow("v:1", 10, {"f": 2.0}, created_us=1)])
        assert store.read(["v:1"]).rows["v:1"].values == {"f": 2.0}
    finally:
        store.close()


def test_sqlite_file_of_a_newer_layout_is_refused_naming_materialize(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(ConflictError, match="driftloop features materialize"):
        SqliteOnlineStore(path)


def _old_redis_row(url: str, prefix: str, key: str, ts: int, payload: str) -> None:
    client = redis.Redis.from_url(url)
    client.hset(prefix + "l:" + key, mapping={"ts": ts, "v": payload})
    client.close()


def test_redis_rows_of_layout_1_are_read_then_migrated_by_the_first_write(
    redis_url: str,
) -> None:
    prefix = f"test:{uuid.uuid4().hex}:"
    _old_redis_row(redis_url, prefix, "v:1", 10, '{"f":1.5}')
    _old_redis_row(redis_url, prefix, "v:2", 30, '{"f":3.0}')
    reader = RedisOnlineStore(redis_url, prefix=prefix)
    writer = RedisOnlineStore(redis_url, prefix=prefix)
    try:
        got = reader.read(["v:1", "v:2", "v:3"], ["s:1"])
        assert got.events == {}
        assert got.rows == {
            "v:1": OnlineRow("v:1", 10, {"f": 1.5}),
            "v:2": OnlineRow("v:2", 30, {"f": 3.0}),
        }
        # the first write migrates every old row, keeping the newer of old and new
        writer.write_rows([OnlineRow("v:2", 20, {"f": 2.0}), OnlineRow("v:3", 5, {"f": 5.0})])
        client = redis.Redis.from_url(redis_url)
        assert client.keys(prefix + "l:*") == []
        assert client.get(prefix + "layout") == b"3"
        client.close()
        for store in (reader, writer):
            got = store.read(["v:1", "v:2", "v:3"])
            assert {k: r.values["f"] for k, r in got.rows.items()} == {
                "v:1": 1.5,
                "v:2": 3.0,
                "v:3": 5.0,
            }
    finally:
        reader.close()
        writer.close()


def test_redis_store_of_a_newer_layout_is_refused_naming_materialize(redis_url: str) -> None:
    prefix = f"test:{uuid.uuid4().hex}:"
    client = redis.Redis.from_url(redis_url)
    client.set(prefix + "layout", "4")
    client.close()
    store = RedisOnlineStore(redis_url, prefix=prefix)
    try:
        with pytest.raises(ConflictError, match="driftloop features materialize"):
            store.read(["v:1"])
        with pytest.raises(ConflictError, match="layout 4"):
            store.write_rows([OnlineRow("v:1", 1, {"f": 1.0})])
    finally:
        store.close()


def test_redis_that_lost_its_scripts_still_answers(redis_url: str) -> None:
    """After a Redis restart (scripts gone) the next call loads them and runs again."""
    store = RedisOnlineStore(redis_url, prefix=f"test:{uuid.uuid4().hex}:")
    try:
        store.append_events([OnlineEvent("s:1", 5, "e", {"a": 1.0})], retention_us=100)
        # a script body Redis has never seen stands for one it lost
        fresh = f"-- {uuid.uuid4().hex}\n" + store._scripts["events"].script
        store._scripts["events"] = store._client.register_script(fresh)
        assert store.read([], ["s:1"]).events == {"s:1": [(5, {"a": 1.0})]}
    finally:
        store.close()


def test_two_projects_share_one_redis_database_under_their_url_prefixes(redis_url: str) -> None:
    tag = uuid.uuid4().hex
    first, second = (
        online_store_from_url(f"{redis_url}?prefix=test:{tag}:{name}:", Path("."))
        for name in ("fraud", "loans")
    )
    try:
        first.write_rows([OnlineRow("v:1", 10, {"f": 1.0})])
        second.write_rows([OnlineRow("v:1", 20, {"f": 2.0})])
        assert first.read(["v:1"]).rows["v:1"].values == {"f": 1.0}
        assert second.read(["v:1"]).rows["v:1"].values == {"f": 2.0}
        client = redis.Redis.from_url(redis_url)
        assert client.exists(f"test:{tag}:fraud:r:v:1", f"test:{tag}:loans:r:v:1") == 2
        client.close()
    finally:
        first.close()
        second.close()


def test_an_empty_prefix_in_the_url_is_refused_naming_the_setting() -> None:
    with pytest.raises(InvalidParameterError, match=r"features\.online_store: 'prefix'"):
        RedisOnlineStore.from_url("redis://127.0.0.1:6379/0?prefix=")


def test_sqlite_file_of_layout_2_reads_its_json_rows_beside_packed_ones(tmp_path: Path) -> None:
    path = tmp_path / "v2.db"
    with sqlite3.connect(path) as db:  # as driftloop of layout 2 left it
        db.execute(
            "CREATE TABLE latest (key TEXT PRIMARY KEY, ts INTEGER NOT NULL, "
            "payload TEXT NOT NULL, cr INTEGER) WITHOUT ROWID"
        )
        db.execute("INSERT INTO latest VALUES ('v:1', 10, '{\"f\":1.5,\"g\":null}', 3)")
        db.execute("PRAGMA user_version = 2")
    store = SqliteOnlineStore(path)
    try:
        assert store.read(["v:1"]).rows["v:1"] == OnlineRow("v:1", 10, {"f": 1.5, "g": None})
        store.write_rows([OnlineRow("v:1", 10, {"f": 9.0}, created_us=2)])  # older: ignored
        store.write_rows([OnlineRow("v:2", 11, {"f": 2.5, "g": None})])
        got = store.read(["v:1", "v:2"]).rows
        assert got["v:1"].values == {"f": 1.5, "g": None}
        assert got["v:2"] == OnlineRow("v:2", 11, {"f": 2.5, "g": None})
    finally:
        store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 3
        kinds = dict(db.execute("SELECT key, typeof(payload) FROM latest").fetchall())
    assert kinds == {"v:1": "text", "v:2": "blob"}  # re-materializing packs the old row


def test_redis_store_of_layout_2_is_read_then_marked_3_by_the_first_write(
    redis_url: str,
) -> None:
    prefix = f"test:{uuid.uuid4().hex}:"
    client = redis.Redis.from_url(redis_url)
    client.set(prefix + "layout", "2")
    client.set(prefix + "r:v:1", '[10,3,{"f":1.5,"g":null}]')
    store = RedisOnlineStore(redis_url, prefix=prefix)
    try:
        assert store.read(["v:1"]).rows["v:1"] == OnlineRow("v:1", 10, {"f": 1.5, "g": None})
        store.write_rows([OnlineRow("v:1", 10, {"f": 9.0}, created_us=2)])  # older: ignored
        store.write_rows([OnlineRow("v:2", 11, {"f": 2.5})])
        assert client.get(prefix + "layout") == b"3"
        got = store.read(["v:1", "v:2"]).rows
        assert got["v:1"].values == {"f": 1.5, "g": None}
        assert got["v:2"] == OnlineRow("v:2", 11, {"f": 2.5})
        assert client.get(prefix + "r:v:2")[:1] == b"\xd1"  # packed
    finally:
        store.close()
        client.delete(*client.keys(prefix + "*"))
        client.close()
