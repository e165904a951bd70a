"""Where the CPU of one recommend answer goes, in process (no HTTP, no load generator).

The ML-100k model as ``benchmarks/recsys.py`` trains it (its ``CONFIG``, time split 80%),
registered and loaded back as ``driftloop serve`` loads it, answering batches of 64
requests of ML-100k users (drawn as the HTTP benchmark draws them, ``n`` 10) through the
server's recommend path: sessions read from a SQLite online store, the version's lists,
the audit records written to a SQLite audit log, each answer's JSON body.

CPU is ``time.process_time`` (every thread of the process), not wall time: the machine is
shared. Two measures:

1. stages, each timed alone in this thread over ``--reps`` batches: sessions read, the
   lists (``recommend_many``, split into user tower, ANN retrieval, candidate features,
   LightGBM ranking, business rules, fallback levels, the rest), the audit records and
   their commit, the JSON bodies;
2. the whole path end to end (``RecommenderService`` with its batcher's thread and the
   group-commit writer), to check the stages add up; and a cProfile of the lists.

    python benchmarks/recsys_profile.py [--reps 50] [--batch 64] [--cache DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import random
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import driftloop.recsys._recommender as recommender_module
from driftloop.audit import GroupCommitWriter, SqliteAuditLog
from driftloop.core.config import ServingConfig
from driftloop.data import movielens_100k
from driftloop.features import SqliteOnlineStore
from driftloop.recsys import (
    Catalog,
    Recommender,
    RecommendRequest,
    load_recommender,
    register_recommender,
    time_split,
    train_recommender,
)
from driftloop.registry import Registry
from driftloop.serving import RecommenderService, ServedRecommender
from driftloop.serving._errors import json_response
from driftloop.serving._recommend import answer_body
from driftloop.serving._recommend_audit import audit_record

sys.path.insert(0, str(Path(__file__).parent))
from recsys import CONFIG

STAGES = ("user tower", "retrieval", "features", "ranking", "rules", "fallback levels")


def trained(cache: Path) -> tuple[Recommender, list[str]]:
    """The benchmark's model (trained once into ``cache``'s registry) and its users."""
    ml = movielens_100k()
    split = time_split(ml.ratings, fraction=0.8)
    users = sorted(set(split.train["user_id"]) | set(split.test["user_id"]))
    cache.mkdir(parents=True, exist_ok=True)
    registry = Registry.from_url(f"sqlite:///{cache}/registry.db", str(cache / "artifacts"))
    try:
        try:
            rec = load_recommender(registry, "movies", "champion")
        except Exception:
            catalog = Catalog(
                ml.users, ml.items, ml.user_features, ml.item_tags, ml.item_year, ml.cohort
            )
            model = train_recommender(split.train, catalog, name="movies", config=CONFIG)
            register_recommender(registry, "movies", model, alias="champion")
            rec = load_recommender(registry, "movies", "champion")
    finally:
        registry.close()
    return rec, users


class Meter:
    """CPU seconds by stage, from wrappers around the recommender's steps."""

    def __init__(self) -> None:
        self.cpu: dict[str, float] = defaultdict(float)

    def wrap(self, stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.cpu[stage] += time.process_time() - t0

        return timed

    @contextmanager
    def stage(self, stage: str) -> Iterator[None]:
        t0 = time.process_time()
        yield
        self.cpu[stage] += time.process_time() - t0


def instrument(rec: Recommender, meter: Meter) -> Callable[[], None]:
    """Time the steps of ``rec.recommend_many``; returns what undoes it."""
    index, snapshot, ranker = rec.index, rec.snapshot, rec.ranker
    saved = [
        (rec, "_user_vectors", rec._user_vectors),
        (index, "query", index.query),
        (snapshot, "rows_many", snapshot.rows_many),
        (rec, "_fallback", rec._fallback),
        (recommender_module, "apply_rules_many", recommender_module.apply_rules_many),
    ]
    wraps = [
        (rec, "_user_vectors", "user tower"),
        (index, "query", "retrieval"),
        (snapshot, "rows_many", "features"),
        (rec, "_fallback", "fallback levels"),
    ]
    if ranker is not None:
        saved.append((ranker, "score", ranker.score))
        wraps.append((ranker, "score", "ranking"))
    for owner, name, stage in wraps:  # frozen dataclasses among them: set past __setattr__
        object.__setattr__(owner, name, meter.wrap(stage, getattr(owner, name)))
    rules = meter.wrap("rules", recommender_module.apply_rules_many)
    recommender_module.apply_rules_many = rules  # type: ignore[assignment]

    def undo() -> None:
        for owner, name, fn in saved:
            if owner is recommender_module:
                setattr(owner, name, fn)
            else:  # the instance attribute: back to the class's method
                object.__delattr__(owner, name)

    return undo


def body(pid: str, answer: Any, route: str) -> bytes:
    """The recommend handler's JSON body."""
    return json_response(answer_body(pid, answer, "movies", route)).body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=50, help="batches per measure")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/driftloop-recsys-profile"))
    args = parser.parse_args()
    rec, users = trained(args.cache)
    rng = random.Random(0)
    batches = [
        [RecommendRequest(rng.choice(users), n=10) for _ in range(args.batch)]
        for _ in range(args.reps)
    ]
    work = args.cache / "run"
    work.mkdir(exist_ok=True)
    for old in work.glob("*.db*"):
        old.unlink()
    audit = SqliteAuditLog(work / "audit.db")
    sessions = SqliteOnlineStore(work / "online.db")
    settings = ServingConfig.model_validate({"cache": {"enabled": False}})
    service = RecommenderService(
        ServedRecommender("movies", lambda: rec), settings=settings, writer=None, sessions=sessions
    )
    service.swap(rec)
    answers = rec.recommend_many(batches[0])  # warm the version's memos, as a server does
    for requests in batches:
        rec.recommend_many(requests)
    answers = answers[: args.batch]

    # 1. stages, each alone in this thread
    meter = Meter()
    undo = instrument(rec, meter)
    levels: dict[str, int] = defaultdict(int)
    for requests in batches:
        assert service.sessions is not None
        with meter.stage("sessions read"):
            service.sessions.read(sorted({r.user_id for r in requests}))
        with meter.stage("lists (recommend_many)"):
            answers = rec.recommend_many(requests)
        for answer in answers:
            levels[answer.level] += 1
        stamp = time.time()
        with meter.stage("audit records"):
            now = datetime.fromtimestamp(stamp, UTC)
            records = [
                audit_record("movies", f"{stamp}-{k}", r, a, now, 1.0, "default")
                for k, (r, a) in enumerate(zip(requests, answers, strict=True))
            ]
        with meter.stage("audit commit"):
            audit.write(records)
        with meter.stage("JSON bodies"):
            for k, answer in enumerate(answers):
                body(f"{stamp}-{k}", answer, "recommend")
    undo()
    answered = args.reps * args.batch
    per = {stage: 1e6 * cpu / answered for stage, cpu in meter.cpu.items()}
    lists = per["lists (recommend_many)"]
    inner = sum(per.get(s, 0.0) for s in STAGES)
    print(f"{answered} answers in batches of {args.batch}; levels {dict(levels)}")
    print(f"{'stage':<28}{'CPU us / answer':>16}")
    for stage in ("sessions read", "lists (recommend_many)"):
        print(f"{stage:<28}{per[stage]:>16.1f}")
    for stage in STAGES:
        print(f"  {stage:<26}{per.get(stage, 0.0):>16.1f}")
    print(f"  {'the rest (plans, answers)':<26}{lists - inner:>16.1f}")
    for stage in ("audit records", "audit commit", "JSON bodies"):
        print(f"{stage:<28}{per[stage]:>16.1f}")
    total = sum(per[s] for s in per if s not in STAGES)
    print(f"{'sum of stages':<28}{total:>16.1f}")

    # 2. end to end through the service (its thread, the group-commit writer)
    writer = GroupCommitWriter(audit)
    service.writer = writer

    async def run_all() -> None:
        for requests in batches:
            for pid, answer, route in await service._run(requests):
                body(pid, answer, route)

    t0 = time.process_time()
    asyncio.run(run_all())
    writer.close()  # waits for the last commit
    end_to_end = 1e6 * (time.process_time() - t0) / answered
    print(f"{'end to end (service)':<28}{end_to_end:>16.1f}")

    profile = cProfile.Profile()
    profile.enable()
    for requests in batches:
        rec.recommend_many(requests)
    profile.disable()
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(15)
    print(out.getvalue())
    audit.close()
    sessions.close()


if __name__ == "__main__":
    main()
