"""Step outputs stored content-addressed under the hash of their inputs.

A step's outputs (frames as Parquet, bytes, JSON values) are written to a temporary
folder, then renamed into place in one step, with a manifest holding the sha256 of every
file: a step killed half way leaves nothing that looks finished, and a finished step is
found again by its key.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from driftloop.core.errors import ArtifactIntegrityError

__all__ = ["CheckpointStore", "StepOutputs", "fingerprint"]

MANIFEST = "manifest.json"


def fingerprint(*parts: Any) -> str:
    """A sha256 of JSON-serialisable parts (sorted keys, so dict order does not matter)."""
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class StepOutputs(Mapping[str, Any]):
    """The outputs of a finished step, read from disk on first access."""

    def __init__(self, folder: Path, manifest: Mapping[str, Any]) -> None:
        self.folder = folder
        self.manifest = manifest
        self._cache: dict[str, Any] = dict(manifest["values"])

    @property
    def digest(self) -> str:
        return str(self.manifest["digest"])

    def __getitem__(self, key: str) -> Any:
        if key in self._cache:
            return self._cache[key]
        entry = self.manifest["files"][key]
        path = self.folder / entry["file"]
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise ArtifactIntegrityError(
                f"Checkpoint file {path} does not match its recorded sha256; delete the "
                f"folder {self.folder} to recompute this step."
            )
        value: Any = pd.read_parquet(path) if entry["kind"] == "frame" else data
        self._cache[key] = value
        return value

    def __iter__(self) -> Iterator[str]:
        yield from self.manifest["values"]
        yield from self.manifest["files"]

    def __len__(self) -> int:
        return len(self.manifest["values"]) + len(self.manifest["files"])


class CheckpointStore:
    """Finished steps of pipelines in a folder: ``<folder>/<step>/<key>/``."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def _path(self, step: str, key: str) -> Path:
        return self.folder / step / key

    def get(self, step: str, key: str) -> StepOutputs | None:
        """The outputs of ``step`` computed from inputs hashed to ``key``, if finished."""
        path = self._path(step, key)
        try:
            manifest = json.loads((path / MANIFEST).read_text())
        except FileNotFoundError:
            return None
        return StepOutputs(path, manifest)

    def discard(self, step: str, key: str) -> None:
        """Forget a finished step, so that it runs again."""
        shutil.rmtree(self._path(step, key), ignore_errors=True)

    def put(self, step: str, key: str, outputs: Mapping[str, Any]) -> StepOutputs:
        """Store a step's outputs atomically; frames, bytes and JSON values are accepted."""
        target = self._path(step, key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tmp-"))
        try:
            values: dict[str, Any] = {}
            files: dict[str, dict[str, str]] = {}
            for name, value in outputs.items():
                if isinstance(value, pd.DataFrame):
                    file, kind = f"{name}.parquet", "frame"
                    value.to_parquet(tmp / file, index=False)
                elif isinstance(value, bytes):
                    file, kind = f"{name}.bin", "bytes"
                    (tmp / file).write_bytes(value)
                else:
                    values[name] = json.loads(json.dumps(value, default=str))
                    continue
                digest = hashlib.sha256((tmp / file).read_bytes()).hexdigest()
                files[name] = {"file": file, "kind": kind, "sha256": digest}
            manifest = {"step": step, "key": key, "values": values, "files": files}
            manifest["digest"] = fingerprint(values, {k: f["sha256"] for k, f in files.items()})
            (tmp / MANIFEST).write_text(json.dumps(manifest, sort_keys=True))
            for path in tmp.iterdir():
                with path.open("rb") as fh:
                    os.fsync(fh.fileno())
            if target.exists():  # an earlier run finished the same step: keep it
                shutil.rmtree(tmp)
            else:
                os.rename(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        stored = self.get(step, key)
        assert stored is not None
        return stored
