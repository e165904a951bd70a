"""Content-addressed artifact storage: the sha256 of the bytes is their address.

Every ``get`` hashes what it read and refuses bytes that do not match their address, so
an artifact changed on disk or in a bucket is never loaded.

>>> store = FsspecArtifactStore("memory://doctest-artifacts")
>>> digest = store.put(b"model bytes")
>>> store.get(digest)
b'model bytes'
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Protocol, runtime_checkable

import fsspec

from driftloop.core.errors import (
    ArtifactIntegrityError,
    ConfigError,
    InvalidParameterError,
    NotFoundError,
)

__all__ = [
    "ArtifactStore",
    "FsspecArtifactStore",
    "LocalArtifactStore",
    "artifact_store_from_url",
    "sha256_hex",
]

_DIGEST = re.compile(r"^[0-9a-f]{64}$")


def sha256_hex(data: bytes) -> str:
    """The hex sha256 of ``data`` (an artifact's address)."""
    return hashlib.sha256(data).hexdigest()


@runtime_checkable
class ArtifactStore(Protocol):
    """Stores bytes under their sha256; ``get`` verifies them."""

    url: str

    def put(self, data: bytes) -> str:
        """Store ``data`` (idempotent) and return its sha256 hex digest."""
        ...

    def get(self, digest: str) -> bytes:
        """The bytes stored under ``digest``, verified; raises ArtifactIntegrityError."""
        ...

    def exists(self, digest: str) -> bool:
        """Whether bytes are stored under ``digest``."""
        ...


def _key(digest: str) -> str:
    if not _DIGEST.match(digest):
        raise InvalidParameterError(
            f"Artifact digest must be 64 lowercase hex characters; got {digest!r}."
        )
    return f"sha256/{digest[:2]}/{digest}"


def _verified(digest: str, data: bytes, where: str) -> bytes:
    actual = sha256_hex(data)
    if actual != digest:
        raise ArtifactIntegrityError(
            f"Artifact {where} has sha256 {actual}, expected {digest}: it was changed after "
            "it was stored; refusing to load it."
        )
    return data


class LocalArtifactStore:
    """Artifacts in a local folder; writes are atomic (temporary file, then rename)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.url = str(self.root)

    def _path(self, digest: str) -> Path:
        return self.root / _key(digest)

    def put(self, data: bytes) -> str:
        digest = sha256_hex(data)
        path = self._path(digest)
        if path.exists():
            return digest
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return digest

    def get(self, digest: str) -> bytes:
        path = self._path(digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise NotFoundError(f"Artifact {digest} is not in {self.root}.") from None
        return _verified(digest, data, str(path))

    def exists(self, digest: str) -> bool:
        return self._path(digest).is_file()


class FsspecArtifactStore:
    """Artifacts on any fsspec filesystem (``s3://bucket/prefix``, ``gs://...``, ``memory://``)."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        try:
            fs, path = fsspec.core.url_to_fs(self.url)
        except (ImportError, ValueError) as exc:
            raise ConfigError(
                f"Artifact root {url!r} needs an fsspec filesystem that is not available: "
                f"{exc} (for s3:// install s3fs, for gs:// install gcsfs)."
            ) from exc
        self._fs = fs
        self._root = path.rstrip("/")

    def _path(self, digest: str) -> str:
        return f"{self._root}/{_key(digest)}"

    def put(self, data: bytes) -> str:
        digest = sha256_hex(data)
        path = self._path(digest)
        if not self._fs.exists(path):
            # Object stores write a key atomically; the content address makes rewrites harmless.
            try:
                self._fs.pipe_file(path, data)
            except FileNotFoundError:  # filesystems with real folders need the parent first
                self._fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
                self._fs.pipe_file(path, data)
        return digest

    def get(self, digest: str) -> bytes:
        path = self._path(digest)
        try:
            data = self._fs.cat_file(path)
        except FileNotFoundError:
            raise NotFoundError(f"Artifact {digest} is not in {self.url}.") from None
        return _verified(digest, bytes(data), f"{self.url}/{_key(digest)}")

    def exists(self, digest: str) -> bool:
        return bool(self._fs.exists(self._path(digest)))


def artifact_store_from_url(url: str, *, root: str | Path = ".") -> ArtifactStore:
    """The store for ``artifact_root``: a plain or ``file://`` path (relative to ``root``)
    is a local folder; any other scheme goes through fsspec."""
    if "://" not in url:
        path = Path(url)
        return LocalArtifactStore(path if path.is_absolute() else Path(root) / path)
    if url.startswith("file://"):
        return LocalArtifactStore(url.removeprefix("file://"))
    return FsspecArtifactStore(url)
