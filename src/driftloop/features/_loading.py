"""Reading a project's ``features.py``: the definitions it declares at module level."""

from __future__ import annotations

import importlib.util
import sys
import uuid
from pathlib import Path
from typing import Any

from driftloop.core.errors import InvalidParameterError, NotFoundError
from driftloop.features._catalog import Definition
from driftloop.features._definitions import Entity, FeatureView
from driftloop.features._on_demand import OnDemandFeature
from driftloop.features._windows import StreamFeatureView

__all__ = ["definitions_in", "load_definitions"]


def definitions_in(namespace: dict[str, Any]) -> list[Definition]:
    """The Entity / view / on-demand objects among a module's globals, in order."""
    found: list[Definition] = []
    seen: set[int] = set()
    kinds = Entity | FeatureView | StreamFeatureView | OnDemandFeature
    for value in namespace.values():
        if isinstance(value, kinds) and id(value) not in seen:
            seen.add(id(value))
            found.append(value)
    return found


def load_definitions(path: str | Path) -> list[Definition]:
    """Import ``path`` and return its Entity / view / on-demand objects, in file order."""
    file = Path(path)
    if not file.is_file():
        raise NotFoundError(f"Feature definitions file {file} does not exist.")
    name = f"_driftloop_features_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise InvalidParameterError(f"Cannot import {file} as Python.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and inspect look modules up by name
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        raise InvalidParameterError(f"{file} is not valid Python: {exc}") from exc
    found = definitions_in(vars(module))
    if not found:
        raise InvalidParameterError(
            f"{file} defines no Entity, FeatureView, StreamFeatureView or OnDemandFeature."
        )
    return found
