"""Models from driftloop's registry: aliases resolved and versions loaded by name."""

from __future__ import annotations

from driftloop.core.errors import InvalidParameterError
from driftloop.registry import LoadedModel, Registry

__all__ = ["RegistryModelSource"]


class RegistryModelSource:
    """A :class:`~driftloop.serving.ModelSource` over a :class:`~driftloop.registry.Registry`.

    Each version is loaded complete by its flavor (LightGBM on ONNX Runtime when it
    matches the Booster to 1e-6, else on the Booster; other flavors on their own predict).
    """

    def __init__(self, registry: Registry, *, prefer_onnx: bool = True) -> None:
        self.registry = registry
        self.prefer_onnx = prefer_onnx

    def resolve(self, name: str, alias: str) -> str:
        return str(self.registry.alias_version(name, alias))  # one indexed query per poll

    def load(self, name: str, version: str) -> LoadedModel:
        try:
            number = int(version)
        except ValueError:
            raise InvalidParameterError(
                f"Registry versions are integers; got {version!r} for model '{name}'."
            ) from None
        return self.registry.load(name, number, prefer_onnx=self.prefer_onnx)
