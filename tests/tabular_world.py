"""Tables that are not the simulator's: loans, flowers and house prices, with text,
boolean and missing columns, event times, and drift planted where a test asks for it.

Every table has an id, an applicant (several applications each), an event time spread
over ``days`` days, a numeric column with missing values, a boolean column, text
columns, and a label for its task:

* ``binary``: will the loan be repaid (text labels ``yes`` / ``no``);
* ``multiclass``: a plan chosen (``basic``, ``plus``, ``pro``);
* ``regression``: a price.

:func:`applicants` is the applicant table the ``applicant_id`` column refers to (one row
each, known before the first application), for a feature view to read.

``drift_from`` plants data drift from that day on: ``income`` grows by half and the
``channel`` mix moves to ``branch``; ``concept_from`` plants a performance drop: the
label no longer follows the features the way it did (the relation is reversed), while
inputs keep their distribution.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd

TASK_LABELS = {"binary": "repaid", "multiclass": "plan", "regression": "price"}
FEATURES = ["income", "age", "owns_home", "channel", "region"]


def table(
    task: str,
    *,
    rows: int = 4_000,
    days: int = 20,
    seed: int = 0,
    drift_from: int | None = None,
    concept_from: int | None = None,
    start: datetime = datetime(2026, 3, 1),
) -> pd.DataFrame:
    """One table (see the module docs); rows are in event-time order."""
    rng = np.random.default_rng(seed)
    seconds = np.sort(rng.uniform(0, days * 86_400, rows))
    when = pd.Series([start + timedelta(seconds=float(s)) for s in seconds])
    day = (seconds // 86_400).astype(int)
    drifted = day >= drift_from if drift_from is not None else np.zeros(rows, bool)
    income = rng.lognormal(10.5, 0.4, rows) * np.where(drifted, 1.5, 1.0)
    age = rng.integers(18, 80, rows).astype(float)
    channel = np.where(
        rng.random(rows) < np.where(drifted, 0.8, 0.2), "branch", rng.choice(["web", "app"], rows)
    )
    region = rng.choice(["north", "south", "east", "west"], rows, p=[0.4, 0.3, 0.2, 0.1])
    owns_home = rng.random(rows) < 0.45
    signal = (
        (np.log(income) - 10.5) * 2.0
        + np.where(owns_home, 0.8, -0.4)
        + np.select([region == "north", region == "south"], [0.6, -0.6], 0.0)
        + (age - 45) / 30
    )
    if concept_from is not None:
        signal = np.where(day >= concept_from, -signal, signal)
    noisy = signal + rng.normal(0, 0.6, rows)
    frame = pd.DataFrame(
        {
            "application_id": [f"A{i:06d}" for i in range(rows)],
            "applicant_id": rng.integers(1, rows // 4, rows),
            "applied_at": when,
            "income": income.round(2),
            "age": age,
            "owns_home": owns_home,
            "channel": channel,
            "region": region,
        }
    )
    if task == "binary":
        frame["repaid"] = np.where(noisy > 0.2, "yes", "no")
    elif task == "multiclass":
        frame["plan"] = np.select([noisy < -0.5, noisy < 0.7], ["basic", "plus"], "pro")
    else:
        frame["price"] = (200_000 + 40_000 * noisy).round(0)
    missing = rng.random(rows) < 0.05  # 5% of incomes unknown
    frame.loc[missing, "income"] = np.nan
    frame["owns_home"] = frame["owns_home"].astype(object)
    frame.loc[rng.random(rows) < 0.03, "owns_home"] = None
    return frame


def applicants(
    rows: int = 4_000, *, seed: int = 0, start: datetime = datetime(2026, 3, 1)
) -> pd.DataFrame:
    """The applicants of :func:`table` with the same ``rows``: ``applicant_id``,
    ``updated_at`` (a month before ``start``) and ``tenure_years`` (some unknown)."""
    rng = np.random.default_rng(seed + 1)
    ids = np.arange(1, rows // 4)
    tenure = rng.gamma(2.0, 3.0, len(ids)).round(1)
    tenure[rng.random(len(ids)) < 0.05] = np.nan
    return pd.DataFrame(
        {
            "applicant_id": ids,
            "updated_at": start - timedelta(days=30),
            "tenure_years": tenure,
        }
    )


def model_toml(task: str, data: str = "data/applications.csv", name: str | None = None) -> str:
    """A ``[models.<name>]`` section for :func:`table` data."""
    name = name or task
    return (
        f"[models.{name}]\n"
        f'data = "{data}"\n'
        f'label = "{TASK_LABELS[task]}"\n'
        'timestamp = "applied_at"\n'
        'id = "application_id"\n'
        'exclude = ["applicant_id"]\n'
    )
