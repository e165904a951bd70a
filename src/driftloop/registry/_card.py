"""The generated Markdown model card of a version."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from driftloop.registry._signature import FeatureSpec
from driftloop.registry._types import ModelVersion

__all__ = ["model_card"]


def _fmt(value: Any) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) >= 1:
        return f"{int(value):,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | tuple) and len(value) == 2:
        return f"{value[0]} to {value[1]}"
    return str(value)


def _metric_table(metrics: Mapping[str, Any]) -> list[str]:
    scalars = {
        k: v for k, v in metrics.items() if isinstance(v, int | float) and not k.endswith("_se")
    }
    if not scalars:
        return ["_No metrics recorded._"]
    found = metrics.get("baseline")
    baseline: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    lines = ["| metric | value | trivial baseline |", "| --- | --- | --- |"]
    lines += [
        f"| {k} | {_fmt(v)} | {_fmt(baseline[k]) if k in baseline else ''} |"
        for k, v in sorted(scalars.items())
    ]
    return lines


def _segments(metrics: Mapping[str, Any]) -> list[str]:
    segments = metrics.get("segments")
    if not isinstance(segments, Mapping) or not segments:
        return ["_No per-segment metrics recorded._"]
    columns = sorted({k for seg in segments.values() for k in seg})
    lines = ["| segment | " + " | ".join(columns) + " |", "| --- |" + " --- |" * len(columns)]
    for name, seg in sorted(segments.items()):
        lines.append(f"| {name} | " + " | ".join(_fmt(seg.get(c, "")) for c in columns) + " |")
    return lines


def _gates(report: Mapping[str, Any] | None) -> list[str]:
    if not report:
        return ["_No release gates were run for this version._"]
    verdict = "passed" if report.get("passed") else "FAILED"
    lines = [f"Overall: **{verdict}**.", "", "| check | result | value | threshold | detail |"]
    lines.append("| --- | --- | --- | --- | --- |")
    for check in report.get("checks", []):
        result = "pass" if check.get("passed") else "FAIL"
        lines.append(
            f"| {check.get('name')} | {result} | {_fmt(check.get('value'))} | "
            f"{_fmt(check.get('threshold'))} | {check.get('detail', '')} |"
        )
    return lines


def _input(spec: FeatureSpec) -> str:
    if spec.derived_from is not None:
        return f"`{spec.name}` ({spec.part} of {spec.derived_from})"
    if spec.kind == "category":
        shown = ", ".join(spec.categories[:5]) + (", ..." if len(spec.categories) > 5 else "")
        return f"`{spec.name}` (category: {shown})"
    return f"`{spec.name}` ({spec.kind})"


def model_card(version: ModelVersion) -> str:
    """Markdown: intended use, data, metrics (overall and by segment), gates, caveats."""
    lineage = version.lineage
    tags = version.tags
    signature = version.signature
    what = {
        "binary": f"the probability of class '{signature.classes[-1]}'"
        if signature.classes
        else "the probability of the positive class",
        "multiclass": f"one of {', '.join(signature.classes)}, with a probability per class",
        "regression": "a value",
    }.get(signature.task, "an output")
    label = f" of '{signature.label}'" if signature.label else ""
    intended = tags.get(
        "intended_use",
        f"A {signature.task or 'tabular'} model{label}: predicts {what} for tabular rows; "
        "any decision comes from the policy set for it in serving.",
    )
    features = ", ".join(_input(f) for f in signature.features)
    caveats = [
        "- Scores are only valid for inputs like the training window below; watch drift "
        "against the stored reference profile.",
        "- Labels may arrive late; recent performance is provisional until they do.",
    ]
    if version.gate_report and not version.gate_report.get("passed"):
        caveats.insert(0, "- **This version failed at least one release gate.**")
    if tags.get("caveats"):
        caveats.append(f"- {tags['caveats']}")
    lines = [
        f"# Model card: {version.ref}",
        "",
        f"Flavor `{version.flavor}`, registered {version.created_at:%Y-%m-%d %H:%M UTC} "
        f"by {version.created_by}.",
        "",
        "## Intended use",
        intended,
        "",
        "## Data",
        f"- Training window: {_fmt(lineage.get('time_range', 'unknown'))}",
        f"- Training-set fingerprint: `{lineage.get('training_set_hash', 'unknown')}`",
        f"- Feature views: {lineage.get('feature_views') or 'plain frame (no feature view)'}",
        f"- Code version: {lineage.get('git_commit') or 'unknown'}",
        f"- Parent version: {lineage.get('parent_version') or 'none'}",
        f"- Inputs: {features}",
        "",
        f"## Metrics (held-out test window; judged on `{signature.metric or 'roc_auc'}`)",
        *_metric_table(version.metrics),
        "",
        "### By segment",
        *_segments(version.metrics),
        "",
        "## Release gates",
        *_gates(version.gate_report),
        "",
        "## Caveats",
        *caveats,
        "",
    ]
    return "\n".join(lines)
