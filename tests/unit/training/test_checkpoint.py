from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from driftloop.core.errors import ArtifactIntegrityError
from driftloop.training import CheckpointStore


def test_a_step_killed_while_writing_leaves_nothing_that_looks_finished(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    # What a kill in the middle of put() leaves behind: a temporary folder, no manifest.
    partial = tmp_path / "fit" / ".tmp-abc"
    partial.mkdir(parents=True)
    (partial / "model.bin").write_bytes(b"half")
    assert store.get("fit", "k1") is None
    stored = store.put("fit", "k1", {"model": b"booster", "params": {"a": 1}})
    again = store.get("fit", "k1")
    assert again is not None
    assert again["model"] == b"booster"
    assert again["params"] == {"a": 1}
    assert again.digest == stored.digest


def test_frames_round_trip_and_a_changed_checkpoint_file_is_refused(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    frame = pd.DataFrame({"amount": [1.0, 2.0], "when": pd.to_datetime(["2025-01-01"] * 2)})
    store.put("split", "k", {"train": frame})
    found = store.get("split", "k")
    assert found is not None
    pd.testing.assert_frame_equal(found["train"], frame)
    (tmp_path / "split" / "k" / "train.parquet").write_bytes(b"not parquet")
    fresh = store.get("split", "k")
    assert fresh is not None
    with pytest.raises(ArtifactIntegrityError, match="delete the folder"):
        fresh["train"]
