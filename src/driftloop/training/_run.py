"""One call for scripts, the CLI and the demo: train a model, register it, promote it."""

from __future__ import annotations

from typing import Any

from driftloop.core.config import Settings
from driftloop.registry import Registry
from driftloop.training._pipeline import PipelineResult, StepCallback, TrainingPipeline

__all__ = ["train_and_promote"]


def train_and_promote(
    settings: Settings,
    name: str,
    *,
    alias: str | None = "champion",
    who: str = "driftloop",
    on_step: StepCallback | None = None,
    **pipeline_options: Any,
) -> tuple[PipelineResult, bool]:
    """Run the training pipeline of model ``name`` (its ``[models.<name>]`` section, or
    ``config=`` / ``source=`` among ``pipeline_options``) and move ``alias`` to the new
    version when its release gates passed and the alias is not already there
    (``alias=None``: register only). Returns the result and whether the alias moved."""
    registry = Registry.from_settings(settings)
    try:
        pipeline = TrainingPipeline.from_settings(
            settings, name, registry=registry, **pipeline_options
        )
        result = pipeline.run(on_step=on_step)
        version = result.version
        if alias is None or version is None or not result.gate_report.get("passed"):
            return result, False
        if registry.aliases(name).get(alias) == version.version:
            return result, False
        registry.set_alias(
            name, alias, version.version, who=who, why="trained; all release gates passed"
        )
        return result, True
    finally:
        registry.close()
