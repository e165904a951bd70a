"""What a window's records say the model answered, beyond the one-number ``score``.

The audit log keeps per record the ``score`` (binary: the positive class's probability;
multiclass: the top class's probability; regression: the value) and, in records written
since audit schema revision 2, an ``outputs`` object: ``{"class": "pro", "probabilities":
{"basic": 0.1, "plus": 0.2, "pro": 0.7}}`` for a classifier, ``{"value": 3.2}`` for a
regression. Older records (and frames without the column) have none: a multiclass
model's class then comes from ``decision`` when that names one of its classes.

>>> import pandas as pd
>>> records = pd.DataFrame({"decision": ["b", "a"], "outputs": [
...     {"class": "b", "probabilities": {"a": 0.3, "b": 0.7}},
...     {"class": "a", "probabilities": {"a": 0.6, "b": 0.4}}]})
>>> class_probabilities(records, ("a", "b")).tolist()
[[0.3, 0.7], [0.6, 0.4]]
>>> predicted_classes(records.drop(columns=["outputs"]), ("a", "b")).tolist()
['b', 'a']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

__all__ = ["class_probabilities", "predicted_classes"]


def _outputs(records: pd.DataFrame) -> list[Mapping[str, Any]] | None:
    if "outputs" not in records.columns:
        return None
    return [o if isinstance(o, Mapping) else {} for o in records["outputs"]]


def class_probabilities(
    records: pd.DataFrame, classes: Sequence[str]
) -> NDArray[np.float64] | None:
    """The ``(rows, classes)`` probabilities in the order of ``classes``, or None unless
    every record carries them (a class a record leaves out has probability 0)."""
    outputs = _outputs(records)
    if outputs is None or not classes:
        return None
    rows: list[Mapping[str, Any]] = []
    for o in outputs:
        probabilities = o.get("probabilities")
        if not (isinstance(probabilities, Mapping) and probabilities):
            return None
        rows.append(probabilities)
    frame = pd.DataFrame.from_records(rows).reindex(columns=list(classes))
    values: NDArray[np.float64] = np.nan_to_num(
        frame.to_numpy(dtype=np.float64, na_value=np.nan), nan=0.0
    )
    return values


def predicted_classes(records: pd.DataFrame, classes: Sequence[str]) -> pd.Series | None:
    """The class each record predicted (text, one of ``classes``; null where unknown):
    ``outputs["class"]``, else the most probable class of ``outputs["probabilities"]``,
    else ``decision`` when its values are class names. None when no record says."""
    known = set(classes)
    outputs = _outputs(records)
    if outputs is not None:
        names: list[Any] = []
        for o in outputs:
            name = o.get("class")
            probabilities = o.get("probabilities")
            if name is None and isinstance(probabilities, Mapping) and probabilities:
                name = max(probabilities, key=lambda c: probabilities[c])
            names.append(str(name) if name is not None and str(name) in known else None)
        found = pd.Series(names, index=records.index, dtype=object)
        if found.notna().any():
            return found
    if "decision" in records.columns and known:
        decisions = records["decision"].astype(object)
        present = decisions.dropna().astype(str)
        if len(present) and present.isin(known).all():
            return decisions.where(decisions.isna(), decisions.astype(str))
    return None
