from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from collections.abc import Iterator

from own_postgres import OwnPostgres, own_postgres
from services import require_postgres, require_redis


@pytest.fixture
def redis_url() -> str:
    return require_redis()


@pytest.fixture
def postgres_url() -> str:
    return require_postgres()


@pytest.fixture
def own_pg() -> Iterator[OwnPostgres]:
    """A private PostgreSQL cluster that the test may stop and start (never 5432's)."""
    with own_postgres() as cluster:
        yield cluster
