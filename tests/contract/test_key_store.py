"""The key store keeps only hashes, refuses revoked and expired keys, and records who
did what, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from driftloop.core.errors import ConflictError, InvalidParameterError, NotFoundError
from driftloop.registry import KeyStore, Registry, Signature, artifact_store_from_url
from driftloop.registry._db import make_engine
from legacy_schemas import postgres_schema
from registry_helpers import toy_lightgbm


@pytest.fixture(params=["sqlite", "postgres"])
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Registry]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'registry.db'}"
        reg = Registry(make_engine(url), artifact_store_from_url(str(tmp_path / "a")))
        yield reg
        reg.close()
        return
    with postgres_schema(request.getfixturevalue("postgres_url"), "keys") as (_, url):
        reg = Registry(make_engine(url), artifact_store_from_url(str(tmp_path / "a")))
        yield reg
        reg.close()


def test_a_key_is_stored_only_as_a_hash_and_shown_once(registry: Registry) -> None:
    store = registry.keys
    key, secret = store.create("acme", ["predict", "feedback"], name="ci", who="ana")
    assert secret.startswith("dlk_")
    with registry.engine.connect() as conn:
        stored = " ".join(
            str(v) for row in conn.execute(sa.text("SELECT * FROM driftloop_api_keys")) for v in row
        )
    assert secret not in stored
    assert store.verify(secret) == key
    assert store.verify("dlk_guess") is None
    assert [k.id for k in store.list("acme")] == [key.id]
    assert store.list("other") == []
    assert key.scopes == ("predict", "feedback")


def test_revoked_and_expired_keys_do_not_verify_and_leave_the_snapshot(
    registry: Registry,
) -> None:
    store = registry.keys
    soon = datetime.now(UTC) + timedelta(hours=1)
    expiring, expiring_secret = store.create("acme", ["read"], who="ana", expires_at=soon)
    revoked, revoked_secret = store.create("acme", ["read"], who="ana")
    store.revoke(revoked.id, who="bo")
    assert store.verify(revoked_secret) is None
    assert store.verify(expiring_secret) == expiring
    assert store.verify(expiring_secret, now=soon + timedelta(seconds=1)) is None
    snapshot = store.snapshot()
    assert [k.id for k in snapshot.keys.values()] == [expiring.id]
    assert store.get(revoked.id).revoked_at is not None
    first = store.get(revoked.id).revoked_at
    assert store.revoke(revoked.id, who="bo").revoked_at == first  # revoking twice keeps it
    with pytest.raises(NotFoundError):
        store.revoke("k-none", who="bo")


def test_every_change_to_keys_and_quotas_is_recorded_with_who_made_it(registry: Registry) -> None:
    store = registry.keys
    key, _ = store.create("acme", ["admin"], who="ana", rate_per_s=5.0)
    assert (key.rate_per_s, key.burst) == (5.0, 5)
    store.revoke(key.id, who="bo")
    store.set_quota("acme", 1_000, who="cy")
    events = [(e["action"], e["key_id"], e["who"]) for e in store.events("acme")]
    assert events == [("create-key", key.id, "ana"), ("revoke-key", key.id, "bo"),
                      ("set-quota", None, "cy")]  # fmt: skip
    assert store.events("acme")[-1]["detail"] == {
        "requests_per_day": 1_000,
        "max_models": None,
        "max_audit_rows": None,
    }
    assert store.snapshot().quotas == {"acme": 1_000}


def test_bad_scopes_rates_and_tenant_names_are_refused(registry: Registry) -> None:
    store = registry.keys
    with pytest.raises(InvalidParameterError, match="scopes"):
        store.create("acme", ["write"], who="ana")
    with pytest.raises(InvalidParameterError, match="rate"):
        store.create("acme", ["read"], who="ana", rate_per_s=0)
    with pytest.raises(InvalidParameterError, match="Tenant"):
        store.create("a b", ["read"], who="ana")
    assert store.list() == []


def test_a_model_belongs_to_the_tenant_that_registered_it(registry: Registry) -> None:
    model, X = toy_lightgbm()
    registry.register("loans", model, signature=Signature.from_frame(X), tenant="acme")
    registry.register("fraud", model, signature=Signature.from_frame(X))
    assert registry.keys.snapshot().model_tenants == {"loans": "acme", "fraud": "default"}
    assert [m["name"] for m in registry.list_models(tenant="acme")] == ["loans"]
    with pytest.raises(ConflictError, match="another tenant"):
        registry.register("loans", model, signature=Signature.from_frame(X), tenant="globex")
    assert registry.latest_version("loans") == 1


def test_a_tenant_past_its_model_quota_cannot_register_a_new_model(registry: Registry) -> None:
    model, X = toy_lightgbm()
    registry.keys.set_quota("acme", None, who="ana", max_models=1)
    registry.register("loans", model, signature=Signature.from_frame(X), tenant="acme")
    with pytest.raises(ConflictError, match="at most 1 models"):
        registry.register("fraud", model, signature=Signature.from_frame(X), tenant="acme")
    assert [m["name"] for m in registry.list_models()] == ["loans"]  # nothing left behind
    assert registry.register("loans", model, signature=Signature.from_frame(X), tenant="acme")
    registry.register("fraud", model, signature=Signature.from_frame(X), tenant="globex")


def test_a_store_of_its_own_is_migrated(tmp_path: Path) -> None:
    store = KeyStore.at(f"sqlite:///{tmp_path / 'keys.db'}")
    try:
        _, secret = store.create("default", ["predict"], who="ana")
        assert store.verify(secret) is not None
    finally:
        store.close()
