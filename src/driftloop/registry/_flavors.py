"""Model flavors: how a kind of model is saved (never as a pickle), loaded and scored.

A flavor turns a fitted model into named artifacts (bytes) and back into a
:class:`LoadedModel`, whose ``predict_batch`` returns positive-class scores.

* ``lightgbm``: the Booster's native text format; ONNX export via onnxmltools, checked
  against the Booster's scores with ONNX Runtime before it is kept.
* ``sklearn``: skops (no pickle); on load only scikit-learn, NumPy and SciPy types are
  trusted, anything else is refused.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from driftloop.core.errors import InvalidParameterError, SchemaMismatchError

__all__ = [
    "FLAVORS",
    "Flavor",
    "LightGBMFlavor",
    "LoadedModel",
    "SklearnFlavor",
    "flavor_for",
    "to_matrix",
]

ONNX_TOLERANCE = 1e-6
_TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.", "collections.OrderedDict", "builtins.")


def to_matrix(X: pd.DataFrame | NDArray[Any], feature_names: Sequence[str]) -> NDArray[np.float64]:
    """``X`` as a float64 matrix with columns in ``feature_names`` order."""
    if isinstance(X, pd.DataFrame):
        missing = [name for name in feature_names if name not in X.columns]
        if missing:
            raise SchemaMismatchError(
                f"Input lacks feature(s) {', '.join(missing)}; the model expects "
                f"{', '.join(feature_names)}."
            )
        return X.loc[:, list(feature_names)].to_numpy(dtype=np.float64, na_value=np.nan)
    matrix = np.asarray(X, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[1] != len(feature_names):
        raise SchemaMismatchError(
            f"Input has shape {matrix.shape}; the model expects (rows, {len(feature_names)})."
        )
    return matrix


@dataclass
class LoadedModel:
    """A model ready to score: what serving, gates and monitoring use."""

    name: str
    version: int
    flavor: str
    feature_names: list[str]
    model: Any
    booster: Any = None
    onnx_bytes: bytes | None = None
    _predict: Any = field(default=None, repr=False)

    def predict_batch(self, X: pd.DataFrame | NDArray[Any]) -> NDArray[np.float64]:
        """Positive-class scores, one per row of ``X`` (columns by name or in order)."""
        scores: NDArray[np.float64] = self._predict(to_matrix(X, self.feature_names))
        return scores


class Flavor(Protocol):
    """Saves a fitted model as named artifacts and loads it back."""

    name: str

    def accepts(self, model: Any) -> bool:
        """Whether this flavor can save ``model``."""
        ...

    def save(self, model: Any, feature_names: Sequence[str]) -> dict[str, bytes]:
        """Artifacts of ``model`` by role (``model``, optionally ``onnx``)."""
        ...

    def load(self, artifacts: Mapping[str, bytes], feature_names: Sequence[str]) -> LoadedModel:
        """The model back from its artifacts (name and version are filled in by the caller)."""
        ...


class LightGBMFlavor:
    """LightGBM Boosters and LGBMClassifier models, as native text (plus ONNX)."""

    name = "lightgbm"

    def __init__(self, *, num_threads: int = 1, export_onnx: bool = True) -> None:
        self.num_threads = num_threads
        self.export_onnx = export_onnx

    def accepts(self, model: Any) -> bool:
        import lightgbm as lgb

        return isinstance(model, lgb.Booster | lgb.LGBMModel)

    @staticmethod
    def _booster(model: Any) -> Any:
        import lightgbm as lgb

        return model.booster_ if isinstance(model, lgb.LGBMModel) else model

    def save(self, model: Any, feature_names: Sequence[str]) -> dict[str, bytes]:
        booster = self._booster(model)
        out = {"model": booster.model_to_string().encode("utf-8")}
        if self.export_onnx:
            out["onnx"] = _lightgbm_to_onnx(booster, len(feature_names))
        return out

    def load(self, artifacts: Mapping[str, bytes], feature_names: Sequence[str]) -> LoadedModel:
        import lightgbm as lgb

        booster = lgb.Booster(model_str=artifacts["model"].decode("utf-8"))
        threads = self.num_threads

        def predict(matrix: NDArray[np.float64]) -> NDArray[np.float64]:
            return np.asarray(booster.predict(matrix, num_threads=threads), dtype=np.float64)

        return LoadedModel(
            name="",
            version=0,
            flavor=self.name,
            feature_names=list(feature_names),
            model=booster,
            booster=booster,
            onnx_bytes=artifacts.get("onnx"),
            _predict=predict,
        )


def onnx_session(onnx_bytes: bytes, *, threads: int = 1) -> Any:
    """An ONNX Runtime session with explicit thread counts (one pool per process)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])


