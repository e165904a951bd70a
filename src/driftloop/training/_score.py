"""Batch scoring: a registered model over a table, vectorised, in chunks.

The rows get the model's inputs as training built them (:func:`model_inputs`: store
features point in time), are encoded by the signature and scored in one call per chunk.
The result has the id and event time when the rows have them, and the outputs of the
task: ``score`` (binary: the positive probability), ``class`` and one
``probability:<class>`` column per class (multiclass), ``value`` (regression), plus the
decision when a policy is given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from driftloop.core.config import DecisionPolicy
from driftloop.features import FeatureStore
from driftloop.registry import LoadedModel, feature_frame
from driftloop.training._inputs import model_inputs

__all__ = ["ScoredChunk", "score_rows"]

CHUNK_ROWS = 100_000


@dataclass(frozen=True)
class ScoredChunk:
    """One chunk's outputs (see the module docs), the rows they were scored from and the
    features as profiles and the audit log keep them."""

    outputs: pd.DataFrame
    rows: pd.DataFrame
    features: pd.DataFrame


def score_rows(
    model: LoadedModel,
    rows: pd.DataFrame,
    *,
    store: FeatureStore | None = None,
    decision: DecisionPolicy | None = None,
    chunk_rows: int = CHUNK_ROWS,
    progress: Callable[[int], None] | None = None,
) -> Iterator[ScoredChunk]:
    """Score ``rows`` chunk by chunk; ``progress(n)`` is told the rows done so far."""
    signature = model.signature
    done = 0
    for start in range(0, len(rows), chunk_rows):
        part = rows.iloc[start : start + chunk_rows].reset_index(drop=True)
        inputs = model_inputs(part, signature, store=store)
        encoded = model.encode(inputs)
        outputs = model.outputs(encoded.matrix)
        out = pd.DataFrame(index=range(len(part)))
        for column in (signature.id, signature.timestamp):
            if column is not None and column in part.columns:
                out[column] = part[column].to_numpy()
        if model.task == "regression":
            out["value"] = outputs.raw
        elif model.task == "multiclass":
            out["class"] = np.asarray(model.classes, dtype=object)[outputs.class_index]
            for k, name in enumerate(model.classes):
                out[f"probability:{name}"] = outputs.raw[:, k]
        out["score"] = outputs.score
        if decision is not None and model.task != "multiclass":
            out["decision"] = [decision.decide(float(s)) for s in outputs.score]
        done += len(part)
        if progress is not None:
            progress(done)
        yield ScoredChunk(out, part, feature_frame(signature, inputs))
