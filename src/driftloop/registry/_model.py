"""The one loaded-model abstraction: built complete by each flavor, used by gates, batch
scoring, serving and shadow alike.

A :class:`LoadedModel` knows its signature (inputs, task, classes), scores a matrix in its
signature's column order with the runtime its flavor chose, turns frames into that matrix
by the signature (:mod:`~driftloop.registry._encoding`), and gives per-feature
contributions when its flavor has them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from driftloop.core.errors import InvalidParameterError, SchemaMismatchError
from driftloop.registry._encoding import EncodedFrame, encode_frame
from driftloop.registry._onnx import Runtime
from driftloop.registry._signature import Signature
from driftloop.stats import Outputs

__all__ = ["LoadedModel"]

Matrix = NDArray[np.float64]


class LoadedModel:
    """A model version ready to score (see the module docs).

    ``contributions_fn(matrix)`` returns n x (features + 1) contributions (the last column
    the bias) toward the score: the positive class, the value, or for multiclass each
    row's most probable class.
    """

    def __init__(
        self,
        *,
        flavor: str,
        signature: Signature,
        runtime: Runtime,
        native: Any = None,
        contributions_fn: Callable[[Matrix, NDArray[np.intp] | None], Matrix] | None = None,
        name: str = "",
        version: str = "",
    ) -> None:
        self.name = name
        self.version = version
        self.flavor = flavor
        self.signature = signature
        self.native = native
        self._runtime = runtime
        self._contributions = contributions_fn
        self.feature_names: list[str] = signature.names
        self.classes = signature.classes

    @property
    def task(self) -> str:
        return self.signature.task

    @property
    def runtime(self) -> str:
        """What scores: ``onnxruntime``, ``lightgbm``, ``sklearn``, ..."""
        return self._runtime.name

    @property
    def runtime_reason(self) -> str:
        return self._runtime.reason

    @property
    def has_contributions(self) -> bool:
        return self._contributions is not None

    def predict(self, matrix: Matrix) -> NDArray[np.float64]:
        """Raw outputs of ``matrix`` (n x features): one column, or one per class."""
        return self._runtime.predict(matrix)

    def outputs(self, matrix: Matrix) -> Outputs:
        return Outputs(self.task, self.predict(matrix), self.classes)

    def encode(self, frame: pd.DataFrame) -> EncodedFrame:
        """A frame of inputs (by name) as the model's matrix, by the signature."""
        return encode_frame(self.signature, frame)

    def predict_frame(self, frame: pd.DataFrame) -> Outputs:
        """Outputs of a frame of inputs (by name; extra columns are ignored)."""
        return self.outputs(self.encode(frame).matrix)

    def predict_batch(self, X: pd.DataFrame | NDArray[Any]) -> NDArray[np.float64]:
        """One score per row of ``X`` (a frame of inputs, or a matrix in feature order):
        the positive probability, the top class's probability, or the value."""
        if isinstance(X, pd.DataFrame):
            return self.predict_frame(X).score
        matrix = np.asarray(X, dtype=np.float64)
        if matrix.ndim != 2 or matrix.shape[1] != len(self.feature_names):
            raise SchemaMismatchError(
                f"Input has shape {matrix.shape}; the model expects (rows, "
                f"{len(self.feature_names)})."
            )
        return self.outputs(matrix).score

    def contributions(self, matrix: Matrix) -> Matrix:
        """Per-feature contributions (TreeSHAP for LightGBM), n x (features + 1)."""
        if self._contributions is None:
            raise InvalidParameterError(
                f"Model '{self.name}' ({self.flavor}) has no per-feature contributions; "
                "explanations need a LightGBM model."
            )
        chosen = self.outputs(matrix).class_index if self.task == "multiclass" else None
        return self._contributions(matrix, chosen)

    def __repr__(self) -> str:
        return (
            f"LoadedModel({self.name!r}, version={self.version!r}, flavor={self.flavor!r}, "
            f"task={self.task!r}, runtime={self.runtime!r})"
        )
