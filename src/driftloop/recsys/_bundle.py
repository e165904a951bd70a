"""A recommender as registry artifacts, and back: ``model`` (NumPy arrays and JSON, no
pickle), ``index`` (the ANN index's bytes) and ``ranker`` (LightGBM text).

The model bundle records the sha256 of the index it was built with; loading refuses an
index with another digest, so a version's model is never served against another
version's index.
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from driftloop.core.config import RecsysConfig
from driftloop.core.errors import ArtifactIntegrityError
from driftloop.recsys._catalog import Encoding
from driftloop.recsys._features import Snapshot
from driftloop.recsys._index import ItemIndex
from driftloop.recsys._popularity import Popularity
from driftloop.recsys._ranker import Ranker
from driftloop.recsys._recommender import Recommender
from driftloop.recsys._two_tower import TwoTower
from driftloop.registry import sha256_hex

__all__ = ["from_artifacts", "to_artifacts"]

BUNDLE_FORMAT = 1


def to_artifacts(rec: Recommender) -> dict[str, bytes]:
    index = rec.index.to_bytes()
    snap = rec.snapshot
    meta = {
        "format": BUNDLE_FORMAT,
        "name": rec.name,
        "encoding": rec.encoding.to_json(),
        "items": list(rec.items),
        "dim": rec.model.dim,
        "sizes": rec.model.sizes,
        "temperature": rec.temperature,
        "index_sha256": sha256_hex(index),
        "config": rec.config.model_dump(),
        "cohort": list(rec.popularity.cohort),
        "cohort_keys": sorted(rec.popularity.cohorts),
        "snapshot_at": snap.at.isoformat(),
        "item_tags": [sorted(t) for t in snap.item_tags],
        "history": {u: list(h) for u, h in snap.history.items()},
        "user_mean_rating": dict(snap.user_mean_rating),
        "users": {u: dict(f) for u, f in rec.users.items()},
    }
    arrays: dict[str, NDArray[Any]] = {
        "meta": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
        "content": rec.content,
        "freshness": rec.freshness,
        "item_count": snap.item_count,
        "item_recent_count": snap.item_recent_count,
        "item_mean_rating": snap.item_mean_rating,
        "item_year": snap.item_year,
        **rec.popularity.to_arrays(),
        **{f"tower/{k}": v for k, v in rec.model.weights().items()},
    }
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)  # type: ignore[arg-type]
    files = {"model": buffer.getvalue(), "index": index}
    if rec.ranker is not None:
        files["ranker"] = rec.ranker.to_bytes()
    return files


def from_artifacts(files: dict[str, bytes], name: str, version: str) -> Recommender:
    """The recommender of one version from its artifacts (already verified by the
    registry), refusing an index that is not the one its model was built with."""
    with np.load(io.BytesIO(files["model"]), allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(arrays.pop("meta").tobytes())
    if sha256_hex(files["index"]) != meta["index_sha256"]:
        raise ArtifactIntegrityError(
            f"Recommender '{name}' version {version}: its index has sha256 "
            f"{sha256_hex(files['index'])[:12]}, but its model was built with index "
            f"{meta['index_sha256'][:12]}; a model is only served with its own index."
        )
    items = tuple(meta["items"])
    config = RecsysConfig.model_validate(meta["config"])
    weights = {k.removeprefix("tower/"): v for k, v in arrays.items() if k.startswith("tower/")}
    model = TwoTower.from_weights(meta["sizes"], meta["dim"], weights)
    snapshot = Snapshot(
        at=pd.Timestamp(meta["snapshot_at"]),
        items=items,
        item_count=arrays["item_count"],
        item_recent_count=arrays["item_recent_count"],
        item_mean_rating=arrays["item_mean_rating"],
        item_year=arrays["item_year"],
        item_tags=tuple(frozenset(t) for t in meta["item_tags"]),
        history={u: tuple(h) for u, h in meta["history"].items()},
        user_mean_rating=meta["user_mean_rating"],
    )
    popularity = Popularity.from_arrays(arrays, items, meta["cohort_keys"], tuple(meta["cohort"]))
    return Recommender(
        name=name,
        version=version,
        encoding=Encoding.from_json(meta["encoding"]),
        items=items,
        model=model,
        index=ItemIndex.from_bytes(files["index"], meta["dim"], ef=config.index.ef),
        ranker=Ranker.from_bytes(files["ranker"]) if "ranker" in files else None,
        popularity=popularity,
        snapshot=snapshot,
        users=meta["users"],
        content=arrays["content"],
        freshness=arrays["freshness"],
        config=config,
        temperature=meta["temperature"],
    )
