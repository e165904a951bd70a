"""One battery, every ArtifactStore: content addressing and integrity on every load."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import fsspec
import pytest

from driftloop.core.errors import (
    ArtifactIntegrityError,
    ConfigError,
    InvalidParameterError,
    NotFoundError,
)
from driftloop.registry import (
    ArtifactStore,
    FsspecArtifactStore,
    LocalArtifactStore,
    artifact_store_from_url,
    sha256_hex,
)

Tamper = Callable[[str, bytes], None]


def _local(tmp_path: Path) -> tuple[ArtifactStore, Tamper]:
    store = LocalArtifactStore(tmp_path / "artifacts")

    def tamper(digest: str, data: bytes) -> None:
        (tmp_path / "artifacts" / "sha256" / digest[:2] / digest).write_bytes(data)

    return store, tamper


def _memory(tmp_path: Path) -> tuple[ArtifactStore, Tamper]:
    root = f"memory://contract-{uuid.uuid4().hex}"
    store = FsspecArtifactStore(root)
    fs = fsspec.filesystem("memory")

    def tamper(digest: str, data: bytes) -> None:
        fs.pipe_file(f"{root.removeprefix('memory:/')}/sha256/{digest[:2]}/{digest}", data)

    return store, tamper


def _fsspec_file(tmp_path: Path) -> tuple[ArtifactStore, Tamper]:
    store = FsspecArtifactStore(f"file://{tmp_path}/fs")

    def tamper(digest: str, data: bytes) -> None:
        (tmp_path / "fs" / "sha256" / digest[:2] / digest).write_bytes(data)

    return store, tamper


STORES = {"local": _local, "fsspec-memory": _memory, "fsspec-file": _fsspec_file}


@pytest.fixture(params=sorted(STORES))
def store_and_tamper(
    request: pytest.FixtureRequest, tmp_path: Path
) -> tuple[ArtifactStore, Tamper]:
    return STORES[request.param](tmp_path)


def test_bytes_are_addressed_by_their_sha256(
    store_and_tamper: tuple[ArtifactStore, Tamper],
) -> None:
    store, _ = store_and_tamper
    assert isinstance(store, ArtifactStore)
    digest = store.put(b"booster text")
    assert digest == sha256_hex(b"booster text")
    assert store.exists(digest)
    assert store.get(digest) == b"booster text"


def test_storing_the_same_bytes_twice_is_harmless(
    store_and_tamper: tuple[ArtifactStore, Tamper],
) -> None:
    store, _ = store_and_tamper
    assert store.put(b"same") == store.put(b"same")
    assert store.get(sha256_hex(b"same")) == b"same"


def test_tampered_bytes_are_refused(store_and_tamper: tuple[ArtifactStore, Tamper]) -> None:
    store, tamper = store_and_tamper
    digest = store.put(b"original model")
    tamper(digest, b"evil model")
    with pytest.raises(ArtifactIntegrityError, match="changed after it was stored"):
        store.get(digest)


def test_missing_and_malformed_digests_are_named(
    store_and_tamper: tuple[ArtifactStore, Tamper],
) -> None:
    store, _ = store_and_tamper
    absent = sha256_hex(b"never stored")
    assert not store.exists(absent)
    with pytest.raises(NotFoundError, match=absent):
        store.get(absent)
    with pytest.raises(InvalidParameterError, match="64 lowercase hex"):
        store.get("../../etc/passwd")


def test_object_storage_without_its_filesystem_package_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown-scheme-xyz"):
        FsspecArtifactStore("unknown-scheme-xyz://bucket/prefix")


def test_store_is_chosen_by_url(tmp_path: Path) -> None:
    assert isinstance(artifact_store_from_url("arts", root=tmp_path), LocalArtifactStore)
    assert isinstance(artifact_store_from_url(f"file://{tmp_path}"), LocalArtifactStore)
    assert isinstance(artifact_store_from_url("memory://x"), FsspecArtifactStore)
