from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from driftloop.audit import SqliteAuditLog
from driftloop.core.config import DecisionPolicy, MissingPolicy, ServingConfig
from driftloop.serving import InMemoryFeatureSource, InMemoryModelSource, ServedModel, create_app
from serving_helpers import train


@pytest.fixture(scope="session")
def boosters() -> dict[str, Any]:
    return {"1": train(1), "2": train(2, rounds=10)}


@pytest.fixture
def source(boosters: dict[str, Any]) -> InMemoryModelSource:
    src = InMemoryModelSource()
    src.add("fraud", "1", boosters["1"], aliases=["champion"])
    src.add("fraud", "2", boosters["2"], aliases=["challenger"])
    return src


@pytest.fixture
def store() -> InMemoryFeatureSource:
    return InMemoryFeatureSource("card_id")


@pytest.fixture
def audit(tmp_path: Path) -> Iterator[SqliteAuditLog]:
    log = SqliteAuditLog(tmp_path / "audit.db", synchronous="normal")
    yield log
    log.close()


@pytest.fixture
def make_client(
    source: InMemoryModelSource, store: InMemoryFeatureSource, audit: SqliteAuditLog
) -> Iterator[Any]:
    clients: list[TestClient] = []

    def make(decision: Any = None, missing: Any = None, **settings: Any) -> TestClient:
        config = ServingConfig.model_validate(settings)
        policies = {
            "decision": DecisionPolicy.model_validate(decision) if decision else None,
            "missing": MissingPolicy.model_validate(missing or {}),
        }
        app = create_app(
            [
                ServedModel("fraud", "champion", entity_keys=("card_id",), **policies),
                ServedModel("fraud", "challenger", as_name="fraud-challenger"),
            ],
            source,
            settings=config,
            audit=audit,
            features=store,
            refresh_s=0,
        )
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)
