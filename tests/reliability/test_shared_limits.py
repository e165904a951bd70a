"""Quotas and rate limits hold across the workers of ``driftloop serve``: two worker
processes grant a tenant's daily quota once between them (counted in the shared
database), and with ``serving.rate_limit_store`` a key's token bucket once (in Redis)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx2
import pytest

from driftloop.registry import KeyStore
from live_server import LiveServer, live_server
from services import require_redis
from serving_helpers import row

pytestmark = pytest.mark.reliability

QUOTA = 30  # the tenant's requests per day
BURST = 10  # the limited key's bucket; it refills at 1 request per 1,000 s


@dataclass
class World:
    server: LiveServer
    predict: str  # a key of tenant default (QUOTA requests a day)
    limited: str  # a key of tenant b: BURST requests, then 1 per 1,000 s


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    redis_url = require_redis()
    root = tmp_path_factory.mktemp("shared-limits")
    (root / ".driftloop").mkdir()
    keys = KeyStore.at("sqlite:///.driftloop/traffic.db", root=root)  # serve --models' store
    try:
        keys.set_quota("default", QUOTA, who="test")
        _, predict = keys.create("default", ["predict"], who="test")
        _, limited = keys.create("b", ["read"], who="test", rate_per_s=0.001, burst=BURST)
    finally:
        keys.close()
    env = {"DRIFTLOOP_SERVING__AUTH": "keys", "DRIFTLOOP_SERVING__RATE_LIMIT_STORE": redis_url}
    with live_server(root, workers=2, env=env) as server:
        yield World(server, predict, limited)


def _statuses(n: int, call: str, url: str, secret: str, **kw: object) -> list[int]:
    """``n`` requests, each on a connection of its own (either worker may take it)."""
    headers = {"Authorization": f"Bearer {secret}"}
    return [
        getattr(httpx2, call)(url, headers=headers, timeout=30, **kw).status_code for _ in range(n)
    ]


def test_two_workers_grant_a_tenants_daily_quota_once_between_them(world: World) -> None:
    url = f"{world.server.base}/v1/models/fraud/predict"
    codes = _statuses(2 * QUOTA, "post", url, world.predict, json={"instances": [row(0)]})
    assert codes.count(200) == QUOTA, codes
    assert codes.count(429) == QUOTA


def test_two_workers_take_from_one_bucket_per_key_with_a_redis_store(world: World) -> None:
    codes = _statuses(3 * BURST, "get", f"{world.server.base}/v1/models", world.limited)
    assert codes.count(200) == BURST, codes
    assert codes.count(429) == 2 * BURST
