"""Where the server's models come from.

The registry (another part) hands the server versions by name and alias, each a complete
:class:`~driftloop.registry.LoadedModel`; the server only relies on the small
:class:`ModelSource` protocol so that it can also serve models given in memory
(embedding, tests) or LightGBM files in a folder.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import orjson

from driftloop.core.errors import AliasNotFoundError, ModelNotFoundError
from driftloop.registry import LightGBMFlavor, LoadedModel

__all__ = ["DirectoryModelSource", "InMemoryModelSource", "ModelSource"]


@runtime_checkable
class ModelSource(Protocol):
    """Resolves aliases to versions and loads versions."""

    def resolve(self, name: str, alias: str) -> str:
        """The version ``alias`` of model ``name`` points at now."""
        ...

    def load(self, name: str, version: str) -> LoadedModel:
        """Load one version (may be slow: called off the request path)."""
        ...


class InMemoryModelSource:
    """Models held in memory, by name, version and alias (embedding, tests, notebooks):
    loaded models, or LightGBM Boosters (served with numeric features named as in the
    Booster).

    >>> source = InMemoryModelSource()
    >>> source.set_alias("fraud", "champion", "3")
    >>> source.resolve("fraud", "champion")
    '3'
    """

    def __init__(self, *, prefer_onnx: bool = True) -> None:
        self.prefer_onnx = prefer_onnx
        self._models: dict[tuple[str, str], Any] = {}
        self._aliases: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def add(self, name: str, version: str, model: Any, *, aliases: Sequence[str] = ()) -> None:
        """Add a :class:`~driftloop.registry.LoadedModel` or a LightGBM Booster."""
        with self._lock:
            self._models[name, version] = model
            for alias in aliases:
                self._aliases[name, alias] = version

    def set_alias(self, name: str, alias: str, version: str) -> None:
        with self._lock:
            self._aliases[name, alias] = version

    def resolve(self, name: str, alias: str) -> str:
        with self._lock:
            if (name, alias) in self._aliases:
                return self._aliases[name, alias]
            known = sorted(a for n, a in self._aliases if n == name)
        if not known and not any(n == name for n, _ in self._models):
            raise ModelNotFoundError(f"Model '{name}' is unknown.")
        raise AliasNotFoundError(
            f"Model '{name}' has no alias '{alias}'. Known: {', '.join(known) or 'none'}."
        )

    def load(self, name: str, version: str) -> LoadedModel:
        with self._lock:
            model = self._models.get((name, version))
        if model is None:
            raise ModelNotFoundError(f"Model '{name}' has no version '{version}'.")
        if isinstance(model, LoadedModel):
            return model
        return LightGBMFlavor().wrap(
            model, prefer_onnx=self.prefer_onnx, name=name, version=version
        )


class DirectoryModelSource:
    """LightGBM models in a folder: ``<name>/<version>.txt`` and ``<name>/aliases.json``.

    ``aliases.json`` maps alias to version (``{"champion": "3"}``) and is read on every
    ``resolve``, so editing it moves an alias on a running server.
    """

    def __init__(self, folder: str | Path, *, prefer_onnx: bool = True) -> None:
        self.folder = Path(folder)
        self.prefer_onnx = prefer_onnx

    @staticmethod
    def save(
        folder: str | Path, name: str, version: str, booster: Any, aliases: Sequence[str] = ()
    ) -> None:
        """Write ``booster`` as ``version`` of ``name``; point ``aliases`` at it."""
        model_dir = Path(folder) / name
        model_dir.mkdir(parents=True, exist_ok=True)
        booster.save_model(str(model_dir / f"{version}.txt"))
        path = model_dir / "aliases.json"
        current: dict[str, str] = orjson.loads(path.read_bytes()) if path.exists() else {}
        current.update(dict.fromkeys(aliases, version))
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps(current))
        tmp.replace(path)  # atomic: a reader sees the old or the new file, never half

    def resolve(self, name: str, alias: str) -> str:
        path = self.folder / name / "aliases.json"
        if not path.exists():
            raise ModelNotFoundError(f"Model '{name}' is unknown (no {path}).")
        aliases: Mapping[str, str] = orjson.loads(path.read_bytes())
        if alias not in aliases:
            raise AliasNotFoundError(
                f"Model '{name}' has no alias '{alias}'. Known: {', '.join(sorted(aliases))}."
            )
        return str(aliases[alias])

    def load(self, name: str, version: str) -> LoadedModel:
        import lightgbm

        path = self.folder / name / f"{version}.txt"
        if not path.exists():
            raise ModelNotFoundError(f"Model '{name}' has no version '{version}' ({path}).")
        booster = lightgbm.Booster(model_file=str(path))
        return LightGBMFlavor().wrap(
            booster, prefer_onnx=self.prefer_onnx, name=name, version=version
        )
