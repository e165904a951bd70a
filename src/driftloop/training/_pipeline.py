"""Checkpointed training pipelines: named steps, each stored under the hash of its inputs.

load -> training_set -> validate -> split -> search (optional) -> fit -> evaluate -> gates
-> register. A step's key hashes its own settings with the previous step's output digest,
so a rerun finds every finished step again (a killed run resumes after its last finished
step; a finished pipeline does nothing), while a change of data or settings reruns
exactly the steps downstream of it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from driftloop.core.config import GatesConfig, ModelConfig, Settings
from driftloop.core.errors import InvalidParameterError
from driftloop.features import FeatureStore
from driftloop.registry import ModelVersion, Registry
from driftloop.training import _steps
from driftloop.training._checkpoint import CheckpointStore, StepOutputs, fingerprint
from driftloop.training._fit import SearchSpace, check_estimator, default_estimator
from driftloop.training._source import TrainingSource, training_source

__all__ = ["PipelineResult", "StepRun", "TrainingPipeline"]

_DATA_GATES = ("max_null_rate", "max_null_rate_increase", "max_out_of_range", "max_psi", "min_rows")
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
    baseline_metrics: Mapping[str, Any] = field(default_factory=dict)
    notes: Sequence[str] = ()

    @property
    def ran(self) -> list[str]:
        return [s.name for s in self.steps if s.status == "ran"]


@dataclass
class TrainingPipeline:
    """The training pipeline of one model (see the module docs).

    ``config`` is the model's ``[models.<name>]`` section; ``source`` where its rows come
    from; ``store`` the feature store its ``store_features`` are read from; ``name``
    names the checkpoints (default: the model's). ``estimator`` is any unfitted
    scikit-learn style estimator (default: LightGBM for the task).
    :meth:`from_settings` fills the config and source from the project's settings.
    """

    settings: Settings
    model_name: str
    config: ModelConfig
    source: TrainingSource
    store: FeatureStore | None = None
    name: str = ""
    start: pd.Timestamp | None = None
    end: pd.Timestamp | None = None
    seed: int = 0
    threads: int = 1
    estimator: Any = None
    params: Mapping[str, Any] = field(default_factory=dict)
    search_trials: int = 0
    search_timeout_s: float | None = None
    search_space: SearchSpace | None = None
    check_drift: bool = True
    registry: Registry | None = None
    checkpoint_dir: Path | None = None
    rerun: Sequence[str] = ()
    gates: GatesConfig = field(init=False)
    # The checkpoint key of the step running now (a shared search names its study by it).
    step_key: str = field(init=False, default="")

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        model_name: str,
        *,
        config: ModelConfig | None = None,
        source: TrainingSource | None = None,
        **options: Any,
    ) -> TrainingPipeline:
        """The pipeline of ``[models.<model_name>]`` (or ``config``), reading ``config.data``
        (or ``source``)."""
        config = config or settings.model(model_name)
        if source is None:
            if not config.data:
                raise InvalidParameterError(
                    f"Model '{model_name}' has no training data: set data = \"...\" in "
                    f"[models.{model_name}] of driftloop.toml or pass --data."
                )
            source = training_source(config.data, root=settings.root)
        return cls(settings, model_name, config, source, **options)

    def __post_init__(self) -> None:
        self.name = self.name or self.model_name
        unknown = sorted(set(self.rerun) - set(self.step_names()))
        if unknown:
            raise InvalidParameterError(
                f"Cannot rerun step(s) {', '.join(unknown)}: the steps are "
                f"{', '.join(self.step_names())}."
            )
        if self.checkpoint_dir is None:
            self.checkpoint_dir = self.settings.state_dir() / "pipelines" / self.name
        self.gates = self.settings.gates_for(self.model_name, self.config)

    @property
    def store_(self) -> CheckpointStore:
        assert self.checkpoint_dir is not None
        return CheckpointStore(self.checkpoint_dir)

    def _registry(self) -> Registry:
        if self.registry is None:
            self.registry = Registry.from_settings(self.settings)
        return self.registry

    def estimator_for(self, task: str) -> Any:
        estimator = self.estimator or default_estimator(task, self.seed, self.threads)
        check_estimator(estimator, task)
        return estimator

    def _steps(self) -> list[tuple[str, list[str], Any, Callable[[dict[str, Any]], Any]]]:
        """(name, the steps it reads, its own settings, function of the state so far).

        Registry state (champion, previous training set) is read when a step runs, not
        hashed into keys: a finished pipeline stays finished after a promotion.
        """
        registry = self._registry()
        config = self.config
        gates = self.gates.model_dump()
        estimator = _estimator_key(self.estimator)
        store_key = _store_key(self.store) if config.store_features else None
        fit_inputs = ["split", "search"] if self.search_trials > 0 else ["split"]
        shape = config.model_dump(exclude={"decision", "missing", "gates", "params", "data"})
        steps: list[tuple[str, list[str], Any, Callable[[dict[str, Any]], Any]]] = [
            (
                "load",
                [],
                [self.source.fingerprint(), config.timestamp, self.start, self.end],
                lambda s: _steps.load(self, s),
            ),
            (
                "training_set",
                ["load"],
                [shape, store_key, gates["sensitive_attribute"]],
                lambda s: _steps.training_set(self, s),
            ),
            (
                "validate",
                ["training_set"],
                [{k: gates[k] for k in _DATA_GATES}, self.check_drift],
                lambda s: _steps.validate(self, registry, s),
            ),
            ("split", ["training_set"], [self.seed], lambda s: _steps.split(self, s)),
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
                [estimator, dict(config.params), dict(self.params), self.seed],
                lambda s: _steps.fit(self, s),
            ),
            (
                "evaluate",
                ["split", "fit"],
                [self.settings.monitoring.decision_threshold],
                lambda s: _steps.evaluate_step(self, s),
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
        names = ["load", "training_set", "validate", "split"]
        names += ["search"] if self.search_trials > 0 else []
        return [*names, "fit", "evaluate", "gates", "register"]

    def run(
        self,
        *,
        on_step: StepCallback | None = None,
        on_step_done: Callable[[str], None] | None = None,
    ) -> PipelineResult:
        """Run the steps not already finished (and those named in ``rerun``, such as
        ``gates`` to measure again); ``on_step`` reports progress."""
        store = self.store_
        state = _State()
        runs: list[StepRun] = []
        digests: dict[str, str] = {}
        steps = self._steps()
        for index, (name, inputs, own, function) in enumerate(steps):
            # Every step also follows "validate": a batch that failed validation never trains.
            after = sorted({*inputs, "validate"} & digests.keys())
            key = fingerprint(name, own, [digests[i] for i in after])
            if name in self.rerun:
                store.discard(name, key)
            found = store.get(name, key)
            if found is not None:
                runs.append(StepRun(name, "cached", 0.0, key))
                if on_step:
                    on_step(name, "cached", index, len(steps))
            else:
                if on_step:
                    on_step(name, "running", index, len(steps))
                started = time.perf_counter()
                self.step_key = key
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
        return PipelineResult(
            runs,
            state["metrics"],
            state["gate_report"],
            version,
            state.get("baseline_metrics") or {},
            tuple(state.get("notes") or ()),
        )


def _store_key(store: FeatureStore | None) -> Any:
    """What store features depend on: each view's definition version and the content of
    its source rows (a count and an order-independent sum of row hashes, in DuckDB)."""
    if store is None:
        return None
    offline = store.offline
    content = {}
    for name, view in sorted(store.catalog.views.items()):
        relation = offline.relation(view)
        count, total = offline.connection.execute(
            f"SELECT count(*), sum(hash(s)) FROM (SELECT * FROM {relation}) s"
        ).fetchall()[0]
        content[name] = [view.version, int(count), str(total)]
    content.update({name: [od.version] for name, od in sorted(store.catalog.on_demand.items())})
    return content


def _estimator_key(estimator: Any) -> Any:
    """The estimator's type and plain parameters (None: the task's default)."""
    if estimator is None:
        return "default"
    params = {k: v for k, v in sorted(estimator.get_params().items()) if _plain(v)}
    return {"type": type(estimator).__qualname__, **params}


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
