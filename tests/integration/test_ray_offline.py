"""Offline work on a Ray cluster of its own (two worker processes on this machine):
partitioned training frames, batch scoring and a worker killed in the middle of a job.

Skipped with the reason when Ray is not installed (``pip install 'driftloop[ray]'``);
CI installs the extra, and DRIFTLOOP_REQUIRE_SERVICES=1 makes a missing Ray a failure.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from driftloop.compute import Engine, LocalEngine, RayEngine
from driftloop.features import FeatureStore
from partition_world import FEATURES, assert_same_frame, definitions, entity_rows, write_world
from ray_cluster import local_ray_cluster
from ray_faults import WorkerKillingEngine

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def ray_engine() -> Iterator[RayEngine]:
    with local_ray_cluster(cpus=2) as address:
        engine = RayEngine(address, max_retries=3)
        try:
            yield engine
        finally:
            engine.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ray-world")
    write_world(folder)
    return folder


def frame(world: Path, engine: Engine, parts: int) -> object:
    store = FeatureStore(definitions=definitions(world), engine=engine, partitions=parts)
    try:
        return store.training_frame(entity_rows(3_000), FEATURES)
    finally:
        store.close()


def test_ray_training_frame_equals_the_local_frame_row_for_row(
    world: Path, ray_engine: RayEngine
) -> None:
    assert ray_engine.workers == 2
    assert_same_frame(frame(world, ray_engine, 4), frame(world, LocalEngine(), 1))


def test_a_worker_killed_mid_job_costs_a_retry_not_the_frame(
    world: Path, ray_engine: RayEngine, tmp_path: Path
) -> None:
    marker = tmp_path / "killed-worker.pid"
    killing = WorkerKillingEngine(ray_engine, marker)
    got = frame(world, killing, 4)
    killed = int(marker.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(killed, 0)  # the worker that ran the first attempt is gone
    assert_same_frame(got, frame(world, LocalEngine(), 1))
