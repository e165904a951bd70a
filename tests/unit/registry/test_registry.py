from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from driftloop.core.config import load_settings
from driftloop.core.errors import (
    AliasNotFoundError,
    ArtifactIntegrityError,
    ConflictError,
    InvalidParameterError,
    ModelNotFoundError,
)
from driftloop.registry import Registry, Signature
from driftloop.registry._db import writing
from driftloop.stats import Profile
from registry_helpers import toy_frame, toy_lightgbm


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    reg = Registry.from_url(f"sqlite:///{tmp_path}/registry.db", str(tmp_path / "artifacts"))
    yield reg
    reg.close()


def test_versions_are_numbered_per_model_from_one(registry: Registry) -> None:
    model, X = toy_lightgbm()
    sig = Signature.from_frame(X)
    assert [registry.register("a", model, signature=sig).version for _ in range(3)] == [1, 2, 3]
    assert registry.register("b", model, signature=sig).version == 1
    assert registry.latest_version("a") == 3


def test_a_version_keeps_everything_recorded_with_it(registry: Registry) -> None:
    model, X = toy_lightgbm()
    scores = model.predict_proba(X)[:, 1]
    profile = Profile.from_frame(X, predictions=scores)
    lineage = {"training_set_hash": "abc", "time_range": ["2025-01-01", "2025-02-01"]}
    gate_report = {"passed": True, "checks": [{"name": "auc", "passed": True, "value": 0.9}]}
    registry.register(
        "fraud",
        model,
        signature=Signature.from_frame(X, {"amount": ("txn_stats", 2)}),
        params={"n_estimators": 20},
        metrics={"roc_auc": 0.91, "segments": {"core": {"roc_auc": 0.9}}},
        tags={"team": "risk"},
        lineage=lineage,
        gate_report=gate_report,
        profile=profile,
    )
    mv = registry.get("fraud", 1)
    assert mv.signature.features[0].view == "txn_stats"
    assert mv.signature.features[0].view_version == 2
    assert mv.params == {"n_estimators": 20}
    assert mv.lineage == lineage
    assert mv.gate_report == gate_report
    assert registry.profile("fraud", 1) == profile
    card = registry.card("fraud", 1)
    assert "# Model card: fraud:1" in card
    assert "| core | 0.9 |" in card
    assert "Overall: **passed**" in card


def test_loaded_lightgbm_model_scores_like_the_original_and_exports_onnx(
    registry: Registry,
) -> None:
    model, X = toy_lightgbm()
    mv = registry.register("fraud", model, signature=Signature.from_frame(X))
    assert mv.signature.task == "binary"  # filled in from the model
    assert "onnx" in mv.artifacts
    native = registry.load("fraud", 1, prefer_onnx=False)
    assert native.runtime == "lightgbm"
    expected = model.predict_proba(X)[:, 1]
    np.testing.assert_allclose(native.predict_batch(X), expected, rtol=0, atol=1e-12)
    # Columns are taken by name, not position.
    np.testing.assert_allclose(native.predict_batch(X[["hour", "amount"]]), expected, atol=1e-12)
    assert native.feature_names == ["amount", "hour"]
    assert native.contributions(X.to_numpy()).shape == (len(X), 3)
    loaded = registry.load("fraud", 1)
    assert loaded.runtime == "onnxruntime", loaded.runtime_reason
    np.testing.assert_allclose(loaded.predict_batch(X), expected, atol=1e-6)


def test_sklearn_pipeline_round_trips_through_skops(registry: Registry) -> None:
    X, y = toy_frame()
    pipe = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    registry.register("lr", pipe, signature=Signature.from_frame(X))
    loaded = registry.load("lr", 1)
    assert loaded.flavor == "sklearn"
    np.testing.assert_allclose(loaded.predict_batch(X), pipe.predict_proba(X)[:, 1])


