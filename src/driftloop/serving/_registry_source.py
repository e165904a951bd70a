"""Models from driftloop's registry: aliases resolved and versions loaded by name."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from driftloop.core.errors import InvalidParameterError
from driftloop.registry import LoadedModel as RegistryModel
from driftloop.registry import Registry
from driftloop.serving._model import LightGBMModel, LoadedModel

__all__ = ["FlavorModel", "RegistryModelSource"]


class FlavorModel:
    """Any registry flavor scored through its own ``predict_batch`` (no contributions)."""

    def __init__(self, name: str, version: str, loaded: RegistryModel) -> None:
        self.name = name
        self.version = version
        self.feature_names: Sequence[str] = tuple(loaded.feature_names)
        self.runtime = loaded.flavor
        self.runtime_reason = f"the {loaded.flavor} flavor's own predict"
        self._loaded = loaded

    def predict_batch(self, rows: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return np.asarray(self._loaded.predict_batch(rows), dtype=np.float64)

    def contributions(self, rows: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        raise InvalidParameterError(
            f"Model '{self.name}' ({self.runtime}) has no per-feature contributions; "
            "explanations need a LightGBM model."
        )


class RegistryModelSource:
    """A :class:`~driftloop.serving.ModelSource` over a :class:`~driftloop.registry.Registry`.

    LightGBM versions run on ONNX Runtime (the registry's exported ONNX) when it matches
    the Booster to 1e-6, else on the Booster; other flavors on their own predict.
    """

    def __init__(self, registry: Registry, *, prefer_onnx: bool = True) -> None:
        self.registry = registry
        self.prefer_onnx = prefer_onnx

    def resolve(self, name: str, alias: str) -> str:
        return str(self.registry.alias_version(name, alias))  # one indexed query per poll

    def load(self, name: str, version: str) -> LoadedModel:
        try:
            number = int(version)
        except ValueError:
            raise InvalidParameterError(
                f"Registry versions are integers; got {version!r} for model '{name}'."
            ) from None
        loaded: Any = self.registry.load(name, number)
        if loaded.booster is not None:
            model = LightGBMModel(
                name,
                version,
                loaded.booster,
                onnx_model=loaded.onnx_bytes,
                prefer_onnx=self.prefer_onnx,
            )
            model.feature_names = tuple(loaded.feature_names)
            return model
        return FlavorModel(name, version, loaded)
