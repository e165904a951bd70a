"""Model flavors: how a kind of model is saved (never as a pickle) and loaded complete.

A flavor turns a fitted model into named artifacts (bytes) and back into a
:class:`~driftloop.registry.LoadedModel` with its runtime chosen, for each task
(binary, multiclass, regression):

* ``lightgbm``: the Booster's native text format, plus ONNX when the export matches the
  Booster (checked in :mod:`~driftloop.registry._onnx`); scored by ONNX Runtime when it
  matches, else by the Booster; TreeSHAP contributions.
* ``sklearn``: skops (no pickle); on load only scikit-learn, NumPy and SciPy types are
  trusted, anything else is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Protocol

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from driftloop.core.errors import InvalidParameterError
from driftloop.registry._model import LoadedModel
from driftloop.registry._onnx import Runtime, export_lightgbm_onnx, lightgbm_runtime
from driftloop.registry._recommender_flavor import RecommenderFlavor
from driftloop.registry._signature import FeatureSpec, Signature

__all__ = ["FLAVORS", "Flavor", "LightGBMFlavor", "SklearnFlavor", "flavor_for", "with_task"]

_TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.", "collections.OrderedDict", "builtins.")
_MULTICLASS = ("multiclass", "softmax", "multiclassova", "multiclass_ova", "ova", "ovr")
_BINARY = ("binary", "cross_entropy", "xentropy", "cross_entropy_lambda", "xentlambda")


class Flavor(Protocol):
    """Saves a fitted model as named artifacts and loads it back, complete."""

    name: str

    def accepts(self, model: Any) -> bool:
        """Whether this flavor can save ``model``."""
        ...

    def task_of(self, model: Any) -> tuple[str, tuple[str, ...]]:
        """The task a fitted model performs, and its class names (none for regression)."""
        ...

    def save(self, model: Any, signature: Signature) -> dict[str, bytes]:
        """Artifacts of ``model`` by role (``model``, optionally ``onnx``)."""
        ...

    def load(
        self, artifacts: Mapping[str, bytes], signature: Signature, *, prefer_onnx: bool = True
    ) -> LoadedModel:
        """The model back from its artifacts (name and version are filled in by the caller)."""
        ...


def _categorical(signature: Signature) -> dict[int, int]:
    """Column -> number of categories, for the category features."""
    return {j: len(f.categories) for j, f in enumerate(signature.features) if f.kind == "category"}


class LightGBMFlavor:
    """LightGBM Boosters and LGBMClassifier/LGBMRegressor models, as native text (plus
    ONNX)."""

    name = "lightgbm"

    def accepts(self, model: Any) -> bool:
        import lightgbm as lgb

        return isinstance(model, lgb.Booster | lgb.LGBMModel)

    @staticmethod
    def booster(model: Any) -> Any:
        import lightgbm as lgb

        return model.booster_ if isinstance(model, lgb.LGBMModel) else model

    def task_of(self, model: Any) -> tuple[str, tuple[str, ...]]:
        booster = self.booster(model)
        objective = str(booster.params.get("objective", "")).split(" ")[0]
        if not objective:
            objective = str(booster.dump_model().get("objective", "")).split(" ")[0]
        if objective in _MULTICLASS or booster.num_model_per_iteration() > 1:
            k = booster.num_model_per_iteration()
            return "multiclass", _class_names(getattr(model, "classes_", range(k)))
        if objective in _BINARY:
            return "binary", _class_names(getattr(model, "classes_", (0, 1)))
        return "regression", ()

    def save(self, model: Any, signature: Signature) -> dict[str, bytes]:
        booster = self.booster(model)
        out = {"model": booster.model_to_string().encode("utf-8")}
        onnx, _ = export_lightgbm_onnx(booster, signature.task, _categorical(signature))
        if onnx is not None:
            out["onnx"] = onnx
        return out

    def load(
        self, artifacts: Mapping[str, bytes], signature: Signature, *, prefer_onnx: bool = True
    ) -> LoadedModel:
        import lightgbm as lgb

        booster = lgb.Booster(model_str=artifacts["model"].decode("utf-8"))
        return self.wrap(
            booster, signature, onnx_model=artifacts.get("onnx"), prefer_onnx=prefer_onnx
        )

    def wrap(
        self,
        model: Any,
        signature: Signature | None = None,
        *,
        onnx_model: bytes | None = None,
        prefer_onnx: bool = True,
        name: str = "",
        version: str = "",
    ) -> LoadedModel:
        """A fitted Booster (or LightGBM estimator) as a loaded model; without a
        ``signature``, its features are numbers named as in the Booster."""
        booster = self.booster(model)
        if signature is None:
            task, classes = self.task_of(model)
            names = booster.feature_name()
            signature = Signature(tuple(FeatureSpec(n) for n in names), task, classes=classes)
        elif not signature.task:
            task, classes = self.task_of(model)
            signature = replace(signature, task=task, classes=signature.classes or classes)
        if booster.num_feature() != len(signature.features):
            raise InvalidParameterError(
                f"The LightGBM model takes {booster.num_feature()} features; its signature "
                f"lists {len(signature.features)} ({', '.join(signature.names)})."
            )
        runtime = lightgbm_runtime(
            booster,
            signature.task,
            onnx_model=onnx_model,
            categorical=_categorical(signature),
            prefer_onnx=prefer_onnx,
        )
        k = booster.num_model_per_iteration()
        width = booster.num_feature() + 1

        def contributions(matrix: NDArray[np.float64], chosen: NDArray[np.intp] | None) -> Any:
            raw = np.asarray(booster.predict(matrix, pred_contrib=True, num_threads=1))
            if k == 1 or chosen is None:
                return raw[:, :width]
            blocks = raw.reshape(len(matrix), k, width)
            return blocks[np.arange(len(matrix)), chosen]

        return LoadedModel(
            flavor=self.name,
            signature=signature,
            runtime=runtime,
            native=booster,
            contributions_fn=contributions,
            name=name,
            version=version,
        )


def _class_names(values: Any) -> tuple[str, ...]:
    from driftloop.stats import category_text

    return tuple(category_text(v) for v in values)


class SklearnFlavor:
    """Any scikit-learn estimator or pipeline (classifiers with ``predict_proba``,
    regressors with ``predict``), saved with skops."""

    name = "sklearn"

    def accepts(self, model: Any) -> bool:
        return type(model).__module__.startswith("sklearn.") and (
            hasattr(model, "predict_proba") or hasattr(model, "predict")
        )

    def task_of(self, model: Any) -> tuple[str, tuple[str, ...]]:
        from sklearn.base import is_classifier

        if is_classifier(model):
            classes = _class_names(getattr(model, "classes_", ()))
            return ("binary" if len(classes) <= 2 else "multiclass"), classes
        return "regression", ()

    def save(self, model: Any, signature: Signature) -> dict[str, bytes]:
        import skops.io as sio

        return {"model": sio.dumps(model)}

    def load(
        self, artifacts: Mapping[str, bytes], signature: Signature, *, prefer_onnx: bool = True
    ) -> LoadedModel:
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
        return self.wrap(model, signature)

    def wrap(self, model: Any, signature: Signature) -> LoadedModel:
        if not signature.task:
            task, classes = self.task_of(model)
            signature = replace(signature, task=task, classes=signature.classes or classes)
        names, task = list(signature.names), signature.task
        named = hasattr(model, "feature_names_in_")

        def predict(matrix: NDArray[np.float64]) -> NDArray[np.float64]:
            rows = pd.DataFrame(matrix, columns=names) if named else matrix
            if task == "regression":
                return np.asarray(model.predict(rows), dtype=np.float64)
            proba = np.asarray(model.predict_proba(rows), dtype=np.float64)
            return proba[:, 1] if task == "binary" else proba

        runtime = Runtime("sklearn", predict, None, "the scikit-learn estimator's own predict")
        return LoadedModel(flavor=self.name, signature=signature, runtime=runtime, native=model)


FLAVORS: dict[str, Flavor] = {
    "lightgbm": LightGBMFlavor(),
    "sklearn": SklearnFlavor(),
    "recommender": RecommenderFlavor(),  # built and loaded by driftloop.recsys
}


def flavor_for(model: Any) -> Flavor:
    """The flavor that can save ``model``."""
    for flavor in FLAVORS.values():
        if flavor.accepts(model):
            return flavor
    raise InvalidParameterError(
        f"No flavor can save a {type(model).__module__}.{type(model).__qualname__}; "
        f"supported: {', '.join(FLAVORS)} (LightGBM Booster/LGBMClassifier/LGBMRegressor, "
        "scikit-learn estimators)."
    )


def with_task(flavor: Flavor, model: Any, signature: Signature) -> Signature:
    """``signature`` with the model's task and classes filled in, or refused when it says
    another task than the model performs."""
    task, classes = flavor.task_of(model)
    if not signature.task:
        return replace(signature, task=task, classes=signature.classes or classes)
    if signature.task != task:
        raise InvalidParameterError(
            f"The signature says task {signature.task!r} but the {flavor.name} model performs "
            f"{task!r}; build the signature with task={task!r}."
        )
    return signature if signature.classes else replace(signature, classes=classes)
