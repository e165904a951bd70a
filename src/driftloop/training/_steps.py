"""The steps of :class:`~driftloop.training.TrainingPipeline`, each a function of the
outputs of the steps before it (read back from their checkpoints)."""

from __future__ import annotations

import hashlib
import subprocess
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from driftloop.core.errors import (
    GateFailedError,
    InsufficientDataError,
    InvalidParameterError,
    NotFoundError,
    SchemaMismatchError,
)
from driftloop.quality import quarantine, release_gates, validate_frame
from driftloop.registry import ModelVersion, Registry, Signature, flavor_for
from driftloop.registry._flavors import FLAVORS, with_task
from driftloop.registry._model import LoadedModel
from driftloop.stats import Profile
from driftloop.training._evaluate import evaluate_scores, per_row_latency_ms, segment_metrics
from driftloop.training._fit import fit_estimator, search
from driftloop.training._source import SourceWindow, load_window

if TYPE_CHECKING:
    from driftloop.training._pipeline import TrainingPipeline

__all__ = ["champion_version", "check_fractions", "reference_version"]

State = dict[str, Any]


def check_fractions(valid: float, test: float) -> None:
    if not (0 < valid < 1 and 0 < test < 1 and valid + test < 1):
        raise InvalidParameterError(
            f"valid_fraction ({valid}) and test_fraction ({test}) must be in (0, 1) and sum "
            "to less than 1 (the rest is the training window)."
        )


def champion_version(registry: Registry, model: str) -> ModelVersion | None:
    try:
        return registry.resolve(model, "champion")
    except NotFoundError:
        return None


def reference_version(registry: Registry, model: str) -> ModelVersion | None:
    """The previous training set's version: the champion, else the latest version."""
    champion = champion_version(registry, model)
    if champion is not None:
        return champion
    try:
        return registry.get(model)
    except NotFoundError:
        return None


def load(p: TrainingPipeline, state: State) -> State:
    window = load_window(p.data_dir, label=p.label, timestamp=p.timestamp, start=p.start, end=p.end)
    return {"transactions": window.transactions, "customers": window.customers}


def validate(p: TrainingPipeline, registry: Registry, state: State) -> State:
    tx = state["transactions"]
    reference = reference_version(registry, p.model_name)
    schema = {
        "tx_id": "numeric",
        p.timestamp: "datetime",
        "customer_id": "numeric",
        "amount": "numeric",
        p.label: "numeric",
    }
    profile = None
    if reference is not None and p.check_drift:
        profile = registry.profile(reference.name, reference.version)
    report = validate_frame(
        tx,
        schema=schema,
        config=p.settings.gates,
        ranges={"amount": (0.0, None), p.label: (0.0, 1.0)},
        reference=profile,
    )
    if not report.passed:
        folder = quarantine(tx, report, p.settings.state_dir() / "quarantine" / p.name)
        raise GateFailedError(f"{report.summary()}. The batch is quarantined in {folder}.")
    return {
        "validation_report": report.to_dict(),
        "reference": reference.ref if reference is not None else None,
    }


def training_set(p: TrainingPipeline, state: State) -> State:
    window = SourceWindow(state["transactions"], state["customers"])
    built = p.training_frame(window, p.label, p.timestamp)
    missing = [c for c in (*built.features, p.label, p.timestamp) if c not in built.frame.columns]
    if missing or not built.features:
        raise SchemaMismatchError(
            f"The training frame lacks column(s) {', '.join(missing) or '(no features)'}; "
            f"it has {', '.join(map(str, built.frame.columns))}."
        )
    return {
        "frame": built.frame,
        "features": list(built.features),
        "sources": {k: list(v) for k, v in built.sources.items()},
        "entity_keys": list(built.entity_keys),
    }


def split(p: TrainingPipeline, state: State) -> State:
    """Train / valid / test by time: every test row is later than every training row."""
    frame = state["frame"].sort_values(p.timestamp, kind="stable").reset_index(drop=True)
    times = frame[p.timestamp]
    n = len(frame)
    t1 = times.iloc[min(int(n * (1 - p.valid_fraction - p.test_fraction)), n - 1)]
    t2 = times.iloc[min(int(n * (1 - p.test_fraction)), n - 1)]
    parts = {
        "train": frame[times < t1],
        "valid": frame[(times >= t1) & (times < t2)],
        "test": frame[times >= t2],
    }
    ranges = {}
    for name, part in parts.items():
        positives = int(part[p.label].sum())
        if positives == 0 or positives == len(part):
            raise InsufficientDataError(
                f"The {name} split ({len(part)} rows, {times.min()} to {times.max()} overall) "
                f"has {positives} positive(s) and {len(part) - positives} negative(s) of "
                f"'{p.label}'; each split needs both classes. Widen the training window."
            )
        ranges[name] = [str(part[p.timestamp].min()), str(part[p.timestamp].max())]
    return {**{k: v.reset_index(drop=True) for k, v in parts.items()}, "time_ranges": ranges}


