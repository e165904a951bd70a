"""A model's inputs for rows it did not train on: what batch scoring, backtests and
consistency checks feed it, built as the training set built them.

Table inputs are the rows' own columns; store features are read point in time at each
row's timestamp by the views' join keys (the references recorded in the signature);
timestamp inputs stay raw (the encoder derives their parts).
"""

from __future__ import annotations

import pandas as pd

from driftloop.core.errors import InvalidParameterError, SchemaMismatchError
from driftloop.features import FeatureStore
from driftloop.registry import Signature

__all__ = ["model_inputs"]


def model_inputs(
    rows: pd.DataFrame, signature: Signature, *, store: FeatureStore | None = None
) -> pd.DataFrame:
    """``rows`` with every input of ``signature`` (store features joined in)."""
    stored = [f for f in signature.features if f.view is not None]
    table = [name for name in signature.inputs if name not in {f.name for f in stored}]
    missing = [name for name in table if name not in rows.columns]
    if missing:
        raise SchemaMismatchError(
            f"The rows lack input column(s) {', '.join(missing)} of the model. "
            f"Columns: {', '.join(map(str, rows.columns))}."
        )
    if not stored:
        return rows
    if store is None:
        raise InvalidParameterError(
            f"The model reads feature-store features ({', '.join(f.name for f in stored)}); "
            "give the project's feature store (features.py)."
        )
    if signature.timestamp is None or signature.timestamp not in rows.columns:
        raise SchemaMismatchError(
            f"Store features are read as of each row's timestamp; the rows lack "
            f"'{signature.timestamp}'."
        )
    references = [f.name if f.view == f.name else f"{f.view}:{f.name}" for f in stored]
    catalog = store.catalog
    resolved = catalog.resolve(references)
    keys = list(dict.fromkeys(k for v in resolved.views for k in catalog.view(v).join_keys))
    wanted = list(dict.fromkeys([*keys, signature.timestamp, *table]))
    absent = [c for c in wanted if c not in rows.columns]
    if absent:
        raise SchemaMismatchError(
            f"The rows lack column(s) {', '.join(absent)} that the feature store needs."
        )
    built = store.training_frame(
        rows[wanted].reset_index(drop=True), references, timestamp_field=signature.timestamp
    )
    out = rows.reset_index(drop=True).copy()
    for spec in stored:
        out[spec.name] = built[spec.name].to_numpy()
    return out
