"""The steps of :class:`~driftloop.training.TrainingPipeline`, each a function of the
outputs of the steps before it (read back from their checkpoints)."""

from __future__ import annotations

import hashlib
import subprocess
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from driftloop.compute import open_engine
from driftloop.core.errors import GateFailedError, InsufficientDataError, NotFoundError
from driftloop.quality import quarantine, release_gates, single_feature_skill, validate_features
from driftloop.registry import FLAVORS, LoadedModel, ModelVersion, Registry, Signature, flavor_for
from driftloop.registry._flavors import with_task
from driftloop.stats import TASKS, Outputs, Profile, baseline, evaluate
from driftloop.training._evaluate import evaluate_model, latency_ms, segment_metrics
from driftloop.training._fit import fit_estimator, search
from driftloop.training._ray_fit import fit_lightgbm_on_ray
from driftloop.training._shared_search import search_storage_url, shared_search
from driftloop.training._training_set import build_training_set

if TYPE_CHECKING:
    from driftloop.training._pipeline import TrainingPipeline

__all__ = ["champion_version", "reference_version"]

State = dict[str, Any]


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
    rows = p.source.window(p.config.timestamp, start=p.start, end=p.end)
    return {"rows": rows}


def training_set(p: TrainingPipeline, state: State) -> State:
    attribute = p.gates.sensitive_attribute
    built = build_training_set(
        state["rows"], p.config, store=p.store, sensitive=[attribute] if attribute else []
    )
    return {
        "frame": built.frame,
        "signature": built.signature.to_json(),
        "entity_keys": list(built.entity_keys),
        "notes": list(built.notes),
    }


def _signature(state: State) -> Signature:
    return Signature.from_json(state["signature"])


def validate(p: TrainingPipeline, registry: Registry, state: State) -> State:
    """The data gate on the model's own features (kinds, nulls, ranges, drift against the
    previous training set's profile); a failing batch is quarantined."""
    frame, signature = state["frame"], _signature(state)
    reference = reference_version(registry, p.model_name)
    profile = None
    if reference is not None and p.check_drift:
        profile = registry.profile(reference.name, reference.version)
    report = validate_features(
        frame,
        signature,
        config=p.gates,
        reference=reference.signature if reference is not None else None,
        profile=profile,
    )
    if not report.passed:
        folder = quarantine(frame, report, p.settings.state_dir() / "quarantine" / p.name)
        raise GateFailedError(f"{report.summary()}. The batch is quarantined in {folder}.")
    return {
        "validation_report": report.to_dict(),
        "reference": reference.ref if reference is not None else None,
    }


def split(p: TrainingPipeline, state: State) -> State:
    """Train / valid / test by time (every test row later than every training row), or
    by a seeded shuffle when the model has no timestamp."""
    frame, signature = state["frame"], _signature(state)
    label, timestamp = signature.label or "", signature.timestamp
    n = len(frame)
    cut1 = int(n * (1 - p.config.valid_fraction - p.config.test_fraction))
    cut2 = int(n * (1 - p.config.test_fraction))
    if timestamp is None:
        order = np.random.default_rng(p.seed).permutation(n)
        frame = frame.iloc[order].reset_index(drop=True)
        parts = {"train": frame[:cut1], "valid": frame[cut1:cut2], "test": frame[cut2:]}
        ranges: dict[str, Any] = {}
    else:
        frame = frame.sort_values(timestamp, kind="stable").reset_index(drop=True)
        times = frame[timestamp]
        if n < 3 or times.iloc[0] == times.iloc[-1]:
            raise InsufficientDataError(_ties(times, n))
        t1, t2 = times.iloc[min(cut1, n - 1)], times.iloc[min(cut2, n - 1)]
        parts = {
            "train": frame[times < t1],
            "valid": frame[(times >= t1) & (times < t2)],
            "test": frame[times >= t2],
        }
        if any(part.empty for part in parts.values()):
            raise InsufficientDataError(_ties(times, n))
        ranges = {k: [str(v[timestamp].min()), str(v[timestamp].max())] for k, v in parts.items()}
    for name, part in parts.items():
        _check_split(name, part, label, signature)
    return {**{k: v.reset_index(drop=True) for k, v in parts.items()}, "time_ranges": ranges}


def _ties(times: pd.Series, n: int) -> str:
    distinct = times.nunique()
    top = times.value_counts().head(1)
    return (
        f"A split by time into train, valid and test needs rows at several distinct times; "
        f"the {n:,} rows have {distinct:,} distinct value(s) of '{times.name}' "
        f"({int(top.iloc[0]):,} rows at {top.index[0]}): tied timestamps cannot be split "
        "(give finer timestamps, or leave timestamp unset to split at random)."
    )