def test_tampered_artifact_is_refused_on_load_and_verify(
    registry: Registry, tmp_path: Path
) -> None:
    model, X = toy_lightgbm()
    mv = registry.register("fraud", model, signature=Signature.from_frame(X))
    digest = mv.artifacts["model"]
    path = tmp_path / "artifacts" / "sha256" / digest[:2] / digest
    path.write_bytes(path.read_bytes().replace(b"tree", b"TREE", 1))
    with pytest.raises(ArtifactIntegrityError, match=digest):
        registry.load("fraud", 1)
    with pytest.raises(ArtifactIntegrityError):
        registry.verify("fraud", 1)


def test_alias_history_answers_which_version_held_it_at_any_time(registry: Registry) -> None:
    model, X = toy_lightgbm()
    sig = Signature.from_frame(X)
    for _ in range(3):
        registry.register("fraud", model, signature=sig)
    before = datetime.now(UTC)
    first = registry.set_alias("fraud", "champion", 1, who="ann", why="first")
    second = registry.set_alias("fraud", "champion", 2, who="bob", why="better auc")
    assert registry.alias_at("fraud", "champion", first.at).version == 1
    assert registry.alias_at("fraud", "champion", second.at).version == 2
    assert registry.resolve("fraud", "champion").version == 2
    assert registry.alias_version("fraud", "champion") == 2
    with pytest.raises(AliasNotFoundError, match="at "):
        registry.alias_at("fraud", "champion", before - timedelta(seconds=1))
    history = registry.history("fraud", "champion")
    assert [(e.version, e.previous_version, e.who, e.why) for e in history] == [
        (1, None, "ann", "first"),
        (2, 1, "bob", "better auc"),
    ]


def test_rollback_walks_back_through_previous_champions(registry: Registry) -> None:
    model, X = toy_lightgbm()
    sig = Signature.from_frame(X)
    for v in (1, 2, 3):
        registry.register("fraud", model, signature=sig)
        registry.set_alias("fraud", "champion", v, who="ci", why=f"v{v}")
    assert registry.rollback("fraud", who="oncall", why="bad").version == 2
    assert registry.rollback("fraud", who="oncall", why="still bad").version == 1
    with pytest.raises(ConflictError, match="no previous holder"):
        registry.rollback("fraud", who="oncall")
    assert len(registry.history("fraud", "champion")) == 5


def test_unknown_alias_model_and_version_name_what_is_missing(registry: Registry) -> None:
    model, X = toy_lightgbm()
    registry.register("fraud", model, signature=Signature.from_frame(X))
    registry.set_alias("fraud", "champion", 1, who="ci")
    with pytest.raises(AliasNotFoundError, match=r"no alias 'canary'.*champion"):
        registry.resolve("fraud", "canary")
    with pytest.raises(ModelNotFoundError, match=r"no version 7\. Known versions: 1"):
        registry.get("fraud", 7)
    with pytest.raises(ModelNotFoundError, match="No model named 'nope'"):
        registry.resolve("nope", "champion")
    with pytest.raises(InvalidParameterError, match="No flavor can save"):
        registry.register("x", object(), signature=Signature.from_frame(X))


def test_registry_survives_reopening_and_does_not_remigrate(tmp_path: Path) -> None:
    settings = load_settings(root=tmp_path, environ={})
    reg = Registry.from_settings(settings)
    model, X = toy_lightgbm()
    reg.register("fraud", model, signature=Signature.from_frame(X))
    reg.close()
    again = Registry.from_settings(settings)
    assert again.get("fraud", 1).flavor == "lightgbm"
    with again.engine.connect() as conn:
        revision = conn.execute(sa.text("SELECT version_num FROM driftloop_registry_version"))
        assert revision.scalar() == "r0005_shared_usage"
    again.close()


def test_readers_are_not_queued_behind_a_sqlite_writer(registry: Registry) -> None:
    model, X = toy_lightgbm()
    registry.register("fraud", model, signature=Signature.from_frame(X))
    registry.set_alias("fraud", "champion", 1, who="ci")
    with writing(registry.engine) as conn:  # a writer holds the database's write lock
        conn.execute(sa.text("UPDATE driftloop_models SET latest_version = latest_version"))
        assert registry.alias_version("fraud", "champion") == 1  # a serving poll still answers
        assert registry.resolve("fraud", "champion").version == 1
