"""One battery for every audit log backend: what the server writes, monitoring reads."""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from driftloop.audit import (
    AuditBatch,
    AuditLog,
    AuditRecord,
    GroupCommitWriter,
    Label,
    entity_predictions,
)
from driftloop.audit._record import FRAME_COLUMNS
from driftloop.audit._spool import AuditSpool
from driftloop.audit._sql import ENTITY_PARTS, SqlAuditLog, entity_part
from driftloop.core.errors import InvalidParameterError, NotFoundError

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
Factory = Callable[[], AuditLog]


def record(i: int, *, ts: datetime = T0, model: str = "fraud", version: str = "1") -> AuditRecord:
    return AuditRecord(
        prediction_id=f"p{i:04d}",
        ts=ts + timedelta(seconds=i),
        model=model,
        version=version,
        route="champion",
        score=i / 100,
        decision="approve" if i < 20 else "review",
        latency_ms=1.5,
        features={"amount": 10.0 * i, "country": "FR", "count_1d": None},
        entity_keys={"card_id": f"c{i % 3}"},
        feature_ts={"count_1d": ts - timedelta(minutes=5)},
        explanation={"amount": 0.25} if i % 2 else None,
        served_at=ts + timedelta(seconds=i, milliseconds=40) if i % 3 else None,
        missing=("count_1d",) if i % 2 else (),
        outputs={"class": "b", "probabilities": {"a": 0.1, "b": 0.9}} if i % 2 else None,
    )


def test_a_written_prediction_reads_back_with_every_field(make_log: Factory) -> None:
    log = make_log()
    original = record(3)
    log.write([original])
    got = log.get("p0003")
    assert got == original


def test_a_record_without_the_newer_fields_reads_back_with_their_defaults(
    make_log: Factory,
) -> None:
    log = make_log()
    log.write([record(0)])  # served_at None, nothing missing, no outputs
    got = log.get("p0000")
    assert (got.served_at, got.missing, got.outputs) == (None, (), None)
    row = log.window(T0, T0 + timedelta(hours=1)).iloc[0]
    assert pd.isna(row["served_at"])
    assert row["missing"] == []
    assert row["outputs"] is None


def test_records_survive_closing_and_reopening_the_log(make_log: Factory) -> None:
    log = make_log()
    log.write([record(i) for i in range(5)])
    log.close()
    again = make_log()
    assert again.get("p0004").score == pytest.approx(0.04)


def test_unknown_prediction_id_is_not_found(make_log: Factory) -> None:
    with pytest.raises(NotFoundError, match="p9999"):
        make_log().get("p9999")


def test_window_frame_has_documented_columns_utc_times_and_nan_labels(make_log: Factory) -> None:
    log = make_log()
    log.write([record(i) for i in range(4)])
    frame = log.window(T0, T0 + timedelta(hours=1))
    assert list(frame.columns[: len(FRAME_COLUMNS)]) == list(FRAME_COLUMNS)
    assert list(FRAME_COLUMNS[-4:]) == ["served_at", "missing", "outputs", "tenant"]
    assert frame["tenant"].tolist() == ["default"] * 4  # a server without keys: one tenant
    assert {"amount", "country", "count_1d"} <= set(frame.columns)
    assert str(frame["ts"].dt.tz) == "UTC"
    assert str(frame["served_at"].dt.tz) == "UTC"
    assert frame["served_at"].isna().tolist() == [True, False, False, True]
    assert frame["served_at"].iloc[1] == pd.Timestamp(T0 + timedelta(seconds=1, milliseconds=40))
    assert frame["missing"].tolist() == [[], ["count_1d"], [], ["count_1d"]]
    assert frame["outputs"].iloc[0] is None
    assert frame["outputs"].iloc[1] == {"class": "b", "probabilities": {"a": 0.1, "b": 0.9}}
    assert frame["label"].isna().all()
    assert frame["prediction_id"].tolist() == ["p0000", "p0001", "p0002", "p0003"]
    assert frame["amount"].tolist() == [0.0, 10.0, 20.0, 30.0]
    assert frame["count_1d"].isna().all()


