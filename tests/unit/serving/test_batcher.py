"""Dynamic batching: coalesce by rows, never wait when idle, give each caller its rows."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

import httpx2
import numpy as np
import pytest

from driftloop.audit import SqliteAuditLog
from driftloop.core.config import ServingConfig
from driftloop.registry import LoadedModel
from driftloop.serving import DynamicBatcher, InMemoryModelSource, ServedModel, create_app
from serving_helpers import FEATURES, row


def test_concurrent_callers_each_get_exactly_their_own_rows() -> None:
    calls: list[int] = []

    async def run(items: Sequence[list[int]]) -> list[list[int]]:
        calls.append(sum(len(item) for item in items))
        await asyncio.sleep(0)
        return [[x * 10 for x in item] for item in items]

    async def main() -> list[list[int]]:
        batcher = DynamicBatcher(run, size=len, max_rows=16, max_wait_s=0.002)
        items = [list(range(i, i + 1 + i % 5)) for i in range(300)]
        results = await asyncio.gather(*(batcher.submit(item) for item in items))
        assert results == [[x * 10 for x in item] for item in items]
        return results

    asyncio.run(main())
    assert len(calls) < 300  # coalesced
    assert max(calls) <= 16  # the row budget counts rows, not requests


def test_a_request_larger_than_the_budget_runs_alone() -> None:
    calls: list[int] = []

    async def run(items: Sequence[list[int]]) -> list[int]:
        calls.append(sum(len(i) for i in items))
        return [len(i) for i in items]

    async def main() -> None:
        batcher = DynamicBatcher(run, size=len, max_rows=4, max_wait_s=0.001)
        assert await asyncio.gather(batcher.submit([1] * 9), batcher.submit([1])) == [9, 1]

    asyncio.run(main())
    assert calls == [9, 1]


def test_an_idle_server_does_not_wait_for_the_window() -> None:
    async def run(items: Sequence[int]) -> list[int]:
        return list(items)

    async def main() -> int:
        # a 1000 s window: if a lone request waited for it, wait_for would time out
        batcher = DynamicBatcher(run, size=lambda _: 1, max_rows=64, max_wait_s=1000.0)
        return await asyncio.wait_for(batcher.submit(7), timeout=30)

    assert asyncio.run(main()) == 7


def test_a_failing_batch_fails_its_callers_only() -> None:
    async def run(items: Sequence[int]) -> list[int]:
        if 13 in items:
            raise ValueError("unlucky")
        return list(items)

    async def main() -> None:
        batcher = DynamicBatcher(run, size=lambda _: 1, max_rows=1, max_wait_s=0.0)
        results = await asyncio.gather(
            batcher.submit(1), batcher.submit(13), batcher.submit(2), return_exceptions=True
        )
        assert results[0] == 1
        assert results[2] == 2
        assert isinstance(results[1], ValueError)

    asyncio.run(main())


def test_many_concurrent_http_requests_get_their_own_scores(
    boosters: dict[str, Any], audit: SqliteAuditLog
) -> None:
    source = InMemoryModelSource()
    source.add("fraud", "1", boosters["1"], aliases=["champion"])
    settings = ServingConfig.model_validate(
        {"batching": {"max_batch_size": 32, "max_wait_ms": 2}, "cache": {"enabled": False}}
    )
    app = create_app([ServedModel("fraud")], source, settings=settings, audit=audit, refresh_s=0)
    server = app.state.server
    rows = [row(1000 + i) for i in range(200)]

    async def main() -> list[dict[str, Any]]:
        await server.start()
        try:
            transport = httpx2.ASGITransport(app=app)
            async with httpx2.AsyncClient(transport=transport, base_url="http://t") as client:
                responses = await asyncio.gather(
                    *(
                        client.post("/v1/models/fraud/predict", json={"instances": [r]})
                        for r in rows
                    )
                )
        finally:
            await server.stop()
        return [r.json()["predictions"][0] for r in responses]

    predictions = asyncio.run(main())
    expected = boosters["1"].predict(np.array([[r[f] for f in FEATURES] for r in rows]))
    np.testing.assert_allclose([p["score"] for p in predictions], expected, atol=1e-6)
    batches = server.by_name["fraud"].current.batcher.batches
    assert batches < len(rows)
    for p, r in zip(predictions[::20], rows[::20], strict=True):
        assert audit.get(p["prediction_id"]).features == r


def test_an_item_marked_alone_does_not_hold_the_queue() -> None:
    """A big request is a batch of its own, started at once: requests that come after it
    are answered while it still runs."""
    calls: list[list[int]] = []

    async def main() -> None:
        release = asyncio.Event()

        async def run(items: Sequence[int]) -> list[int]:
            calls.append(list(items))
            if 1000 in items:
                await release.wait()
            return list(items)

        batcher = DynamicBatcher(
            run, size=lambda x: x, max_rows=64, max_wait_s=0.001, alone=lambda x: x > 64
        )
        big = asyncio.ensure_future(batcher.submit(1000))
        await asyncio.sleep(0)
        small = await asyncio.wait_for(asyncio.gather(*(batcher.submit(1) for _ in range(5))), 30)
        assert small == [1] * 5
        assert not big.done()  # the small ones did not wait for it
        release.set()
        assert await big == 1000

    asyncio.run(main())
    assert [1000] in calls  # alone in its batch
    assert all(1000 not in c for c in calls if c != [1000])


@pytest.mark.parametrize("heavy", ["explain", "rows"])
def test_a_small_request_is_answered_while_a_heavy_one_is_scored(
    boosters: dict[str, Any], audit: SqliteAuditLog, monkeypatch: pytest.MonkeyPatch, heavy: str
) -> None:
    """Explanations and big batches run off the event loop: a 1-row request is answered
    while a 1,000-row request is still being scored (held here until that is seen)."""
    entered, gate, left = threading.Event(), threading.Event(), threading.Event()
    method = "contributions" if heavy == "explain" else "predict"
    original = getattr(LoadedModel, method)

    def held(self: LoadedModel, matrix: Any, *args: Any) -> Any:
        if len(matrix) >= 1_000:
            entered.set()
            gate.wait(timeout=20)  # a guard: the test fails rather than hangs
            left.set()
        return original(self, matrix, *args)

    monkeypatch.setattr(LoadedModel, method, held)
    source = InMemoryModelSource()
    source.add("fraud", "1", boosters["1"], aliases=["champion"])
    settings = ServingConfig.model_validate({"cache": {"enabled": False}})
    app = create_app([ServedModel("fraud")], source, settings=settings, audit=audit, refresh_s=0)
    server = app.state.server
    big_body: dict[str, Any] = {"instances": [row(i) for i in range(1_000)]}
    if heavy == "explain":
        big_body["options"] = {"explain": True, "top_k": 2}

    async def main() -> tuple[int, bool, Any]:
        await server.start()
        try:
            transport = httpx2.ASGITransport(app=app)
            async with httpx2.AsyncClient(transport=transport, base_url="http://t") as client:
                big = asyncio.ensure_future(client.post("/v1/models/fraud/predict", json=big_body))
                assert await asyncio.to_thread(entered.wait, 60), "the big request never ran"
                small = await asyncio.wait_for(
                    client.post("/v1/models/fraud/predict", json={"instances": [row(5)]}), 60
                )
                still_held = not left.is_set()
                gate.set()
                return small.status_code, still_held, (await big).json()
        finally:
            gate.set()
            await server.stop()

    status, still_held, big = asyncio.run(main())
    assert status == 200
    assert still_held  # answered while the heavy request was still being scored
    assert len(big["predictions"]) == 1_000
    if heavy == "explain":
        assert all(len(p["explanation"]) == 2 for p in big["predictions"])
