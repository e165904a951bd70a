"""Checkpointed training pipelines: named steps, each stored under the hash of its inputs.

load -> validate -> training_set -> split -> search (optional) -> fit -> evaluate -> gates
-> register. A step's key hashes its own settings with the previous step's output digest,
so a rerun finds every finished step again (a killed run resumes after its last finished
step; a finished pipeline does nothing), while a change of data or settings reruns
exactly the steps downstream of it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from driftloop.core.config import Settings
from driftloop.registry import ModelVersion, Registry
from driftloop.training import _steps
from driftloop.training._checkpoint import CheckpointStore, StepOutputs, fingerprint
from driftloop.training._fit import SearchSpace, check_estimator, default_estimator
from driftloop.training._source import TrainingFrameFn, file_digests, transaction_features

__all__ = ["PipelineResult", "StepRun", "TrainingPipeline"]

_DATA_GATES = ("max_null_rate", "max_psi", "min_rows")
StepCallback = Callable[[str, str, int, int], None]
"""``callback(step, status, index, total)``; status is running, done or cached."""


@dataclass(frozen=True)
class StepRun:
    """How one step went in a run: ``cached`` (found finished) or ``ran`` in ``seconds``."""

    name: str
    status: str
    seconds: float
    key: str


@dataclass(frozen=True)
class PipelineResult:
    """What a run produced: its steps, metrics, release gate report and registered version."""

    steps: list[StepRun]
    metrics: Mapping[str, Any]
    gate_report: Mapping[str, Any]
    version: ModelVersion | None

    @property
    def ran(self) -> list[str]:
        return [s.name for s in self.steps if s.status == "ran"]


@dataclass
class TrainingPipeline:
    """A fraud-style training pipeline over a simulator data folder (see module docs).

    ``estimator`` is any unfitted classifier with fit/predict_proba (default: LightGBM);
    ``training_frame`` builds model inputs from the source window (default: per-row
    transaction features; ``feature_store_frame(store)`` for the feature store's
    point-in-time frame, the features serving reads online).
    """

    settings: Settings
    data_dir: Path
    name: str = "fraud"
    model_name: str = "fraud"
    label: str = "is_fraud"
    timestamp: str = "tx_datetime"
    start: pd.Timestamp | None = None
    end: pd.Timestamp | None = None
    valid_fraction: float = 0.15
    test_fraction: float = 0.15
    seed: int = 0
    threads: int = 1
    estimator: Any = None
    params: Mapping[str, Any] = field(default_factory=dict)
    search_trials: int = 0
    search_timeout_s: float | None = None
    search_space: SearchSpace | None = None
    training_frame: TrainingFrameFn = transaction_features
    segment_column: str = "segment"
    max_fpr: float = 0.01
    check_drift: bool = True
    registry: Registry | None = None
    checkpoint_dir: Path | None = None

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)
        if self.estimator is None:
            self.estimator = default_estimator(self.seed, self.threads)
        check_estimator(self.estimator)
        _steps.check_fractions(self.valid_fraction, self.test_fraction)
        if self.checkpoint_dir is None:
            self.checkpoint_dir = self.settings.state_dir() / "pipelines" / self.name

    @property
    def store(self) -> CheckpointStore:
        assert self.checkpoint_dir is not None
        return CheckpointStore(self.checkpoint_dir)

    def _registry(self) -> Registry:
        if self.registry is None:
            self.registry = Registry.from_settings(self.settings)
        return self.registry

    def _steps(self) -> list[tuple[str, list[str], Any, Callable[[dict[str, Any]], Any]]]:
        """(name, the steps it reads, its own settings, function of the state so far).

        Registry state (champion, previous training set) is read when a step runs, not
        hashed into keys: a finished pipeline stays finished after a promotion.
        """
        registry = self._registry()
        gates = self.settings.gates.model_dump()
        estimator = {"type": type(self.estimator).__qualname__, **_params(self.estimator)}
        frame_fn = _frame_key(self.training_frame)
        fit_inputs = ["split", "search"] if self.search_trials > 0 else ["split"]
        steps: list[tuple[str, list[str], Any, Callable[[dict[str, Any]], Any]]] = [
            (
                "load",
                [],
                [file_digests(self.data_dir), self.label, self.timestamp, self.start, self.end],
                lambda s: _steps.load(self, s),
            ),
            (
                "validate",
                ["load"],
                [{k: gates[k] for k in _DATA_GATES}, self.check_drift],
                lambda s: _steps.validate(self, registry, s),
            ),
            ("training_set", ["load"], [frame_fn], lambda s: _steps.training_set(self, s)),
            (
                "split",
                ["training_set"],
                [self.valid_fraction, self.test_fraction],
                lambda s: _steps.split(self, s),
            ),
        ]
        if self.search_trials > 0:
            steps.append(
                (
                    "search",
                    ["split"],
                    [estimator, self.search_trials, self.search_timeout_s, self.seed],
                    lambda s: _steps.search_step(self, s),
                )
            )
        steps += [
            (
                "fit",
                fit_inputs,
                [estimator, dict(self.params), self.seed],
                lambda s: _steps.fit(self, s),
            ),
            (
                "evaluate",
                ["split", "fit"],
                [
                    self.max_fpr,
                    self.segment_column,
                    self.settings.monitoring.decision_threshold,
                ],
                lambda s: _steps.evaluate(self, s),
            ),
            (
                "gates",
                ["split", "fit", "evaluate"],
                [gates],
                lambda s: _steps.release(self, registry, s),
            ),
            (
                "register",
                ["training_set", "split", "fit", "evaluate", "gates"],
                [self.model_name, self.name],
                lambda s: _steps.register(self, registry, s),
            ),
        ]
        return steps

    def step_names(self) -> list[str]:
        names = ["load", "validate", "training_set", "split"]
        names += ["search"] if self.search_trials > 0 else []
        return [*names, "fit", "evaluate", "gates", "register"]

    def run(
        self,
        *,
        on_step: StepCallback | None = None,
        on_step_done: Callable[[str], None] | None = None,
    ) -> PipelineResult:
        """Run the steps not already finished; ``on_step`` reports progress."""
        store = self.store
        state = _State()
        runs: list[StepRun] = []
        digests: dict[str, str] = {}
        steps = self._steps()
        for index, (name, inputs, own, function) in enumerate(steps):
            # Every step also follows "validate": a batch that failed validation never trains.
            after = sorted({*inputs, "validate"} & digests.keys())
            key = fingerprint(name, own, [digests[i] for i in after])
            found = store.get(name, key)
            if found is not None:
                runs.append(StepRun(name, "cached", 0.0, key))
                if on_step:
                    on_step(name, "cached", index, len(steps))
            else:
                if on_step:
                    on_step(name, "running", index, len(steps))
                started = time.perf_counter()
                outputs = function(state)
                found = store.put(name, key, outputs)
                runs.append(StepRun(name, "ran", time.perf_counter() - started, key))
                if on_step:
                    on_step(name, "done", index, len(steps))
                if on_step_done:
                    on_step_done(name)
            state.add(name, found)
            digests[name] = found.digest
        version = None
        if state.get("version"):
            version = self._registry().get(self.model_name, int(state["version"]))
        return PipelineResult(runs, state["metrics"], state["gate_report"], version)


def _frame_key(frame_fn: Any) -> Any:
    """What the training set depends on besides the window: a frame function's own
    ``fingerprint()`` (the feature store's: features, definition versions, source
    content), else its name."""
    fingerprint = getattr(frame_fn, "fingerprint", None)
    if callable(fingerprint):
        return fingerprint()
    return getattr(frame_fn, "__qualname__", repr(frame_fn))


def _params(estimator: Any) -> dict[str, Any]:
    return {k: v for k, v in sorted(estimator.get_params().items()) if _plain(v)}


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


class _State(dict[str, Any]):
    """Outputs of the steps so far, read from their checkpoints when first used."""

    def __init__(self) -> None:
        super().__init__()
        self._outputs: list[StepOutputs] = []

    def add(self, step: str, outputs: StepOutputs) -> None:
        self._outputs.append(outputs)

    def __missing__(self, key: str) -> Any:
        for outputs in reversed(self._outputs):
            if key in outputs.manifest["values"] or key in outputs.manifest["files"]:
                value = outputs[key]
                self[key] = value
                return value
        raise KeyError(key)

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default