def test_window_is_half_open_and_filters_by_model_and_version(make_log: Factory) -> None:
    log = make_log()
    log.write([record(i) for i in range(10)])
    log.write([record(100 + i, model="other", version="2") for i in range(3)])
    frame = log.window(T0 + timedelta(seconds=2), T0 + timedelta(seconds=5), model="fraud")
    assert frame["prediction_id"].tolist() == ["p0002", "p0003", "p0004"]
    other = log.window(T0, T0 + timedelta(hours=1), version="2")
    assert set(other["model"]) == {"other"}
    with pytest.raises(InvalidParameterError):
        log.window(T0, T0 - timedelta(seconds=1))


def test_a_feature_named_like_a_new_fixed_column_keeps_the_feature_prefix(
    make_log: Factory,
) -> None:
    log = make_log()
    clash = replace(record(1), features={"missing": 1.0, "outputs": "x", "served_at": 2})
    log.write([clash])
    row = log.window(T0, T0 + timedelta(hours=1)).iloc[0]
    assert (row["feature:missing"], row["feature:outputs"], row["feature:served_at"]) == (
        1.0,
        "x",
        2,
    )
    assert row["missing"] == ["count_1d"]


def test_empty_window_is_an_empty_frame_with_the_fixed_columns(make_log: Factory) -> None:
    frame = make_log().window(T0, T0 + timedelta(hours=1))
    assert frame.empty
    assert list(frame.columns) == list(FRAME_COLUMNS)


def test_labels_join_by_prediction_id_and_unknown_ids_are_reported(make_log: Factory) -> None:
    log = make_log()
    log.write([record(i) for i in range(3)])
    label_ts = T0 + timedelta(days=7)
    unknown = log.add_labels([Label("p0001", 1.0, label_ts), Label("nope", 0.0)])
    assert unknown == ["nope"]
    frame = log.window(T0, T0 + timedelta(hours=1)).set_index("prediction_id")
    assert frame.loc["p0001", "label"] == 1.0
    assert frame.loc["p0001", "label_ts"] == pd.Timestamp(label_ts)
    assert math.isnan(frame.loc["p0000", "label"])
    log.add_labels([Label("p0001", 0.0, label_ts)])  # a corrected label replaces the first
    assert log.get("p0001").label == 0.0


def test_by_entity_returns_only_that_entitys_predictions(make_log: Factory) -> None:
    log = make_log()
    log.write([record(i) for i in range(9)])
    frame = log.by_entity("card_id", "c1")
    assert frame["prediction_id"].tolist() == ["p0001", "p0004", "p0007"]
    later = log.by_entity("card_id", "c1", start=T0 + timedelta(seconds=2))
    assert later["prediction_id"].tolist() == ["p0004", "p0007"]


def test_a_write_longer_than_one_insert_statement_keeps_every_row(make_log: Factory) -> None:
    """The logs insert up to 64 rows per statement: 150 rows take three, and a duplicate
    id inside one statement is kept once."""
    log = make_log()
    log.write([record(i) for i in range(150)] + [record(70)])
    frame = log.window(T0, T0 + timedelta(hours=1))
    assert frame["prediction_id"].tolist() == [f"p{i:04d}" for i in range(150)]
    assert len(log.by_entity("card_id", "c2")) == 50  # one entity row per prediction
    assert log.get("p0149").features == record(149).features


def test_writing_the_same_batch_twice_keeps_one_copy(make_log: Factory) -> None:
    log = make_log()
    batch = [record(i) for i in range(4)]
    log.write(batch)
    log.write(batch)
    assert len(log.window(T0, T0 + timedelta(hours=1))) == 4


def test_compaction_moves_old_days_to_parquet_and_readers_still_see_them(
    make_log: Factory,
) -> None:
    log = make_log()
    old = [record(i, ts=T0 - timedelta(days=2)) for i in range(3)]
    older = [record(10 + i, ts=T0 - timedelta(days=3)) for i in range(2)]
    recent = [record(20 + i) for i in range(2)]
    log.write(old + older + recent)
    log.add_labels([Label("p0001", 1.0, T0)])
    files = log.compact(T0 - timedelta(days=1))
    assert sorted(p.parent.name for p in files) == ["date=2026-02-26", "date=2026-02-27"]
    frame = log.window(T0 - timedelta(days=5), T0 + timedelta(days=1))
    assert len(frame) == 7
    assert frame.set_index("prediction_id").loc["p0001", "label"] == 1.0
    assert log.get("p0010").model == "fraud"
    for archived in old + older:  # every field, the newer ones too, survives Parquet
        got = log.get(archived.prediction_id)
        assert replace(got, label=None, label_ts=None) == archived
    assert log.compact(T0 - timedelta(days=1)) == []  # nothing left to move


