"""The online store (a real Redis, our own) stopped under load, then started again: every
request is answered (degraded while it is down), and answers are normal again once it is
back, without restarting anything."""

from __future__ import annotations

import shutil
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from driftloop.audit import SqliteAuditLog
from driftloop.core.config import FallbackPolicy, ServingConfig
from driftloop.serving import FeatureStoreSource, InMemoryModelSource, ServedModel, create_app
from own_redis import OwnRedis
from serving_helpers import card_store, row, train

pytestmark = pytest.mark.integration
T = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_redis_stopped_mid_load_gives_degraded_answers_then_normal_ones(tmp_path: Path) -> None:
    redis = OwnRedis(tmp_path / "redis")
    redis.start()
    try:
        store = card_store(redis.url, tmp_path)
        store.push(
            "card_stats",
            [{"card_id": f"c{i}", "ts": T, "count_1d": 3.0, "amount_7d": 25.0} for i in range(8)],
        )
        source = InMemoryModelSource()
        source.add("fraud", "1", train(1), aliases=["champion"])
        audit = SqliteAuditLog(tmp_path / "audit.db")
        settings = ServingConfig.model_validate(
            {"cache": {"enabled": False}, "breaker": {"min_requests": 5, "open_s": 0.5}}
        )
        app = create_app(
            [
                ServedModel(
                    "fraud",
                    entity_keys=("card_id",),
                    fallback=FallbackPolicy(rules="0.9 if amount > 1 else 0.1"),
                )
            ],
            source,
            settings=settings,
            audit=audit,
            features=FeatureStoreSource(store),
            refresh_s=0,
        )
        inline = {k: v for k, v in row(4).items() if k not in ("count_1d", "amount_7d")}
        results: list[tuple[float, float, int, dict[str, Any]]] = []
        stop = threading.Event()

        with TestClient(app) as client:

            def load(worker: int) -> None:
                i = 0
                while not stop.is_set():
                    i += 1
                    body = {"instances": [{**inline, "card_id": f"c{(worker + i) % 8}"}]}
                    sent = time.monotonic()
                    response = client.post("/v1/models/fraud/predict", json=body)
                    payload = response.json()
                    results.append((sent, time.monotonic(), response.status_code, payload))

            threads = [threading.Thread(target=load, args=(w,)) for w in range(3)]
            for t in threads:
                t.start()
            try:
                _wait_for(lambda: len(results) >= 60)
                redis.stop()
                down_at = time.monotonic()
                _wait_for(lambda: sum(r[0] > down_at for r in results) >= 60)
                results_down = len(results)
                redis.start()
                up_at = time.monotonic()
                # normal answers again, by themselves (the breaker half-opens and probes)
                _wait_for(
                    lambda: (
                        sum(
                            r[0] > up_at and "degraded" not in r[3].get("route", {})
                            for r in results
                        )
                        >= 30
                    )
                )
            finally:
                stop.set()
                for t in threads:
                    t.join(60)
        statuses = {status for _, _, status, _ in results}
        assert statuses == {200}, [p for _, _, s, p in results if s != 200][:3]
        # sent after Redis stopped, answered before it started again
        during = [
            p for sent, done, _, p in results[:results_down] if down_at < sent and done < up_at
        ]
        assert during, "no request was answered while Redis was down"
        assert all(p["route"].get("degraded") == "features-unavailable" for p in during)
        assert all(p["route"]["link"] == "rules" for p in during)
        last = results[-10:]
        assert all("degraded" not in p["route"] and p["route"]["link"] == "model"
                   for _, _, _, p in last)  # fmt: skip
        # every answer, degraded or not, is in the audit log
        for _, _, _, payload in results[::7]:
            audit.get(payload["predictions"][0]["prediction_id"])
        audit.close()
        store.close()
    finally:
        redis.stop()


def _wait_for(condition: Any, bound_s: float = 180.0) -> None:
    """A bound for what never happens, not a timing assertion."""
    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("condition never held")


def test_a_redis_restarted_empty_is_reported_until_it_is_materialized_again(
    tmp_path: Path,
) -> None:
    """A Redis that comes back without its data answers every read with nulls, which
    look like ordinary missing values: /readyz and /metrics must say so, and
    `materialize` (incremental: its watermark went with the data) must fill it again."""
    import pandas as pd

    redis = OwnRedis(tmp_path / "redis")
    redis.start()
    try:
        pd.DataFrame(
            {
                "card_id": [f"c{i}" for i in range(8)],
                "ts": [T.replace(tzinfo=None)] * 8,
                "count_1d": [3.0] * 8,
                "amount_7d": [25.0] * 8,
            }
        ).to_parquet(tmp_path / "cards.parquet")
        store = card_store(redis.url, tmp_path)
        store.materialize_incremental(progress=False)
        source = InMemoryModelSource()
        source.add("fraud", "1", train(1), aliases=["champion"])
        audit = SqliteAuditLog(tmp_path / "audit.db")
        app = create_app(
            [ServedModel("fraud", entity_keys=("card_id",))],
            source,
            settings=ServingConfig.model_validate({"cache": {"enabled": False}}),
            audit=audit,
            features=FeatureStoreSource(store),
            refresh_s=0,
        )
        inline = {k: v for k, v in row(4).items() if k not in ("count_1d", "amount_7d")}
        body = {"instances": [{**inline, "card_id": "c1"}]}

        def problems(client: TestClient) -> list[str]:
            ready = client.get("/readyz")
            assert ready.status_code == 200
            return [p for p in ready.json()["degraded"] if "holds no feature rows" in p]

        def empty_gauge(client: TestClient) -> str:
            lines = client.get("/metrics").text.splitlines()
            return next(ln for ln in lines if ln.startswith("driftloop_feature_store_empty"))

        with TestClient(app) as client:
            _wait_for(lambda: app.state.server.feature_problem is None and not problems(client))
            first = client.post("/v1/models/fraud/predict", json=body).json()
            assert first["predictions"][0].get("missing") is None
            redis.stop()
            shutil.rmtree(redis.folder)  # its append-only file: it comes back empty
            redis.start()
            _wait_for(lambda: bool(problems(client)))
            assert empty_gauge(client).endswith(" 1.0")
            lost = client.post("/v1/models/fraud/predict", json=body).json()
            assert lost["predictions"][0]["missing"] == ["count_1d", "amount_7d"]
            results = store.materialize_incremental(progress=False)
            assert sum(r.rows for r in results) == 8  # from the start: the watermark was lost
            _wait_for(lambda: not problems(client))
            assert empty_gauge(client).endswith(" 0.0")
            again = client.post("/v1/models/fraud/predict", json=body).json()
            assert again["predictions"][0].get("missing") is None
            assert again["predictions"][0]["score"] == first["predictions"][0]["score"]
        audit.close()
        store.close()
    finally:
        redis.stop()