def _check_split(name: str, part: pd.DataFrame, label: str, signature: Signature) -> None:
    y = part[label].to_numpy()
    if signature.task == "binary":
        positives = int(y.sum())
        if positives == 0 or positives == len(y):
            raise InsufficientDataError(
                f"The {name} split has {len(y):,} rows with {positives} of class "
                f"'{signature.classes[1]}' and {len(y) - positives} of '{signature.classes[0]}' "
                f"in '{label}'; each split needs both classes. Use more data or a wider window."
            )
    elif len(y) < 2:
        raise InsufficientDataError(f"The {name} split has {len(y)} row(s); it needs several.")


def _matrix(signature: Signature, frame: pd.DataFrame) -> Any:
    from driftloop.registry import encode_frame

    return encode_frame(signature, frame).matrix


def search_step(p: TrainingPipeline, state: State) -> State:
    signature = _signature(state)
    train, valid, label = state["train"], state["valid"], signature.label or ""
    if p.settings.compute.engine != "local":
        engine = open_engine(p.settings.compute)
        try:
            result = shared_search(
                engine,
                search_storage_url(p.settings),
                f"{p.name}-{p.step_key}",
                p.estimator_for(signature.task),
                (_matrix(signature, train), train[label].to_numpy()),
                (_matrix(signature, valid), valid[label].to_numpy()),
                signature=signature,
                trials=p.search_trials,
                timeout_s=p.search_timeout_s,
                seed=p.seed,
                space=p.search_space,
            )
        finally:
            engine.close()
        return {"search": result}
    result = search(
        p.estimator_for(signature.task),
        (_matrix(signature, train), train[label].to_numpy()),
        (_matrix(signature, valid), valid[label].to_numpy()),
        signature=signature,
        trials=p.search_trials,
        timeout_s=p.search_timeout_s,
        seed=p.seed,
        space=p.search_space,
    )
    return {"search": result}


def fit(p: TrainingPipeline, state: State) -> State:
    signature = _signature(state)
    train, label = state["train"], signature.label or ""
    params = {**p.config.params, **p.params, **(state.get("search") or {}).get("params", {})}
    if p.settings.compute.engine != "local" and p.estimator is None:
        model = _fit_on_ray(p, signature, params, train, label)
    else:
        model = fit_estimator(
            p.estimator_for(signature.task),
            params,
            _matrix(signature, train),
            train[label].to_numpy(),
            signature,
        )
    flavor = flavor_for(model)
    signature = with_task(flavor, model, signature)
    files = flavor.save(model, signature)
    out: State = {
        "flavor": flavor.name,
        "params": params,
        "artifact_model": files["model"],
        "fitted_signature": signature.to_json(),
    }
    if "onnx" in files:
        out["artifact_onnx"] = files["onnx"]
    return out


# Parameters of LightGBM's scikit-learn wrapper that lgb.train does not take.
_WRAPPER_ONLY = {"boosting_type", "class_weight", "importance_type", "objective", "n_jobs"}


def _fit_on_ray(
    p: TrainingPipeline, signature: Signature, params: dict[str, Any], train: Any, label: str
) -> Any:
    """The default LightGBM model trained data-parallel on the cluster (Ray Train), with
    the default estimator's parameters under the model's own: a Booster."""
    defaults = p.estimator_for(signature.task).get_params()
    merged = {
        k: v for k, v in {**defaults, **params}.items() if v is not None and k not in _WRAPPER_ONLY
    }
    engine = open_engine(p.settings.compute)
    try:
        y = train[label].to_numpy()
        return fit_lightgbm_on_ray(
            merged,
            _matrix(signature, train),
            y,
            signature,
            task=signature.task,
            classes=max(len(signature.classes), int(np.max(y)) + 1 if len(y) else 1),
            workers=engine.workers,
            storage=p.settings.state_dir() / "ray-train",
            name=f"{p.name}-{p.step_key}",
            max_failures=p.settings.compute.max_failures,
            checkpoint_every=p.settings.compute.checkpoint_every,
        )
    finally:
        engine.close()


def loaded(state: State) -> LoadedModel:
    """The fitted model, loaded complete as the server will load it."""
    files = {"model": state["artifact_model"]}
    if state.get("artifact_onnx") is not None:
        files["onnx"] = state["artifact_onnx"]
    signature = Signature.from_json(state["fitted_signature"])
    return FLAVORS[state["flavor"]].load(files, signature)