def test_group_commit_writer_makes_every_awaited_batch_durable(make_log: Factory) -> None:
    log = make_log()
    writer = GroupCommitWriter(log)

    async def main() -> None:
        await asyncio.gather(
            *(writer.awrite([record(i * 10 + j) for j in range(10)]) for i in range(20))
        )

    asyncio.run(main())
    writer.close()
    assert len(log.window(T0, T0 + timedelta(hours=1))) == 200
    assert 1 <= writer.commits <= 20


def test_batches_from_the_server_read_back_like_records(make_log: Factory) -> None:
    """The server hands the writer columnar batches; what is read back must be the same
    as had it written one AuditRecord per row (features, keys, stamps, explanations)."""
    log = make_log()
    writer = GroupCommitWriter(log)
    stamp = T0 - timedelta(hours=1)
    batches = [
        AuditBatch(
            ts=T0,
            model="fraud",
            version="2",
            route="v1",
            latency_ms=1.5,
            feature_names=("amount", "count_1d"),
            values=[[12.5, None], [3.0, 7.0]],
            prediction_ids=[f"b{k}-0", f"b{k}-1"],
            scores=[0.1, 0.9],
            decisions=["approve", "decline"],
            entity_keys=[{"card_id": f"c{k}"}, {}],
            feature_ts=[{"count_1d": stamp}, {}],
            explanations=[{"amount": 0.25}, None] if k == 0 else None,
        )
        for k in range(3)
    ]

    async def main() -> None:
        await asyncio.gather(writer.awrite_batches(batches[:2]), writer.awrite_batches(batches[2:]))

    asyncio.run(main())
    writer.close()
    first = log.get("b0-0")
    assert (first.score, first.decision, first.version, first.route) == (0.1, "approve", "2", "v1")
    assert dict(first.features) == {"amount": 12.5, "count_1d": None}
    assert dict(first.entity_keys) == {"card_id": "c0"}
    assert first.feature_ts == {"count_1d": stamp}
    assert first.explanation == {"amount": 0.25}
    assert log.get("b1-1").explanation is None
    assert len(log.by_entity("card_id", "c2")) == 1
    assert len(log.window(T0, T0 + timedelta(seconds=1))) == 6


def test_a_150_row_batch_keeps_event_times_missing_features_and_outputs(
    make_log: Factory,
) -> None:
    """Rows of one served batch share their serve time but not their event time: windows
    and entity lookups select by event time (the serve time where a row has none), and
    each row keeps its own missing features and task outputs."""
    log = make_log()
    served = T0 + timedelta(hours=2)
    n = 150
    event_ts = [None if i % 3 == 0 else T0 + timedelta(seconds=i) for i in range(n)]
    missing = [["amount", "count_1d"] if i % 5 == 0 else [] for i in range(n)]
    outputs = [
        None if i % 4 == 0 else {"class": "ab"[i % 2], "probabilities": {"a": 0.25, "b": 0.75}}
        for i in range(n)
    ]
    batch = AuditBatch(
        ts=served,
        model="fraud",
        version="3",
        route="v1",
        latency_ms=2.0,
        feature_names=("amount", "count_1d"),
        values=[[None, None] if i % 5 == 0 else [float(i), 1.0] for i in range(n)],
        prediction_ids=[f"e{i:03d}" for i in range(n)],
        scores=[i / n for i in range(n)],
        decisions=["approve"] * n,
        entity_keys=[{"card_id": f"c{i % 2}"} for i in range(n)],
        feature_ts=[{} for _ in range(n)],
        event_ts=event_ts,
        missing=missing,
        outputs=outputs,
    )
    writer = GroupCommitWriter(log)
    asyncio.run(writer.awrite_batches([batch]))
    writer.close()

    frame = log.window(T0, T0 + timedelta(hours=3))
    assert frame["ts"].is_monotonic_increasing  # oldest event first
    frame = frame.set_index("prediction_id").loc[batch.prediction_ids]
    expected_ts = [served if e is None else e for e in event_ts]
    assert frame["ts"].tolist() == [pd.Timestamp(t) for t in expected_ts]
    assert (frame["served_at"] == pd.Timestamp(served)).all()
    assert frame["missing"].tolist() == missing
    assert frame["outputs"].tolist() == outputs
    early = log.window(T0, T0 + timedelta(hours=1))  # event times only: no serve-time rows
    assert early["prediction_id"].tolist() == [f"e{i:03d}" for i in range(n) if i % 3]

    got = log.get("e005")
    assert (got.ts, got.served_at) == (T0 + timedelta(seconds=5), served)
    assert got.missing == ("amount", "count_1d")
    assert got.outputs == {"class": "b", "probabilities": {"a": 0.25, "b": 0.75}}
    assert log.get("e000").ts == served
    assert log.get("e004").outputs is None
    assert got == batch.records()[5]  # the batch reads back as its records would

    by_event = log.by_entity("card_id", "c1", end=T0 + timedelta(hours=1))
    assert by_event["prediction_id"].tolist() == [f"e{i:03d}" for i in range(1, n, 2) if i % 3]


