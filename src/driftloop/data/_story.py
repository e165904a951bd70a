"""The data of the demo's story (``driftloop demo``): one model's rows over simulated days,
with a planted concept drift and labels that arrive late.

A :class:`StoryData` holds every row the story will see: its features, its label and when
that label becomes known (``label_known_at``). The demo writes the features once
(``rows.parquet``) and the labels as they arrive (``labels.parquet``, rewritten with the
labels known at each training), so a retraining never learns from a label that had not
come back yet. The model's ``[models.<name>]`` section joins the two files.

Nothing in the library knows these columns: they are the examples', written down as a
user writes their own model section.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["LABEL_KNOWN_AT", "StoryData"]

LABEL_KNOWN_AT = "label_known_at"


@dataclass(frozen=True)
class StoryData:
    """A model's rows for the demo's story.

    ``rows`` has the ``id`` and ``timestamp`` columns, the ``features``, the ``label`` and
    :data:`LABEL_KNOWN_AT`, sorted by time. Concept drift starts on day ``drift_day`` of
    ``days``, counted from ``start`` (midnight UTC, naive).
    """

    model: str
    task: str
    rows: pd.DataFrame
    features: tuple[str, ...]
    label: str
    timestamp: str
    id: str
    start: pd.Timestamp
    days: int
    drift_day: int
    drift: str  # what changes at the drift day, in words
    categorical: tuple[str, ...] = ()

    def day(self, n: float) -> pd.Timestamp:
        """Midnight of day ``n`` (fractions allowed)."""
        return self.start + pd.Timedelta(days=n)

    def model_toml(self, extra: str = "") -> str:
        """The model's ``[models.<name>]`` section over the files :meth:`write_rows` and
        :meth:`write_labels` make in ``{root}/data``; ``extra`` is appended to it."""
        quoted = ", ".join(f'"{f}"' for f in self.features)
        categorical = ", ".join(f'"{f}"' for f in self.categorical)
        return (
            f"[models.{self.model}]\n"
            "# The story's rows joined to the labels known so far ({root}: this folder)\n"
            f'data = """duckdb:\nSELECT r.*, l.{self.label}\n'
            "FROM read_parquet('{root}/data/rows.parquet') r\n"
            f'JOIN read_parquet(\'{{root}}/data/labels.parquet\') l USING ({self.id})"""\n'
            f'label = "{self.label}"\n'
            f'timestamp = "{self.timestamp}"\n'
            f'id = "{self.id}"\n'
            f"include = [{quoted}]\n"
            + (f"categorical = [{categorical}]\n" if self.categorical else "")
            + f'task = "{self.task}"\n'
            + extra
        )

    def write_rows(self, folder: Path) -> Path:
        """Every row's id, time and features (no label) to ``folder/rows.parquet``."""
        folder.mkdir(parents=True, exist_ok=True)
        columns = [self.id, self.timestamp, *self.features]
        return _write(self.rows[columns], folder / "rows.parquet")

    def write_labels(self, folder: Path, known_at: pd.Timestamp) -> int:
        """The labels known at ``known_at`` to ``folder/labels.parquet``; how many."""
        known = self.rows.loc[self.rows[LABEL_KNOWN_AT] <= known_at, [self.id, self.label]]
        _write(known, folder / "labels.parquet")
        return len(known)

    def between(self, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        """The rows with event time in ``[start, end)``."""
        ts = self.rows[self.timestamp]
        return self.rows.loc[(ts >= start) & (ts < end)]

    def labels_arriving(self, after: pd.Timestamp, until: pd.Timestamp) -> pd.DataFrame:
        """The rows whose label becomes known in ``(after, until]``."""
        known = self.rows[LABEL_KNOWN_AT]
        return self.rows.loc[(known > after) & (known <= until)]

    def instances(self, frame: pd.DataFrame) -> list[dict[str, object]]:
        """Request instances for ``frame``: the features (missing values as null) and the
        event time (the model's timestamp column, kept in the audit log)."""
        records: list[dict[str, object]] = [
            {str(k): (None if v is None or v != v else v) for k, v in row.items()}
            for row in frame[list(self.features)].to_dict("records")
        ]
        for record, when in zip(records, frame[self.timestamp], strict=True):
            record[self.timestamp] = pd.Timestamp(when).isoformat()
        return records


def _write(frame: pd.DataFrame, path: Path) -> Path:
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    return path


def ordered(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """``frame`` sorted by ``columns``, index reset."""
    return frame.sort_values(list(columns), kind="stable").reset_index(drop=True)
