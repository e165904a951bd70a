"""The business rules stage of a recommend batch against another checkout's, in one process.

``benchmarks/recsys_profile.py`` runs are separate processes on a shared machine: a few us
of difference in one stage is lost in their spread (its retrieval stage alone moved between
33 and 147 us per answer from run to run). This replays the same stage both ways over the
same inputs instead: the profile's model and batches (64 requests of ML-100k users,
``n`` 10), ``apply_rules_many`` as this checkout has it and as ``--baseline-src``'s
``driftloop/recsys/_rules.py`` has it (loaded beside it as another module), alternating,
in CPU time (``time.process_time``). It first checks that both give the same answers from
``recommend_many``, then times the rules alone on the captured inputs and
``recommend_many`` whole with either rules module in place.

    python benchmarks/recsys_rules_ab.py --baseline-src /path/to/main/src [--reps 20]
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import sys
import time
from pathlib import Path
from typing import Any

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
    path = args.baseline_src / "driftloop" / "recsys" / "_rules.py"
    spec = importlib.util.spec_from_file_location("baseline_rules", path)
    assert spec is not None
    assert spec.loader is not None
    baseline = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(baseline)
    rules = {"baseline": baseline.apply_rules_many, "this": recommender_module.apply_rules_many}
    rec, users = trained(args.cache)
    rng = random.Random(0)
    batches = [
        [RecommendRequest(rng.choice(users), n=10) for _ in range(64)] for _ in range(args.batches)
    ]
    answers = sum(map(len, batches))

    def lists(name: str) -> list[Any]:
        recommender_module.apply_rules_many = rules[name]  # type: ignore[assignment]
        return [rec.recommend_many(batch) for batch in batches]

    lists("this")  # the version's memos, as a server has them
    assert lists("baseline") == lists("this"), "the rules give other answers"
    captured: list[tuple[Any, Any]] = []

    def keep(*a: Any, **kw: Any) -> Any:
        captured.append((a, kw))
        return rules["this"](*a, **kw)

    recommender_module.apply_rules_many = keep  # type: ignore[assignment]
    lists_of_this = [rec.recommend_many(batch) for batch in batches]
    assert lists_of_this == lists("this")
    stage = dict.fromkeys(rules, 0.0)
    whole = dict.fromkeys(rules, 0.0)
    for rep in range(args.reps):
        for name in list(rules)[:: 1 if rep % 2 == 0 else -1]:
            started = time.process_time()
            for a, kw in captured:
                rules[name](*a, **kw)
            stage[name] += time.process_time() - started
            started = time.process_time()
            lists(name)
            whole[name] += time.process_time() - started
    recommender_module.apply_rules_many = rules["this"]  # type: ignore[assignment]
    scale = 1e6 / (answers * args.reps)
    print(f"{answers} answers x {args.reps} reps, same answers both ways")
    print(f"{'CPU us per answer':<28}{'baseline':>10}{'this':>10}")
    print(f"{'rules (apply_rules_many)':<28}{stage['baseline'] * scale:>10.1f}"
          f"{stage['this'] * scale:>10.1f}")  # fmt: skip
    print(f"{'recommend_many':<28}{whole['baseline'] * scale:>10.1f}"
          f"{whole['this'] * scale:>10.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