def test_inserting_the_same_raw_rows_twice_keeps_one_copy(
    make_log: Factory, tmp_path: Path
) -> None:
    """A spool replay may repeat (a crash between the store's commit and the spool's
    delete, or a hung commit that landed late): each prediction stays stored once."""
    log = make_log()
    assert isinstance(log, SqlAuditLog)
    spool = AuditSpool.create(tmp_path / "spool")
    spool.append([], [record(i) for i in range(6)])
    rows, entities = spool.oldest(100)
    log.write([record(0)])  # one of them is there already
    assert log.insert_rows(rows, entities) == 5
    assert log.insert_rows(rows, entities) == 0
    frame = log.window(T0, T0 + timedelta(hours=1))
    assert sorted(frame["prediction_id"]) == [f"p{i:04d}" for i in range(6)]
    assert len(log.by_entity("card_id", "c0")) == 2  # p0000 and p0003, once each
    assert log.get("p0005") == record(5)
    spool.close()


# -- entity rows: staged, then merged into the index (a0007) ------------------------------
def entity_rows(log: SqlAuditLog) -> dict[str, list[str]]:
    """The prediction ids of the entity rows in the index and in the staging table."""
    staging = " UNION ALL ".join(
        f"SELECT prediction_id FROM {log._t(f'entities_recent_{part}')}"
        for part in range(ENTITY_PARTS)
    )
    out: dict[str, list[str]] = {}
    with log._transaction(write=False) as cur:
        for table, rows in (
            ("entities", f"SELECT prediction_id FROM {log._t('entities')}"),
            ("entities_recent", staging),
        ):
            cur.execute(f"SELECT prediction_id FROM ({rows}) AS t ORDER BY prediction_id")
            out[table] = [row[0] for row in cur.fetchall()]
    return out


def sql_log(make_log: Factory, merge_rows: int | None) -> SqlAuditLog:
    log = make_log()
    assert isinstance(log, SqlAuditLog)
    log.entity_merge_rows = merge_rows
    return log


def test_entity_lookups_find_rows_still_staged_and_rows_merged(make_log: Factory) -> None:
    log = sql_log(make_log, 10_000)
    log.write([record(i) for i in range(9)])
    assert entity_rows(log)["entities"] == []  # all staged
    assert log.by_entity("card_id", "c1")["prediction_id"].tolist() == ["p0001", "p0004", "p0007"]
    found = entity_predictions(log, "card_id", "c1")
    assert found["prediction_id"].tolist() == ["p0007", "p0004", "p0001"]
    assert log.merge_entities() == 9
    log.write([record(i) for i in range(9, 12)])
    assert entity_rows(log) == {
        "entities": [f"p{i:04d}" for i in range(9)],
        "entities_recent": ["p0009", "p0010", "p0011"],
    }
    both = log.by_entity("card_id", "c1", start=T0 + timedelta(seconds=4))
    assert both["prediction_id"].tolist() == ["p0004", "p0007", "p0010"]
    assert entity_predictions(log, "card_id", "c1", limit=2)["prediction_id"].tolist() == [
        "p0010",
        "p0007",
    ]


