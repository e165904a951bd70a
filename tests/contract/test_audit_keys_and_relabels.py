"""Idempotency keys and audited relabels, on every audit store backend (PostgreSQL skips
when unreachable, per tests/services.py)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from driftloop.audit import (
    AuditLog,
    AuditRecord,
    Label,
    idempotency_store,
    label_store,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
Factory = Callable[[], AuditLog]


def _record(pid: str) -> AuditRecord:
    return AuditRecord(pid, T0, "fraud", "1", "v1", 0.3, "", 1.0, features={"amount": 1.0})


# -- idempotency keys ---------------------------------------------------------------------
def test_a_completed_key_replays_its_answer_from_another_process_and_after_a_restart(
    make_log: Factory,
) -> None:
    first, second = idempotency_store(make_log()), idempotency_store(make_log())
    assert first is not None
    assert second is not None
    claim = first.claim("predict", "k1", "sha-a", now=T0, ttl_s=60, lease_s=30)
    assert claim.state == "new"
    assert second.claim("predict", "k1", "sha-a", now=T0, ttl_s=60, lease_s=30).state == "busy"
    first.complete("predict", "k1", 200, '{"ids": ["a"]}')
    replay = second.claim("predict", "k1", "sha-a", now=T0 + timedelta(seconds=1), ttl_s=60,
                          lease_s=30)  # fmt: skip
    assert (replay.state, replay.status, replay.body) == ("replay", 200, '{"ids": ["a"]}')
    restarted = idempotency_store(make_log())
    assert restarted is not None
    assert restarted.claim("predict", "k1", "sha-a", now=T0, ttl_s=60, lease_s=30).body == (
        '{"ids": ["a"]}'
    )


def test_a_key_reused_for_another_request_is_a_mismatch_and_scopes_are_apart(
    make_log: Factory,
) -> None:
    keys = idempotency_store(make_log())
    assert keys is not None
    keys.claim("predict:fraud", "k", "sha-a", now=T0, ttl_s=60, lease_s=30)
    keys.complete("predict:fraud", "k", 200, "{}")
    assert keys.claim("predict:fraud", "k", "sha-b", now=T0, ttl_s=60, lease_s=30).state == (
        "mismatch"
    )
    assert keys.claim("feedback", "k", "sha-b", now=T0, ttl_s=60, lease_s=30).state == "new"


def test_keys_expire_after_their_ttl_and_abandoned_claims_after_their_lease(
    make_log: Factory,
) -> None:
    keys = idempotency_store(make_log())
    assert keys is not None
    keys.claim("s", "done", "sha", now=T0, ttl_s=60, lease_s=30)
    keys.complete("s", "done", 200, "old")
    assert keys.claim("s", "done", "sha", now=T0 + timedelta(seconds=59), ttl_s=60,
                      lease_s=30).state == "replay"  # fmt: skip
    expired = keys.claim("s", "done", "other", now=T0 + timedelta(seconds=61), ttl_s=60,
                         lease_s=30)  # fmt: skip
    assert expired.state == "new"  # a new request may use the key once it expired
    keys.claim("s", "died", "sha", now=T0, ttl_s=600, lease_s=30)  # never completed
    assert keys.claim("s", "died", "sha", now=T0 + timedelta(seconds=29), ttl_s=600,
                      lease_s=30).state == "busy"  # fmt: skip
    assert keys.claim("s", "died", "sha", now=T0 + timedelta(seconds=31), ttl_s=600,
                      lease_s=30).state == "new"  # fmt: skip


def test_a_released_key_lets_the_retry_run_again(make_log: Factory) -> None:
    keys = idempotency_store(make_log())
    assert keys is not None
    keys.claim("s", "k", "sha", now=T0, ttl_s=60, lease_s=30)
    keys.release("s", "k")
    assert keys.claim("s", "k", "sha", now=T0, ttl_s=60, lease_s=30).state == "new"


def test_of_many_workers_claiming_one_key_at_once_exactly_one_runs(make_log: Factory) -> None:
    stores = [idempotency_store(make_log()) for _ in range(4)]
    start = threading.Barrier(len(stores))
    states: list[str] = []

    def claim(store: object) -> None:
        assert store is not None
        start.wait()
        states.append(store.claim("s", "k", "sha", now=T0, ttl_s=60, lease_s=30).state)  # type: ignore[attr-defined]

    threads = [threading.Thread(target=claim, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(states) == ["busy", "busy", "busy", "new"]


# -- labels and relabels ------------------------------------------------------------------
def test_a_different_label_is_refused_whole_unless_relabel_is_asked(make_log: Factory) -> None:
    log = make_log()
    log.write([_record("p1"), _record("p2")])
    labels = label_store(log)
    assert labels is not None
    first = labels.set_labels([Label("p1", 1.0)], relabel=False, actor="a", now=T0)
    assert (first.accepted, first.unknown, first.conflicts) == (1, [], [])
    again = labels.set_labels(
        [Label("p1", 1.0), Label("p2", 0.0), Label("ghost", 1.0)], relabel=False, actor="a", now=T0
    )  # the same label again is no conflict
    assert (again.accepted, again.unknown, again.conflicts) == (2, ["ghost"], [])
    refused = labels.set_labels(
        [Label("p1", 0.0), Label("p2", 1.0)], relabel=False, actor="a", now=T0
    )
    assert (refused.accepted, refused.conflicts) == (0, ["p1", "p2"])
    assert (log.get("p1").label, log.get("p2").label) == (1.0, 0.0)  # nothing written
    assert labels.relabels() == []


def test_every_relabel_is_kept_with_old_and_new_label_who_and_when(make_log: Factory) -> None:
    log = make_log()
    log.write([_record("p1")])
    labels = label_store(log)
    assert labels is not None
    labels.set_labels([Label("p1", 1.0)], relabel=False, actor="svc", now=T0)
    later = T0 + timedelta(hours=1)
    done = labels.set_labels([Label("p1", 0.0)], relabel=True, actor="alice", now=later)
    assert done.accepted == 1
    labels.set_labels([Label("p1", 2.0)], relabel=True, actor="bob", now=later + timedelta(1))
    assert log.get("p1").label == 2.0
    reopened = label_store(make_log())
    assert reopened is not None
    kept = reopened.relabels("p1")
    assert [(r.old_label, r.new_label, r.actor, r.ts) for r in kept] == [
        (1.0, 0.0, "alice", later),
        (0.0, 2.0, "bob", later + timedelta(1)),
    ]
    assert reopened.relabels("other") == []


def test_compaction_keeps_the_relabel_history(make_log: Factory, tmp_path: Path) -> None:
    log = make_log()
    log.write([_record("p1")])
    labels = label_store(log)
    assert labels is not None
    labels.set_labels([Label("p1", 1.0)], relabel=False, actor="a", now=T0)
    labels.set_labels([Label("p1", 0.0)], relabel=True, actor="b", now=T0)
    assert len(log.compact(T0 + timedelta(days=1))) == 1  # the prediction left for Parquet
    assert log.get("p1").label == 0.0  # read from Parquet, with its label
    assert [r.actor for r in labels.relabels("p1")] == ["b"]
