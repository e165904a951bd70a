"""Reaching the real services tests may use (PostgreSQL and Redis on 127.0.0.1).

A test that needs a service skips with the reason when the service is unreachable, and
fails instead when ``DRIFTLOOP_REQUIRE_SERVICES=1`` (as in CI), so that a missing service
can never pass unnoticed there.
"""

from __future__ import annotations

import os
import socket

import pytest

POSTGRES_URL = os.environ.get(
    "DRIFTLOOP_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("DRIFTLOOP_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def services_required(environ: dict[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return env.get("DRIFTLOOP_REQUIRE_SERVICES", "") == "1"


def unavailable(reason: str, *, required: bool | None = None) -> None:
    """Skip the test, or fail it when services are required."""
    if services_required() if required is None else required:
        pytest.fail(f"{reason} (DRIFTLOOP_REQUIRE_SERVICES=1, so this is a failure)")
    pytest.skip(reason)


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require_redis() -> str:
    """The URL of a reachable, empty Redis test database."""
    try:
        import redis
    except ImportError:
        unavailable("the redis client is not installed (pip install 'driftloop[redis]')")
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        unavailable(f"Redis at {REDIS_URL} is unreachable: {exc}")
    client.flushdb()
    client.close()
    return REDIS_URL


def require_postgres() -> str:
    """The SQLAlchemy URL of a reachable PostgreSQL test database."""
    try:
        import psycopg
    except ImportError:
        unavailable("psycopg is not installed (pip install 'driftloop[postgres]')")
    dsn = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
    try:
        psycopg.connect(dsn, connect_timeout=2).close()
    except psycopg.Error as exc:
        unavailable(f"PostgreSQL at {dsn} is unreachable: {exc}")
    return POSTGRES_URL


def require_ray() -> None:
    """Ray is installed (the ``ray`` extra), so the test can start a local cluster."""
    try:
        import ray  # noqa: F401
    except ImportError:
        unavailable("ray is not installed (pip install 'driftloop[ray]')")