def test_merges_move_every_entity_row_once_and_close_merges_the_rest(
    make_log: Factory,
) -> None:
    log = sql_log(make_log, 4 * ENTITY_PARTS)  # a staging table merged per commit of 4
    for start in range(0, 62, 4):
        log.write([record(i) for i in range(start, min(start + 4, 62))])
    rows = entity_rows(log)
    assert rows["entities"]
    assert rows["entities_recent"]
    assert sorted(rows["entities"] + rows["entities_recent"]) == [f"p{i:04d}" for i in range(62)]
    assert len(log.by_entity("card_id", "c2")) == 20
    log.close()
    again = sql_log(make_log, 7)
    assert entity_rows(again) == {
        "entities": [f"p{i:04d}" for i in range(62)],
        "entities_recent": [],
    }


def test_a_replayed_commit_stages_no_entity_row_twice(make_log: Factory, tmp_path: Path) -> None:
    """The retry of a commit and a spool replay go through the same insert of new rows:
    entity rows of ids already stored, staged or merged, are skipped."""
    log = sql_log(make_log, 4)
    spool = AuditSpool.create(tmp_path / "spool")
    spool.append([], [record(i) for i in range(10)])
    rows, entities = spool.oldest(100)
    first = {f"p{i:04d}" for i in range(6)}
    log.write([record(0), record(1), record(2)])  # staged, below the merge
    assert (  # merges: 6 staged
        log.insert_rows([r for r in rows if r[0] in first], [e for e in entities if e[3] in first])
        == 3
    )
    assert log.insert_rows(rows, entities) == 4
    assert log.insert_rows(rows, entities) == 0
    got = entity_rows(log)
    assert sorted(got["entities"] + got["entities_recent"]) == [f"p{i:04d}" for i in range(10)]
    spool.close()


def test_compaction_deletes_entity_rows_merged_and_staged(make_log: Factory) -> None:
    log = sql_log(make_log, 10_000)
    log.write([record(i, ts=T0 - timedelta(days=2)) for i in range(4)])
    log.merge_entities()
    log.write([record(i, ts=T0 - timedelta(days=2)) for i in range(4, 8)])
    log.write([record(i) for i in range(8, 10)])
    log.compact(T0 - timedelta(days=1))
    assert entity_rows(log) == {"entities": [], "entities_recent": ["p0008", "p0009"]}
    assert log.by_entity("card_id", "c0")["prediction_id"].tolist() == ["p0009"]


def test_writers_merging_at_once_move_each_entity_row_once(make_log: Factory) -> None:
    """Two logs on one store (two server processes) write and merge concurrently."""
    logs = [sql_log(make_log, 6), sql_log(make_log, 6)]
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            start.wait()
            for n in range(40):
                first = 1000 * k + 3 * n
                logs[k].write([record(i) for i in range(first, first + 3)])
                if n % 5 == 0:
                    logs[k].merge_entities()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    logs[0].merge_entities()
    expected = sorted(f"p{1000 * k + i:04d}" for k in range(2) for i in range(120))
    assert entity_rows(logs[1]) == {"entities": expected, "entities_recent": []}


def test_a_merge_of_one_staging_table_leaves_the_others_staged(make_log: Factory) -> None:
    log = sql_log(make_log, 10_000)
    log.write([record(i) for i in range(9)])  # card_id c0, c1, c2
    part = entity_part("card_id", "c1")
    same = [v for v in ("c0", "c1", "c2") if entity_part("card_id", v) == part]
    assert log.merge_entities(part) == 3 * len(same)
    rows = entity_rows(log)
    for i in range(9):
        merged = f"c{i % 3}" in same
        assert (f"p{i:04d}" in rows["entities"], f"p{i:04d}" in rows["entities_recent"]) == (
            merged,
            not merged,
        )
    for value, ids in (("c0", ["p0000", "p0003", "p0006"]), ("c1", ["p0001", "p0004", "p0007"])):
        assert log.by_entity("card_id", value)["prediction_id"].tolist() == ids
