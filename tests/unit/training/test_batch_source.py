"""The files of a batch job are read by the workers into the values the local command reads."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from driftloop.compute import LocalEngine
from driftloop.core.errors import InvalidParameterError, NotFoundError
from driftloop.training import file_batches, training_source

# Texts, booleans (true/false and t/f), yes/no words (kept as text by the local reader),
# missing values of every kind, a text that only looks missing ("NA"), quotes, timestamps.
CSV = "\n".join(
    [
        "id,plan,active,amount,seen_at,ok,note",
        '1,basic,true,1.5,2026-01-01 10:00:00,yes,"a, quoted"',
        "2,,false,,2026-01-02T11:00:00,no,",
        '3,"",,3,2026-01-03 00:00:00,,NA',
        "4,NA,t,4,2026-01-04 00:00:00,yes,plain",
        '5,pro,f,-2.25,,no,"say ""hi"""',
        "",
    ]
)


def read_by_workers(tmp_path: Path, spec: str) -> pd.DataFrame:
    """What a worker's scorer sees: the batches of the source, through the local reader."""
    frames: list[pd.DataFrame] = []

    def make_fn():  # type: ignore[no-untyped-def]
        def fn(batch: pa.Table) -> pa.Table:
            frames.append(training_source(batch.to_pandas()).window(None))
            return batch

        return fn

    LocalEngine().map_batches(make_fn, file_batches(spec, tmp_path), tmp_path / "out", batch_rows=2)
    return pd.concat(frames, ignore_index=True)


@pytest.mark.parametrize(("name", "text"), [("rows.csv", CSV), ("rows.tsv", CSV)])
def test_csv_batches_hold_the_values_and_types_the_local_reader_gives(
    tmp_path: Path, name: str, text: str
) -> None:
    if name.endswith(".tsv"):  # the same rows, tab separated (the quoted comma stays)
        text = text.replace(",", "\t").replace('a\t quoted"', 'a, quoted"')
    (tmp_path / name).write_text(text)
    local = training_source(name, root=tmp_path).window(None)
    got = read_by_workers(tmp_path, name)
    assert local["ok"].tolist()[:2] == ["yes", "no"]  # words stay words
    assert local["active"].isna().tolist() == [False, False, True, False, False]
    assert local.loc[3, "plan"] == "NA"  # only an empty field is missing
    pd.testing.assert_frame_equal(got, local, check_exact=True)


def test_a_folder_and_a_file_uri_of_csv_parts_read_like_the_local_folder(tmp_path: Path) -> None:
    parts = tmp_path / "parts"
    parts.mkdir()
    lines = CSV.splitlines(keepends=True)
    (parts / "a.csv").write_text("".join(lines[:3]))
    (parts / "b.csv").write_text(lines[0] + "".join(lines[3:]))
    local = training_source("parts", root=tmp_path).window(None)
    for spec in ("parts", parts.as_uri()):
        got = read_by_workers(tmp_path, spec).sort_values("id", ignore_index=True)
        pd.testing.assert_frame_equal(got, local.sort_values("id", ignore_index=True))


def test_parquet_files_are_read_as_they_are(tmp_path: Path) -> None:
    pq.write_table(pa.table({"x": [1, 2, None], "s": ["a", None, "c"]}), tmp_path / "r.parquet")
    batches = file_batches("r.parquet", tmp_path)
    assert (batches.format, batches.paths) == ("parquet", (str(tmp_path / "r.parquet"),))
    assert file_batches((tmp_path / "r.parquet").as_uri(), tmp_path).format == "parquet"


def test_a_file_neither_parquet_nor_csv_is_refused_naming_it(tmp_path: Path) -> None:
    (tmp_path / "rows.json").write_text('{"x": 1}\n')
    with pytest.raises(InvalidParameterError, match=r"rows\.json is neither Parquet nor CSV"):
        file_batches("rows.json", tmp_path)
    with pytest.raises(InvalidParameterError, match=r"rows\.json is neither Parquet nor CSV"):
        file_batches((tmp_path / "rows.json").as_uri(), tmp_path)


def test_sources_workers_cannot_read_are_refused_with_the_reason(tmp_path: Path) -> None:
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "a.csv").write_text("x\n1\n")
    pq.write_table(pa.table({"x": [2]}), mixed / "b.parquet")
    with pytest.raises(InvalidParameterError, match="both Parquet and CSV"):
        file_batches(mixed.as_uri(), tmp_path)
    with pytest.raises(InvalidParameterError, match="not a duckdb: query"):
        file_batches("duckdb:SELECT 1 AS x", tmp_path)
    with pytest.raises(InvalidParameterError, match="not a pattern"):
        file_batches(f"{mixed.as_uri()}/*.csv", tmp_path)
    with pytest.raises(InvalidParameterError, match="cannot be opened"):
        file_batches("nosuchscheme://bucket/rows.csv", tmp_path)
    with pytest.raises(NotFoundError, match="does not exist"):
        file_batches((tmp_path / "absent.csv").as_uri(), tmp_path)