def evaluate_step(p: TrainingPipeline, state: State) -> State:
    """Held-out metrics of the model and of the trivial baseline on the same rows; per
    segment; single-feature skill (a leak shows as a feature that alone is perfect);
    the per-row scoring latency."""
    model, train, test = loaded(state), state["train"], state["test"]
    signature = model.signature
    label, metric = signature.label or "", signature.metric or TASKS[model.task].default_metric
    y = test[label].to_numpy()
    threshold = p.settings.monitoring.decision_threshold
    metrics = evaluate_model(model, test, y, threshold=threshold)
    prior = baseline(TASKS[model.task], train[label].to_numpy(), classes=signature.classes)
    base = evaluate(prior.outputs(len(y)), y, threshold=threshold)
    segment = p.config.segment
    if segment and segment in test.columns:
        metrics["segments"] = segment_metrics(model, test, y, test[segment], threshold=threshold)
    leaks = single_feature_skill(
        signature, train, test, label=label, metric=metric, baseline_value=base.get(metric)
    )
    return {
        "metrics": metrics,
        "baseline_metrics": base,
        "single_feature_skill": leaks,
        "latency": latency_ms(model, _matrix(signature, test)),
    }


def release(p: TrainingPipeline, registry: Registry, state: State) -> State:
    model, test = loaded(state), state["test"]
    signature = model.signature
    label = signature.label or ""
    champion = champion_version(registry, p.model_name)
    champion_outputs, problems = None, []
    if champion is not None:
        problems = signature.incompatibilities(champion.signature)
        inputs = champion.signature.inputs
        if not problems and all(name in test.columns for name in inputs):
            champion_outputs = registry.load(champion.name, champion.version).predict_frame(test)
    attribute = p.gates.sensitive_attribute
    report = release_gates(
        p.gates,
        metric=signature.metric or TASKS[model.task].default_metric,
        y_true=test[label].to_numpy(),
        outputs=model.predict_frame(test),
        baseline_metrics=state["baseline_metrics"],
        champion_outputs=champion_outputs,
        sensitive=test[attribute].to_numpy() if attribute and attribute in test.columns else None,
        single_feature_skill=state["single_feature_skill"],
        latency_ms=state["latency"]["latency_ms"],
        signature_problems=problems,
        threshold=p.settings.monitoring.decision_threshold,
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


def _prediction_classes(outputs: Outputs) -> State:
    """A multiclass model's held-out rows per predicted class: the mix monitoring compares
    the live predicted classes with."""
    if outputs.task != "multiclass":
        return {}
    counts = np.bincount(outputs.class_index, minlength=len(outputs.classes))
    return {"prediction_classes": dict(zip(outputs.classes, map(int, counts), strict=True))}


def register(p: TrainingPipeline, registry: Registry, state: State) -> State:
    """Register the model (alias ``challenger`` when the release gates passed).

    A run killed after the registry commit but before this step's checkpoint finds its
    version again by the ``run_id`` tag instead of registering it twice.
    """
    run_id = hashlib.sha256(state["artifact_model"]).hexdigest()[:16]
    for existing in registry.versions(p.model_name):
        if existing.tags.get("run_id") == run_id:
            return {"version": existing.version}
    model, train, test = loaded(state), state["train"], state["test"]
    features = model.feature_names
    # Inputs as they were, held-out scores as the model gives them: what live windows
    # are compared against.
    outputs = model.predict_frame(test)
    profile = Profile.from_frame(train[features], predictions=outputs.score)
    hashed = pd.util.hash_pandas_object(train, index=False).to_numpy()
    lineage = {
        "training_set_hash": hashlib.sha256(np.ascontiguousarray(hashed).tobytes()).hexdigest(),
        "feature_views": {
            f.name: [f.view, f.view_version] for f in model.signature.features if f.view
        }
        or None,
        "entity_keys": state.get("entity_keys") or None,  # what serving enriches by
        "time_range": state["time_ranges"].get("train"),
        "splits": state["time_ranges"],
        "data": p.source.describe(),
        "git_commit": _git_commit(p.settings.root),
        "parent_version": state["reference"] or state["champion"],
        "champion_at_gates": state["champion"],
        "notes": state.get("notes") or None,
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
        signature=model.signature,
        params=state["params"],
        metrics={
            **state["metrics"],
            **state["latency"],
            **_prediction_classes(outputs),
            "baseline": state["baseline_metrics"],
            "single_feature_skill": state["single_feature_skill"],
        },
        tags={"pipeline": p.name, "run_id": run_id},
        lineage=lineage,
        gate_report=gate_report,
        profile=profile,
        created_by=f"pipeline:{p.name}",
        alias="challenger" if passed else None,
        alias_reason="release gates passed" if passed else "",
        tenant=p.settings.project.tenant,
    )
    return {"version": version.version}
