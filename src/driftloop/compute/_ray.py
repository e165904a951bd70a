"""``RayEngine``: a job's tasks on a Ray cluster (the ``ray`` extra).

Ray is imported when the engine first connects, never when driftloop is imported. A task
runs as a Ray task with one CPU; a task whose worker process dies is run again on
another worker (``max_retries`` times), so a killed worker costs time, not the job.
Batch scoring streams Parquet or CSV files through Ray Data (``map_batches`` with a pool
of actors, each building its function once).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from driftloop.compute._engine import BatchFunction, BatchSource, batch_source
from driftloop.core.errors import BackendUnavailableError, ConfigError

__all__ = ["RayEngine", "import_ray"]

T = TypeVar("T")
R = TypeVar("R")


def import_ray() -> Any:
    """The ``ray`` module, or an error that says how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "compute.engine = 'ray' needs Ray, which is not installed: "
            "pip install 'driftloop[ray]'."
        ) from None
    return ray


def _call(fn: Callable[[T], R], item: T) -> R:
    return fn(item)


class _Batches:
    """A Ray Data actor: builds the batch function once, then maps batches through it."""

    def __init__(self, make_fn: Callable[[], BatchFunction]) -> None:
        self._fn = make_fn()

    def __call__(self, batch: Any) -> Any:
        return self._fn(batch)


class RayEngine:
    """Tasks on the Ray cluster at ``address`` (see ``[compute]`` in the settings).

    ``address="local"`` starts a one-machine cluster for this process, bounded by
    ``num_cpus`` and ``object_store_mb``, stopped by :meth:`close`; any other address
    joins a running cluster (``auto``: the one this machine joined with ``ray start``).
    ``concurrency`` caps the tasks of one job in flight at once (a job's share of a
    shared cluster; unset: as many as the cluster runs).
    """

    name = "ray"

    def __init__(
        self,
        address: str = "auto",
        *,
        num_cpus: int | None = None,
        object_store_mb: int | None = None,
        max_retries: int = 3,
        concurrency: int | None = None,
    ) -> None:
        self.address = address
        self.concurrency = concurrency
        self.num_cpus = num_cpus
        self.object_store_mb = object_store_mb
        self.max_retries = max_retries
        self._ray: Any = None
        self._started = False

    def connect(self) -> Any:
        """Join (or start) the cluster once; the ``ray`` module."""
        if self._ray is not None:
            return self._ray
        ray = import_ray()
        if not ray.is_initialized():
            options: dict[str, Any] = {
                "include_dashboard": False,
                "logging_level": logging.WARNING,
                "log_to_driver": False,
            }
            if self.address == "local":
                options["num_cpus"] = self.num_cpus
                if self.object_store_mb is not None:
                    options["object_store_memory"] = self.object_store_mb * 1024 * 1024
            else:
                options["address"] = self.address
            try:
                ray.init(**options)
            except (ConnectionError, RuntimeError) as exc:
                raise BackendUnavailableError(
                    f"Ray cluster at compute.address = {self.address!r} is unreachable: {exc}. "
                    "Start one (ray start --head) or set compute.address."
                ) from exc
            self._started = True
        self._ray = ray
        return ray

    @property
    def workers(self) -> int:
        ray = self.connect()
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        return min(cpus, self.concurrency) if self.concurrency else cpus

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        ray = self.connect()
        task = ray.remote(num_cpus=1, max_retries=self.max_retries)(_call)
        shared = ray.put(fn)
        if not self.concurrency:
            return list(ray.get([task.remote(shared, item) for item in items]))
        refs: list[Any] = []
        for item in items:  # at most `concurrency` unfinished: submit one as one finishes
            if len(refs) >= self.concurrency:
                ray.wait(refs, num_returns=len(refs) - self.concurrency + 1)
            refs.append(task.remote(shared, item))
        return list(ray.get(refs))

    def map_batches(
        self,
        make_fn: Callable[[], BatchFunction],
        source: str | Sequence[str] | BatchSource,
        destination: Path,
        *,
        batch_rows: int,
    ) -> int:
        import pyarrow.parquet as pq

        ray = self.connect()
        # the command reports progress itself: no Ray Data progress lines on the console
        ray.data.DataContext.get_current().enable_progress_bars = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        files = batch_source(source)
        paths = files.paths if isinstance(files.paths, str) else list(files.paths)
        if files.format == "csv":
            dataset = ray.data.read_csv(paths, **files.csv_options())
        else:
            dataset = ray.data.read_parquet(paths)
        scored = dataset.map_batches(
            _Batches,
            fn_constructor_args=(make_fn,),
            batch_size=batch_rows,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=self.workers),
            num_cpus=1,
        )
        destination = destination.resolve()  # workers run in folders of their own
        scored.write_parquet(str(destination))
        return sum(pq.ParquetFile(part).metadata.num_rows for part in destination.glob("*.parquet"))

    def close(self) -> None:
        if self._started and self._ray is not None:
            self._ray.shutdown()
        self._ray, self._started = None, False
