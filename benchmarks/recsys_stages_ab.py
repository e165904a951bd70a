"""Two stages of a recommend batch against another checkout's, in one process.

``benchmarks/recsys_profile.py`` runs are separate processes on a shared machine: a few us
of difference in one stage is lost in their spread (its retrieval stage alone moved between
33 and 147 us per answer from run to run). This replays the same stage both ways over the
same inputs instead: the profile's model and batches (64 requests of ML-100k users,
``n`` 10); the business rules (``apply_rules_many``) and the candidate features
(``Snapshot.rows_many``) as this checkout has them and as ``--baseline-src``'s
``driftloop/recsys/_rules.py`` and ``_features.py`` have them (loaded beside them as other
modules), alternating, in CPU time (``time.process_time``). It first checks that both give
the same features (bit for bit) and the same answers from ``recommend_many``, then times
each stage alone on the captured inputs and ``recommend_many`` whole with either pair.

    python benchmarks/recsys_stages_ab.py --baseline-src /path/to/main/src [--reps 20]
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import driftloop.recsys._recommender as recommender_module
from driftloop.recsys import RecommendRequest

sys.path.insert(0, str(Path(__file__).parent))
from recsys_profile import trained


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-src", type=Path, required=True)
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/driftloop-recsys-profile"))
    args = parser.parse_args()
    base_rules = _module(args.baseline_src, "_rules")
    base_features = _module(args.baseline_src, "_features")
    rec, users = trained(args.cache)
    snapshot = rec.snapshot
    this_rows = snapshot.rows_many

    def base_rows(*a: Any) -> Any:
        return base_features.Snapshot.rows_many(snapshot, *a)

    arms = {
        "baseline": (base_rules.apply_rules_many, base_rows),
        "this": (recommender_module.apply_rules_many, this_rows),
    }
    rng = random.Random(0)
    batches = [
        [RecommendRequest(rng.choice(users), n=10) for _ in range(64)] for _ in range(args.batches)
    ]
    answers = sum(map(len, batches))

    def use(name: str) -> None:
        rules, rows = arms[name]
        recommender_module.apply_rules_many = rules  # type: ignore[assignment]
        object.__setattr__(snapshot, "rows_many", rows)  # a frozen dataclass

    def lists(name: str) -> list[Any]:
        use(name)
        return [rec.recommend_many(batch) for batch in batches]

    lists("this")  # the version's memos, as a server has them
    assert lists("baseline") == lists("this"), "other answers"
    calls: dict[str, list[tuple[Any, Any]]] = {"rules": [], "features": []}

    def keeping(stage: str, fn: Any) -> Any:
        def kept(*a: Any, **kw: Any) -> Any:
            calls[stage].append((a, kw))
            return fn(*a, **kw)

        return kept

    recommender_module.apply_rules_many = keeping("rules", arms["this"][0])  # type: ignore[assignment]
    object.__setattr__(snapshot, "rows_many", keeping("features", this_rows))
    for batch in batches:
        rec.recommend_many(batch)
    for a, _ in calls["features"]:
        assert np.array_equal(this_rows(*a), base_rows(*a), equal_nan=True), "other features"
    cpu = {(stage, name): 0.0 for stage in ("rules", "features", "whole") for name in arms}
    for rep in range(args.reps):
        for name in list(arms)[:: 1 if rep % 2 == 0 else -1]:
            for stage, fn in zip(("rules", "features"), arms[name], strict=True):
                started = time.process_time()
                for a, kw in calls[stage]:
                    fn(*a, **kw)
                cpu[stage, name] += time.process_time() - started
            started = time.process_time()
            lists(name)
            cpu["whole", name] += time.process_time() - started
    use("this")
    object.__delattr__(snapshot, "rows_many")
    scale = 1e6 / (answers * args.reps)
    print(f"{answers} answers x {args.reps} reps, the same features and answers both ways")
    print(f"{'CPU us per answer':<36}{'baseline':>10}{'this':>10}")
    for stage, label in (
        ("rules", "rules (apply_rules_many)"),
        ("features", "features (Snapshot.rows_many)"),
        ("whole", "recommend_many"),
    ):
        base, this = cpu[stage, "baseline"] * scale, cpu[stage, "this"] * scale
        print(f"{label:<36}{base:>10.1f}{this:>10.1f}")


def _module(src: Path, name: str) -> Any:
    """``driftloop/recsys/<name>.py`` of the checkout ``src``, as a module of its own."""
    spec = importlib.util.spec_from_file_location(
        f"baseline{name}", src / "driftloop" / "recsys" / f"{name}.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


if __name__ == "__main__":
    main()
