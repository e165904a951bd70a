"""The compute part: engines chosen by settings, Ray never imported unless asked for."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from driftloop.compute import LocalEngine, RayEngine, open_engine
from driftloop.core.config import ComputeConfig, load_settings
from driftloop.core.errors import ConfigError


def test_importing_driftloop_never_imports_ray() -> None:
    code = (
        "import sys, driftloop, driftloop.compute, driftloop.features, driftloop.training, "
        "driftloop.cli; print('ray' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_default_engine_is_local_and_needs_no_cluster() -> None:
    settings = load_settings(environ={})
    assert settings.compute.engine == "local"
    assert isinstance(open_engine(settings.compute), LocalEngine)


def test_ray_settings_come_from_the_environment() -> None:
    settings = load_settings(
        environ={
            "DRIFTLOOP_COMPUTE__ENGINE": "ray",
            "DRIFTLOOP_COMPUTE__ADDRESS": "ray://head.internal:10001",
            "DRIFTLOOP_COMPUTE__PARTITIONS": "16",
        }
    )
    engine = open_engine(settings.compute)
    assert isinstance(engine, RayEngine)
    assert engine.address == "ray://head.internal:10001"
    assert settings.compute.partitions == 16


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("ENGINE", "spark", "compute.engine"),
        ("ADDRESS", "head-without-port", "compute.address"),
        ("ADDRESS", "ray://head:99999", "compute.address"),
        ("PARTITIONS", "0", "compute.partitions"),
        ("MAX_FAILURES", "-1", "compute.max_failures"),
        ("CHECKPOINT_EVERY", "0", "compute.checkpoint_every"),
    ],
)
def test_bad_compute_settings_are_refused_naming_the_key(
    key: str, value: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(environ={f"DRIFTLOOP_COMPUTE__{key}": value})


def test_local_map_keeps_the_items_order() -> None:
    assert LocalEngine().map(str, [3, 1, 2]) == ["3", "1", "2"]


def test_local_map_batches_writes_every_row_once(tmp_path: Path) -> None:
    source = tmp_path / "in.parquet"
    pq.write_table(pa.table({"x": list(range(1_000))}), source)

    def make_fn():  # type: ignore[no-untyped-def]
        return lambda batch: batch.append_column("y", pa.compute.multiply(batch["x"], 2))

    written = LocalEngine().map_batches(make_fn, str(source), tmp_path / "out", batch_rows=300)
    out = pq.read_table(tmp_path / "out").sort_by("x")
    assert written == 1_000
    assert out["y"].to_pylist() == [2 * x for x in range(1_000)]


def test_a_default_compute_config_is_valid() -> None:
    config = ComputeConfig()
    assert config.address == "auto"
    # a training worker that dies restarts the group twice, from checkpoints every 10 rounds
    assert (config.max_failures, config.checkpoint_every) == (2, 10)


def test_a_ray_engine_is_built_without_touching_a_cluster() -> None:
    engine = RayEngine("ray://nowhere.invalid:10001", concurrency=1)
    assert engine.concurrency == 1
    engine.close()  # never connected: nothing to let go of
