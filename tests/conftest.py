from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from services import require_postgres, require_redis


@pytest.fixture
def redis_url() -> str:
    return require_redis()


@pytest.fixture
def postgres_url() -> str:
    return require_postgres()
