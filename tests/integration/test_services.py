"""The services CI promises are there; in CI a missing one fails here, loudly."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def test_redis_answers(redis_url: str) -> None:
    import redis

    assert redis.Redis.from_url(redis_url).ping()


def test_postgres_answers(postgres_url: str) -> None:
    import psycopg

    dsn = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn:
        assert conn.execute("select 1").fetchone() == (1,)