def search_step(p: TrainingPipeline, state: State) -> State:
    features, label = state["features"], p.label
    train, valid = state["train"], state["valid"]
    result = search(
        p.estimator,
        (train[features], train[label]),
        (valid[features], valid[label]),
        trials=p.search_trials,
        timeout_s=p.search_timeout_s,
        seed=p.seed,
        space=p.search_space,
    )
    return {"search": result}


def fit(p: TrainingPipeline, state: State) -> State:
    features, train = state["features"], state["train"]
    params = {**p.params, **(state.get("search") or {}).get("params", {})}
    model = fit_estimator(p.estimator, params, train[features], train[p.label])
    flavor = flavor_for(model)
    sources = {k: (v[0], v[1]) for k, v in state["sources"].items()}
    signature = with_task(flavor, model, Signature.infer(train[features], sources=sources))
    files = flavor.save(model, signature)
    out: State = {
        "flavor": flavor.name,
        "params": params,
        "artifact_model": files["model"],
        "signature": signature.to_json(),
    }
    if "onnx" in files:
        out["artifact_onnx"] = files["onnx"]
    return out


def _loaded(state: State) -> LoadedModel:
    files = {"model": state["artifact_model"]}
    if state.get("artifact_onnx") is not None:
        files["onnx"] = state["artifact_onnx"]
    return FLAVORS[state["flavor"]].load(files, Signature.from_json(state["signature"]))


def evaluate(p: TrainingPipeline, state: State) -> State:
    test, features = state["test"], state["features"]
    model = _loaded(state)
    y = test[p.label].to_numpy()
    scores = model.predict_batch(test[features])
    threshold = p.settings.monitoring.decision_threshold
    metrics: dict[str, Any] = evaluate_scores(y, scores, max_fpr=p.max_fpr, threshold=threshold)
    if p.segment_column in test.columns:
        metrics["segments"] = segment_metrics(y, scores, test[p.segment_column], max_fpr=p.max_fpr)
    return {"metrics": metrics, "latency": per_row_latency_ms(model, test[features])}


def release(p: TrainingPipeline, registry: Registry, state: State) -> State:
    test, features = state["test"], state["features"]
    champion = champion_version(registry, p.model_name)
    scores = _loaded(state).predict_batch(test[features])
    champion_scores, problems = None, []
    if champion is not None:
        candidate = Signature.from_frame(test[features])
        problems = candidate.incompatibilities(champion.signature)
        if all(name in test.columns for name in champion.feature_names):
            loaded = registry.load(champion.name, champion.version)
            champion_scores = loaded.predict_batch(test[champion.feature_names])
    attr = p.settings.gates.sensitive_attribute
    report = release_gates(
        p.settings.gates,
        y_true=test[p.label].to_numpy(),
        scores=scores,
        champion_scores=champion_scores,
        sensitive=test[attr].to_numpy() if attr and attr in test.columns else None,
        latency_p99_ms=state["latency"]["latency_p99_ms"],
        signature_problems=problems,
    )
    return {
        "gate_report": report.to_dict(),
        "champion": champion.version if champion is not None else None,
    }


def _git_commit(root: Any) -> str | None:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def register(p: TrainingPipeline, registry: Registry, state: State) -> State:
    """Register the model (alias ``challenger`` when the release gates passed).

    A run killed after the registry commit but before this step's checkpoint finds its
    version again by the ``run_id`` tag instead of registering it twice.
    """
    features, train = state["features"], state["train"]
    run_id = hashlib.sha256(state["artifact_model"]).hexdigest()[:16]
    for existing in registry.versions(p.model_name):
        if existing.tags.get("run_id") == run_id:
            return {"version": existing.version}
    model = _loaded(state)
    profile = Profile.from_frame(train[features], predictions=model.predict_batch(train[features]))
    hashed = pd.util.hash_pandas_object(train, index=False).to_numpy()
    lineage = {
        "training_set_hash": hashlib.sha256(np.ascontiguousarray(hashed).tobytes()).hexdigest(),
        "feature_views": state["sources"] or None,
        "entity_keys": state.get("entity_keys") or None,  # what serve --entity-key needs
        "time_range": state["time_ranges"]["train"],
        "splits": state["time_ranges"],
        "data_dir": str(p.data_dir),
        "git_commit": _git_commit(p.settings.root),
        "parent_version": state["reference"] or state["champion"],
        "champion_at_gates": state["champion"],
    }
    gate_report = state["gate_report"]
    passed = bool(gate_report["passed"])
    files = {"model": state["artifact_model"]}
    if state.get("artifact_onnx") is not None:
        files["onnx"] = state["artifact_onnx"]
    version = registry.register_files(
        p.model_name,
        state["flavor"],
        files,
        signature=Signature.from_json(state["signature"]),
        params=state["params"],
        metrics={**state["metrics"], **state["latency"]},
        tags={"pipeline": p.name, "run_id": run_id},
        lineage=lineage,
        gate_report=gate_report,
        profile=profile,
        created_by=f"pipeline:{p.name}",
        alias="challenger" if passed else None,
        alias_reason="release gates passed" if passed else "",
    )
    return {"version": version.version}
