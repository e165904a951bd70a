"""The demo's retrainer: the project's training pipeline over the labels known at the
end of the retraining window, or, when the story asks for it, a broken release."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from driftloop.core.config import Settings
from driftloop.data import StoryData
from driftloop.loop import PipelineRetrainer, Trained
from driftloop.registry import Registry

__all__ = ["StoryRetrainer", "register_broken"]


class StoryRetrainer:
    """The project's training pipeline, over the labels known at the end of the window
    (the label file is rewritten first: no retraining learns a label from the future).
    When :attr:`broken_next` is set, the next retraining instead registers a broken
    release (see :func:`register_broken`)."""

    def __init__(self, story: StoryData, settings: Settings, registry: Registry) -> None:
        self.story = story
        self.settings = settings
        self.registry = registry
        self.pipeline = PipelineRetrainer(settings, registry, check_drift=False)
        self.broken_next = False
        self.broken_version: int | None = None

    def retrain(self, model: str, start: datetime, end: datetime) -> Trained:
        if self.broken_next:
            self.broken_next = False
            self.broken_version = register_broken(self.registry, model)
            report = self.registry.get(model, self.broken_version).gate_report or {}
            return Trained(self.broken_version, dict(report))
        known = pd.Timestamp(end).tz_convert(None) if pd.Timestamp(end).tzinfo else end
        self.story.write_labels(self.settings.root / "data", pd.Timestamp(known))
        return self.pipeline.retrain(model, start, end)


def register_broken(registry: Registry, model: str) -> int:
    """Register a broken release of ``model``: a rebuild of the champion whose category
    encoder was fitted on an empty extract (every value missing), so it answers a row of
    missing values (the server's warm-up) and raises on every real row. It carries the
    gate report of the champion it was rebuilt from, as a hand-made release would: the
    offline gates never saw this build."""
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    champion = registry.aliases(model)["champion"]
    source = registry.get(model, champion)
    width = len(source.signature.names)
    empty = np.full((2, width), np.nan)
    if source.signature.task == "regression":
        estimator = LinearRegression()
    else:
        estimator = LogisticRegression()
    broken = make_pipeline(OneHotEncoder(handle_unknown="error"), estimator)
    broken.fit(empty, np.array([0, 1]))
    version = registry.register(
        model,
        broken,
        signature=source.signature,
        gate_report=source.gate_report,
        lineage={"rebuilt_from": champion, "defect": "encoder fitted on an empty extract"},
        created_by="demo",
    )
    return version.version