def onnx_scores(session: Any, matrix: NDArray[np.float64]) -> NDArray[np.float64]:
    """Positive-class scores of a binary classifier exported with ``zipmap=False``."""
    name = session.get_inputs()[0].name
    (probabilities,) = session.run(["probabilities"], {name: matrix.astype(np.float32)})
    return np.asarray(probabilities[:, 1], dtype=np.float64)


def _lightgbm_to_onnx(booster: Any, n_features: int) -> bytes:
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    proto = onnxmltools.convert_lightgbm(
        booster,
        initial_types=[("input", FloatTensorType([None, n_features]))],
        zipmap=False,
        target_opset=15,
    )
    data: bytes = proto.SerializeToString()
    # Check on rows inside the model's own split thresholds (a grid over the used range).
    rng = np.random.default_rng(0)
    probe = rng.normal(size=(256, n_features)).astype(np.float32).astype(np.float64)
    expected = np.asarray(booster.predict(probe, num_threads=1), dtype=np.float64)
    got = onnx_scores(onnx_session(data), probe)
    worst = float(np.abs(expected - got).max())
    if worst > ONNX_TOLERANCE:
        raise InvalidParameterError(
            f"ONNX export of the LightGBM model differs from it by {worst:.2e} "
            f"(tolerance {ONNX_TOLERANCE:.0e}); not exporting."
        )
    return data


class SklearnFlavor:
    """Any scikit-learn estimator or pipeline with ``predict_proba``, saved with skops."""

    name = "sklearn"

    def accepts(self, model: Any) -> bool:
        return hasattr(model, "predict_proba") and type(model).__module__.startswith("sklearn.")

    def save(self, model: Any, feature_names: Sequence[str]) -> dict[str, bytes]:
        import skops.io as sio

        return {"model": sio.dumps(model)}

    def load(self, artifacts: Mapping[str, bytes], feature_names: Sequence[str]) -> LoadedModel:
        import skops.io as sio

        data = artifacts["model"]
        untrusted = sio.get_untrusted_types(data=data)
        refused = [t for t in untrusted if not t.startswith(_TRUSTED_PREFIXES)]
        if refused:
            raise InvalidParameterError(
                f"The scikit-learn artifact contains types outside scikit-learn/NumPy/SciPy: "
                f"{', '.join(refused)}; refusing to load it."
            )
        model = sio.loads(data, trusted=untrusted)

        def predict(matrix: NDArray[np.float64]) -> NDArray[np.float64]:
            named = hasattr(model, "feature_names_in_")
            rows = pd.DataFrame(matrix, columns=list(feature_names)) if named else matrix
            return np.asarray(model.predict_proba(rows)[:, 1], dtype=np.float64)

        return LoadedModel(
            name="",
            version=0,
            flavor=self.name,
            feature_names=list(feature_names),
            model=model,
            _predict=predict,
        )


FLAVORS: dict[str, Flavor] = {"lightgbm": LightGBMFlavor(), "sklearn": SklearnFlavor()}


def flavor_for(model: Any) -> Flavor:
    """The flavor that can save ``model``."""
    for flavor in FLAVORS.values():
        if flavor.accepts(model):
            return flavor
    raise InvalidParameterError(
        f"No flavor can save a {type(model).__module__}.{type(model).__qualname__}; "
        f"supported: {', '.join(FLAVORS)} (LightGBM Booster/LGBMClassifier, scikit-learn "
        "estimators with predict_proba)."
    )
