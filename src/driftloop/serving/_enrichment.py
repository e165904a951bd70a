"""Online features for a batch: one read per batch through the store's circuit breaker
and deadline; what it returns goes into the rows by each feature's rule, and a store that
cannot answer leaves the rows degraded (declared defaults, or the fallback chain)."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Sequence
from datetime import datetime

from driftloop.registry import InvalidValue
from driftloop.serving._breaker import CircuitBreaker
from driftloop.serving._errors import HttpError
from driftloop.serving._features import (
    Columns,
    FeatureSource,
    read_columns,
    uses_request_values,
)
from driftloop.serving._metrics import ServingMetrics
from driftloop.serving._scored import Deployment, Item, ServedModel
from driftloop.serving._validation import audited

__all__ = ["Enricher"]

log = logging.getLogger(__name__)


class Enricher:
    """Reads a served model's online features for its batches."""

    def __init__(
        self,
        served: ServedModel,
        features: FeatureSource,
        metrics: ServingMetrics,
        *,
        breaker: CircuitBreaker | None,
        timeout_s: float,
    ) -> None:
        self.served = served
        self.features = features
        self.metrics = metrics
        self.breaker = breaker
        self.timeout_s = timeout_s
        self.request_values = uses_request_values(features)
        self._warned = -math.inf  # when an outage was last logged

    async def read(
        self,
        deployment: Deployment,
        items: Sequence[Item],
        wanted: list[tuple[int, int, tuple[str, ...]]],
        stamps: list[list[dict[str, datetime | None]]],
    ) -> set[int] | None:
        """Read the batch's online features: the requests (indices of ``items``) left
        with a feature the store had no usable value for; None when the store could not
        answer in time (its breaker open, an error, or past ``feature_timeout_s``)."""
        breaker = self.breaker
        if breaker is not None and not breaker.allow():
            return None
        names = sorted({name for _, _, fs in wanted for name in fs})
        if self.request_values:  # on-demand features may use the request's values too
            features = deployment.spec.features
            entity_rows = []
            for k, i, absent in wanted:
                parsed = items[k].parsed
                values = parsed.raw[i] if parsed.raw is not None else parsed.matrix[i].tolist()
                entity_rows.append(
                    {
                        **{
                            f: v
                            for f, v in zip(features, values, strict=True)
                            if f not in absent and v is not None and v == v
                        },
                        **parsed.entity_rows[i],
                    }
                )
        else:
            entity_rows = [items[k].parsed.entity_rows[i] for k, i, _ in wanted]
        started = time.perf_counter()
        try:
            # the executor's future itself, not a task around to_thread: one object fewer
            # per batch, the same thread pool and deadline
            pending = asyncio.get_running_loop().run_in_executor(
                None, read_columns, self.features, entity_rows, names
            )
            read = await asyncio.wait_for(pending, self.timeout_s)
        except Exception as exc:  # down, hung or broken: the batch is answered degraded
            if breaker is not None:
                breaker.record(False, time.perf_counter() - started)
            if time.monotonic() - self._warned > 10.0:  # once per 10 s, not per batch
                self._warned = time.monotonic()
                log.warning("Online features unavailable for %s: %s", self.served.name, exc)
            return None
        if breaker is not None:
            breaker.record(True, time.perf_counter() - started)
        return self._fill(deployment, items, wanted, read, stamps)

    def degrade(self, deployment: Deployment, items: Sequence[Item]) -> None:
        """The online store did not answer: rows needing it keep their features missing.
        With declared default values the model answers with them; otherwise the
        fallback chain answers (when the model has one), flagged degraded either way."""
        for it in items:
            if not it.parsed.enrich:
                continue
            it.degraded = "features-unavailable"
            self.metrics.degraded.labels(self.served.name, it.degraded).inc()
            if self.served.missing.policy == "default":
                continue
            if deployment.rules is not None:
                it.fallback = True
            elif self.served.missing.policy == "reject":
                it.error = HttpError(
                    "unavailable",
                    f"The online feature store did not answer, and model "
                    f"'{self.served.name}' rejects rows with missing features and declares "
                    f"no fallback ([models.{self.served.name}.fallback]).",
                )

    def _fill(
        self,
        deployment: Deployment,
        items: Sequence[Item],
        wanted: list[tuple[int, int, tuple[str, ...]]],
        read: Columns,
        stamps: list[list[dict[str, datetime | None]]],
    ) -> set[int]:
        """Put read values in the rows, encoded by each feature's rule; a value that breaks
        it (a store out of step with the model) stays null and is flagged missing. The
        requests left with a feature without a value (or an unseen category)."""
        slots = deployment.spec.slots
        values, times = read
        short: set[int] = set()
        for r, (k, i, names) in enumerate(wanted):
            parsed = items[k].parsed
            row_stamps = stamps[k][i]
            matrix_row = parsed.matrix[i]
            for name in names:
                column = values.get(name)
                if column is None:  # a feature the source does not know
                    row_stamps[name] = None
                    short.add(k)
                    continue
                value = column[r]
                row_stamps[name] = times[name][r]
                slot = slots.get(name)
                if value is None or slot is None or slot.encoder is None:
                    short.add(k)
                    continue
                try:
                    number = slot.encoder.encode(value)
                except InvalidValue:
                    log.warning("Feature %s read %r, which %s", name, value, slot.encoder.rule)
                    short.add(k)
                    continue
                matrix_row[slot.column] = number
                if parsed.raw is not None:
                    parsed.raw[i][slot.column] = audited(slot.encoder, value, number)
                if number != number:
                    short.add(k)
                    if slot.encoder.unseen(value):
                        parsed.unseen.setdefault(i, []).append(name)
        return short
