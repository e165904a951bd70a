"""LightGBM data-parallel on Ray workers, through Ray Train.

With ``[compute] engine = "ray"`` the pipeline's fit step trains the default LightGBM
model with LightGBM's own distributed mode (``tree_learner = "data"``) on the cluster's
workers: Ray Train's ``LightGBMTrainer`` starts one training worker per CPU of the
cluster, hands each a shard of the encoded training rows, wires LightGBM's network
between them (``get_network_params``) and returns the booster of the last checkpoint. A
training worker that dies restarts the group from the latest checkpoint
(``max_failures``). The fit step's key and outputs are those of the local fit, so a run
killed at any step resumes from its checkpoints on either engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from driftloop.compute import import_ray
from driftloop.registry import Signature

__all__ = ["fit_lightgbm_on_ray"]

_LABEL = "__label"


def _train_loop(config: dict[str, Any]) -> None:  # pragma: no cover - runs on workers
    """One training worker: its shard of rows into LightGBM's distributed training."""
    import lightgbm as lgb
    import pandas as pd
    import ray.train
    from ray.train.lightgbm import RayTrainReportCallback, get_network_params

    shard = ray.train.get_dataset_shard("train")
    part = pd.concat(list(shard.iter_batches(batch_format="pandas")), ignore_index=True)
    data = lgb.Dataset(
        part.drop(columns=[_LABEL]),
        part[_LABEL],
        categorical_feature=config["categorical"] or "auto",
        free_raw_data=False,
    )
    lgb.train(
        {**config["params"], **get_network_params()},
        data,
        num_boost_round=config["rounds"],
        callbacks=[RayTrainReportCallback()],
    )


def fit_lightgbm_on_ray(
    params: Mapping[str, Any],
    X: NDArray[np.float64],
    y: NDArray[Any],
    signature: Signature,
    *,
    task: str,
    classes: int,
    workers: int,
    storage: Path,
    name: str,
    max_failures: int = 2,
) -> Any:
    """A ``lightgbm.Booster`` trained data-parallel on ``workers`` Ray workers (each
    asking for a CPU share that leaves one CPU of the cluster free)."""
    import pandas as pd

    ray = import_ray()
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.lightgbm import LightGBMTrainer, RayTrainReportCallback

    params = dict(params)
    rounds = int(params.pop("n_estimators", 100))
    objective = {"binary": "binary", "multiclass": "multiclass", "regression": "regression"}
    lgb_params: dict[str, Any] = {
        **params,
        "objective": objective[task],
        "tree_learner": "data",
        "num_threads": 1,
        "verbose": -1,
    }
    if task == "multiclass":
        lgb_params["num_class"] = classes
    frame = pd.DataFrame(X, columns=list(signature.names))
    frame[_LABEL] = y
    categorical = [f.name for f in signature.features if f.kind == "category"]
    # Ray Train's controller and Ray Data's split need a CPU beside the training workers.
    share = max(0.25, (workers - 1) / workers) if workers > 1 else 1.0
    trainer = LightGBMTrainer(
        train_loop_per_worker=_train_loop,
        train_loop_config={"params": lgb_params, "rounds": rounds, "categorical": categorical},
        scaling_config=ScalingConfig(num_workers=workers, resources_per_worker={"CPU": share}),
        run_config=RunConfig(
            name=name,
            storage_path=str(storage.resolve()),
            failure_config=FailureConfig(max_failures=max_failures),
        ),
        datasets={"train": ray.data.from_pandas(frame)},
    )
    result = trainer.fit()
    return RayTrainReportCallback.get_model(result.checkpoint)
