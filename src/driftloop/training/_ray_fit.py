"""LightGBM data-parallel on Ray workers, through Ray Train.

With ``[compute] engine = "ray"`` the pipeline's fit step trains the default LightGBM
model with LightGBM's own distributed mode (``tree_learner = "data"``) on the cluster's
workers: Ray Train's ``LightGBMTrainer`` starts one training worker per CPU of the
cluster, hands each a shard of the encoded training rows, wires LightGBM's network
between them (``get_network_params``) and returns the booster of the last checkpoint.

Rank 0 checkpoints the booster every ``checkpoint_every`` rounds. A training worker that
dies (killed, out of memory, a lost machine) fails the group; Ray Train starts it again
(up to ``max_failures`` times) and every worker goes on from the latest checkpoint: the
booster as ``init_model``, the rounds it still lacks. The fit step's key and outputs are
those of the local fit, so a run killed at any step resumes from its checkpoints on
either engine.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
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

    rounds, booster = config["rounds"], None
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:  # the group was restarted: go on from the latest checkpoint
        booster = RayTrainReportCallback.get_model(checkpoint)
        rounds -= booster.current_iteration()
    shard = ray.train.get_dataset_shard("train")
    part = pd.concat(list(shard.iter_batches(batch_format="pandas")), ignore_index=True)
    data = lgb.Dataset(
        part.drop(columns=[_LABEL]),
        part[_LABEL],
        categorical_feature=config["categorical"] or "auto",
        free_raw_data=False,
    )
    report = RayTrainReportCallback(frequency=config["checkpoint_every"])
    lgb.train(
        {**config["params"], **get_network_params()},
        data,
        num_boost_round=max(rounds, 0),
        init_model=booster,
        callbacks=[*config["callbacks"], report],
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
    checkpoint_every: int = 10,
    callbacks: Sequence[Callable[[Any], None]] = (),
) -> Any:
    """A ``lightgbm.Booster`` trained data-parallel on ``workers`` Ray workers (each
    asking for a CPU share that leaves one CPU of the cluster free), checkpointed every
    ``checkpoint_every`` rounds, its group restarted from the latest checkpoint up to
    ``max_failures`` times. ``callbacks`` (picklable LightGBM callbacks) run on every
    worker, before the one that reports to Ray Train."""
    import pandas as pd

    ray = import_ray()
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
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
        train_loop_config={
            "params": lgb_params,
            "rounds": rounds,
            "categorical": categorical,
            "checkpoint_every": checkpoint_every,
            "callbacks": list(callbacks),
        },
        scaling_config=ScalingConfig(num_workers=workers, resources_per_worker={"CPU": share}),
        run_config=RunConfig(
            name=name,
            storage_path=str(storage.resolve()),
            failure_config=FailureConfig(max_failures=max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
        ),
        datasets={"train": ray.data.from_pandas(frame)},
    )
    result = trainer.fit()
    return RayTrainReportCallback.get_model(result.checkpoint)
