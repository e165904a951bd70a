"""A simulated fraud world scored by a real model: prediction records as the audit log keeps
them, with drift planted on a known day."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier

from driftloop.data import simulate_transactions
from driftloop.monitoring import Reference, realized_performance
from driftloop.stats import Profile

DRIFT_DAY = 35
DAYS = 42
LABEL_DELAY = 7
FEATURES = ["amount", "amount_ratio", "hour", "terminal_risk", "age_band"]
MODEL_INPUTS = ["amount", "amount_ratio", "hour", "terminal_risk"]


@dataclass(frozen=True)
class World:
    records: pd.DataFrame  # days 28..41, record columns + features
    reference: Reference  # profile and baseline from held-out days 24..27
    drift_start: pd.Timestamp
    held_out: pd.DataFrame | None = None  # days 24..27 as records: the reference period


def _terminal_risk(tx: pd.DataFrame, terminals: int) -> np.ndarray:
    """Share of fraud at the transaction's terminal over the 7 days whose labels are known
    (days d-14 .. d-8): what a real system can know at scoring time."""
    day = tx["tx_time_days"].to_numpy()
    term = tx["terminal_id"].to_numpy()
    counts = np.zeros((DAYS + 1, terminals))
    frauds = np.zeros((DAYS + 1, terminals))
    np.add.at(counts, (day + 1, term), 1)
    np.add.at(frauds, (day + 1, term), tx["is_fraud"].to_numpy())
    c, f = counts.cumsum(axis=0), frauds.cumsum(axis=0)
    hi = np.clip(day - LABEL_DELAY + 1, 0, DAYS)
    lo = np.clip(day - 2 * LABEL_DELAY + 1, 0, DAYS)
    n = c[hi, term] - c[lo, term]
    return np.divide(f[hi, term] - f[lo, term], n, out=np.zeros(len(tx)), where=n > 0)


def _features(sim) -> pd.DataFrame:
    tx = sim.transactions.merge(
        sim.customers[["customer_id", "mean_amount", "age_band"]], on="customer_id", how="left"
    )
    return pd.DataFrame(
        {
            "ts": pd.to_datetime(tx["tx_datetime"]).dt.tz_localize("UTC"),
            "day": tx["tx_time_days"].to_numpy(),
            "amount": tx["amount"].to_numpy(),
            "amount_ratio": (tx["amount"] / tx["mean_amount"]).to_numpy(),
            "hour": (tx["tx_time_seconds"] % 86_400) / 3_600,
            "terminal_risk": _terminal_risk(tx, len(sim.terminals)),
            "age_band": tx["age_band"].astype(str).to_numpy(),
            "label": tx["is_fraud"].astype(float).to_numpy(),
            "prediction_id": tx["tx_id"].astype(str).to_numpy(),
        }
    )


@cache
def make_world(kind: str) -> World:
    sim = simulate_transactions(
        customers=5_000, terminals=10_000, days=DAYS, drift_at=DRIFT_DAY, drift=(kind,), seed=3
    )
    rows = _features(sim)
    train = rows[(rows["day"] >= 14) & (rows["day"] <= 23)]
    model = HistGradientBoostingClassifier(
        max_iter=40, learning_rate=0.2, early_stopping=False, random_state=0
    )
    model.fit(train[MODEL_INPUTS], train["label"])
    rows["score"] = model.predict_proba(rows[MODEL_INPUTS])[:, 1]
    held_out = rows[(rows["day"] >= 24) & (rows["day"] <= 27)]
    profile = Profile.from_frame(held_out[FEATURES], predictions=held_out["score"].to_numpy())
    baseline = realized_performance(
        held_out["score"].to_numpy(), held_out["label"].to_numpy(), threshold=0.5
    )
    live = rows[rows["day"] >= 28].copy()
    live["model"] = "fraud"
    live["version"] = 1
    live["route"] = "champion"
    live["decision"] = np.where(live["score"] >= 0.5, "decline", "approve")
    start = pd.Timestamp(sim.scenario.start_date, tz="UTC") + pd.Timedelta(days=DRIFT_DAY)
    period = held_out.drop(columns=["day"]).assign(
        model="fraud", version=1, route="champion", decision="approve"
    )
    return World(
        live.drop(columns=["day"]).reset_index(drop=True),
        Reference(profile, baseline),
        start,
        period.reset_index(drop=True),
    )
