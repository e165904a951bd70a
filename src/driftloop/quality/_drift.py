"""PSI of a new frame against a reference :class:`~driftloop.stats.Profile`'s own bins.

>>> import numpy as np, pandas as pd
>>> from driftloop.stats import Profile
>>> rng = np.random.default_rng(0)
>>> ref = Profile.from_frame(pd.DataFrame({"amount": rng.normal(50, 10, 5000)}))
>>> same = profile_psi(ref, pd.DataFrame({"amount": rng.normal(50, 10, 5000)}))["amount"]
>>> shifted = profile_psi(ref, pd.DataFrame({"amount": rng.normal(65, 10, 5000)}))["amount"]
>>> bool(same < 0.02 < 0.25 < shifted)
True
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from driftloop.stats import Profile

__all__ = ["profile_psi"]

_FLOOR = 1e-4  # share given to an empty bin, so a bin seen on one side only stays finite


def _psi(expected: NDArray[np.float64], actual: NDArray[np.float64]) -> float:
    e = np.maximum(expected / max(expected.sum(), 1.0), _FLOOR)
    a = np.maximum(actual / max(actual.sum(), 1.0), _FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def profile_psi(reference: Profile, frame: pd.DataFrame) -> dict[str, float]:
    """PSI per feature present in both (numeric by the reference's quantile bins,
    categorical by category, unseen categories pooled in one extra bin)."""
    out: dict[str, float] = {}
    for name, ref in reference.numeric.items():
        if name not in frame.columns:
            continue
        values = frame[name].to_numpy(dtype=np.float64, na_value=np.nan)
        values = values[~np.isnan(values)]
        actual = np.bincount(ref.bin_of(values), minlength=len(ref.counts)).astype(np.float64)
        out[name] = _psi(ref.counts.astype(np.float64), actual)
    for name, cat in reference.categorical.items():
        if name not in frame.columns:
            continue
        counts = frame[name].dropna().astype(str).value_counts()
        known = [float(counts.get(c, 0)) for c in cat.categories]
        unseen = float(counts.sum()) - sum(known)
        expected = np.array([*cat.counts, 0.0], dtype=np.float64)
        out[name] = _psi(expected, np.array([*known, unseen], dtype=np.float64))
    return out
