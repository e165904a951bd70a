"""The fraud example's model section: what ``driftloop init --example fraud`` writes into
``driftloop.toml`` and what the demo trains, over the simulator's files in ``data/``.

Nothing in the library knows these column names: they are this example's, written down
as any user writes their own model section (docs/your-data.md).
"""

from __future__ import annotations

import tomllib

from driftloop.core.config import ModelConfig

__all__ = ["FRAUD_MODEL_TOML", "fraud_model_config"]

FRAUD_MODEL_TOML = '''\
[models.fraud]
# The simulator's transactions with their labels and the card holder's context, joined by
# DuckDB ({root} is this folder). Write the files with: driftloop simulate --out data
data = """duckdb:
SELECT t.tx_id, t.tx_datetime, t.customer_id, t.terminal_id, t.amount,
       l.is_fraud, c.age_band, c.segment
FROM read_parquet('{root}/data/transactions.parquet') t
JOIN read_parquet('{root}/data/labels.parquet') l USING (tx_id)
JOIN read_parquet('{root}/data/customers.parquet') c USING (customer_id)"""
label = "is_fraud"
timestamp = "tx_datetime"
id = "tx_id"
entity_keys = ["customer_id", "terminal_id"]   # the server reads their window features
include = ["amount"]                           # from the table; the rest from the store:
store_features = ["*"]                         # every feature features.py defines
context = ["age_band", "segment"]              # kept for the fairness gate and segments
segment = "segment"
task = "binary"

[models.fraud.gates]
sensitive_attribute = "age_band"

[models.fraud.decision]
bands = [0.2, 0.8]
labels = ["approve", "review", "decline"]
'''


def fraud_model_config() -> ModelConfig:
    """The ``[models.fraud]`` section of :data:`FRAUD_MODEL_TOML`, parsed."""
    return ModelConfig.model_validate(tomllib.loads(FRAUD_MODEL_TOML)["models"]["fraud"])
