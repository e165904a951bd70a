"""MovieLens-100k, read from a wheel on the package registry (never from the internet).

The ``recbole`` wheel carries ``dataset_example/ml-100k/`` (ratings with timestamps, user
demographics, item genres and release years). :func:`movielens_100k` downloads that wheel
once with pip (``--no-deps``: recbole itself is never installed) into a cache folder and
reads the three files straight out of the zip.

Nothing in the library knows these columns: the recommender part is handed them as a user
hands their own interactions, users and items.
"""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from driftloop.core.errors import ConfigError

__all__ = ["MOVIELENS_WHEEL", "MovieLens", "movielens_100k"]

MOVIELENS_WHEEL = "recbole==1.2.1"
"""The registry package whose wheel carries ``dataset_example/ml-100k/``."""
_INSIDE = "recbole/dataset_example/ml-100k/ml-100k."
_AGE_GROUPS = [0, 17, 24, 34, 44, 55, 200]
_AGE_LABELS = ["<18", "18-24", "25-34", "35-44", "45-55", "56+"]


@dataclass(frozen=True)
class MovieLens:
    """MovieLens-100k as three frames.

    ``ratings``: ``user_id``, ``item_id`` (text ids), ``rating`` (1-5) and ``timestamp``
    (aware UTC), sorted by time. ``users``: ``user_id``, ``age``, ``gender``,
    ``occupation`` and ``age_group`` (MovieLens-1M's bands). ``items``: ``item_id``,
    ``title``, ``year`` (NaN when unknown) and ``genres`` (a tuple of genre names).
    """

    ratings: pd.DataFrame
    users: pd.DataFrame
    items: pd.DataFrame

    user_features = ("age_group", "gender", "occupation")
    cohort = ("age_group", "gender")
    item_tags = "genres"
    item_year = "year"


def default_cache() -> Path:
    return Path.home() / ".cache" / "driftloop" / "datasets"


def _wheel(cache: Path) -> Path:
    found = sorted(cache.glob("recbole-1.2.1-*.whl"))
    if found:
        return found[-1]
    cache.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", MOVIELENS_WHEEL, "--no-deps"]
    done = subprocess.run(
        [*command, "--disable-pip-version-check", "-q", "-d", str(cache)],
        capture_output=True,
        text=True,
        check=False,
    )
    found = sorted(cache.glob("recbole-1.2.1-*.whl"))
    if done.returncode != 0 or not found:
        raise ConfigError(
            f"MovieLens-100k ships in the {MOVIELENS_WHEEL} wheel, which pip could not "
            f"download into {cache}: {done.stderr.strip()[-400:]}"
        )
    return found[-1]


def _table(archive: zipfile.ZipFile, kind: str) -> pd.DataFrame:
    raw = archive.read(_INSIDE + kind)
    frame = pd.read_csv(io.BytesIO(raw), sep="\t", dtype=str, keep_default_na=False)
    frame.columns = [c.split(":")[0] for c in frame.columns]
    return frame


def movielens_100k(cache: Path | None = None) -> MovieLens:
    """MovieLens-100k from the ``recbole`` wheel in ``cache`` (downloaded there by pip,
    without dependencies, the first time; default ``~/.cache/driftloop/datasets``)."""
    with zipfile.ZipFile(_wheel(cache or default_cache())) as archive:
        inter, user, item = (_table(archive, k) for k in ("inter", "user", "item"))
    ratings = pd.DataFrame(
        {
            "user_id": inter["user_id"],
            "item_id": inter["item_id"],
            "rating": inter["rating"].astype("float64"),
            "timestamp": pd.to_datetime(inter["timestamp"].astype("float64"), unit="s", utc=True),
        }
    )
    ratings = ratings.sort_values(["timestamp", "user_id", "item_id"], kind="stable")
    users = pd.DataFrame(
        {
            "user_id": user["user_id"],
            "age": user["age"].astype("int64"),
            "gender": user["gender"],
            "occupation": user["occupation"],
        }
    )
    users["age_group"] = pd.cut(users["age"], _AGE_GROUPS, labels=_AGE_LABELS).astype(str)
    items = pd.DataFrame(
        {
            "item_id": item["item_id"],
            "title": item["movie_title"],
            "year": pd.to_numeric(item["release_year"], errors="coerce"),
            "genres": [tuple(g.split()) for g in item["class"]],
        }
    )
    return MovieLens(ratings.reset_index(drop=True), users, items)
