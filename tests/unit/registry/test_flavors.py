"""Every task and flavor loads complete, scores like the native model, and picks ONNX only
when it matches (the Booster otherwise, with the reason)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import LogisticRegression

from driftloop.core.errors import InvalidParameterError
from driftloop.registry import LightGBMFlavor, Registry, Signature, encode_frame


@pytest.fixture
def registry(tmp_path: Path) -> Any:
    reg = Registry.from_url(f"sqlite:///{tmp_path}/registry.db", str(tmp_path / "artifacts"))
    yield reg
    reg.close()


def data(n: int = 600, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "flag": rng.random(n) < 0.3,
            "city": rng.choice(["a", "b", "c", "d"], n),
        }
    )


def fit(model: Any, frame: pd.DataFrame, y: np.ndarray) -> tuple[Any, Signature]:
    sig = Signature.infer(frame)
    matrix = encode_frame(sig, frame).matrix
    categorical = [j for j, f in enumerate(sig.features) if f.kind == "category"]
    if isinstance(model, lgb.LGBMModel):
        model.fit(matrix, y, categorical_feature=categorical)
    else:
        model.fit(np.nan_to_num(matrix), y)
    return model, sig


def lgbm(cls: type, **params: Any) -> Any:
    return cls(n_estimators=30, verbose=-1, n_jobs=1, min_child_samples=5, **params)


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_lightgbm_of_every_task_with_categories_scores_like_the_booster(
    registry: Registry, task: str
) -> None:
    frame = data()
    city = frame["city"].map({"a": 0, "b": 1, "c": 2, "d": 3}).to_numpy()
    signal = frame["x"].to_numpy() + city
    if task == "regression":
        model, sig = fit(lgbm(lgb.LGBMRegressor), frame, signal)
    elif task == "binary":
        model, sig = fit(lgbm(lgb.LGBMClassifier), frame, (signal > 1.5).astype(int))
    else:
        model, sig = fit(lgbm(lgb.LGBMClassifier), frame, np.digitize(signal, [0.5, 2.0]))
    mv = registry.register("m", model, signature=sig)
    assert mv.signature.task == task
    matrix = encode_frame(mv.signature, frame).matrix
    expected = model.booster_.predict(matrix)
    for prefer_onnx in (True, False):
        loaded = registry.load("m", mv.version, prefer_onnx=prefer_onnx)
        np.testing.assert_allclose(loaded.predict_frame(frame).raw, expected, atol=1e-6)
        assert loaded.runtime in ("onnxruntime", "lightgbm"), loaded.runtime_reason
    contributions = registry.load("m", mv.version).contributions(matrix[:5])
    assert contributions.shape == (5, 4)
    if task != "multiclass":  # contributions sum to the raw score (log-odds for binary)
        raw = model.booster_.predict(matrix[:5], raw_score=True)
        np.testing.assert_allclose(contributions.sum(axis=1), raw, atol=1e-9)


def test_a_regressor_registered_through_the_api_does_not_crash(registry: Registry) -> None:
    frame = data()[["x"]]
    model = lgbm(lgb.LGBMRegressor).fit(frame, frame["x"] * 2)
    mv = registry.register("reg", model, signature=Signature.from_frame(frame))
    loaded = registry.load("reg", mv.version)
    assert loaded.task == "regression"
    np.testing.assert_allclose(loaded.predict_batch(frame), model.predict(frame), atol=1e-5)


def test_a_signature_saying_another_task_than_the_model_is_refused(registry: Registry) -> None:
    frame = data()[["x"]]
    model = lgbm(lgb.LGBMRegressor).fit(frame, frame["x"])
    sig = Signature.infer(frame, task="binary")
    with pytest.raises(InvalidParameterError, match="performs 'regression'"):
        registry.register("reg", model, signature=sig)


def test_sklearn_regressor_and_multiclass_classifier_round_trip(registry: Registry) -> None:
    frame = data()[["x"]]
    forest = RandomForestRegressor(n_estimators=5, random_state=0).fit(frame, frame["x"] ** 2)
    registry.register("rf", forest, signature=Signature.from_frame(frame))
    np.testing.assert_allclose(registry.load("rf", 1).predict_batch(frame), forest.predict(frame))
    y = np.digitize(frame["x"], [-0.5, 0.5])
    logistic = LogisticRegression().fit(frame, y)
    mv = registry.register("lr", logistic, signature=Signature.from_frame(frame))
    assert (mv.signature.task, mv.signature.classes) == ("multiclass", ("0", "1", "2"))
    loaded = registry.load("lr", 1)
    np.testing.assert_allclose(loaded.predict_frame(frame).raw, logistic.predict_proba(frame))
    with pytest.raises(InvalidParameterError, match="no per-feature contributions"):
        loaded.contributions(frame.to_numpy())


def test_a_booster_without_signature_is_served_on_numbers() -> None:
    frame = data()[["x"]]
    booster = lgb.train(
        {"objective": "binary", "verbose": -1}, lgb.Dataset(frame, frame["x"] > 0), 5
    )
    loaded = LightGBMFlavor().wrap(booster)
    assert (loaded.task, loaded.feature_names) == ("binary", ["x"])
    np.testing.assert_allclose(loaded.predict_batch(frame), booster.predict(frame), atol=1e-6)
