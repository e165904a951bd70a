from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from driftloop.core.config import FallbackConfig, RecsysConfig, RecsysRules
from driftloop.recsys import Recommender, RecommendRequest, train_recommender
from recsys_world import FAST, world


@pytest.fixture(scope="module")
def rec() -> Recommender:
    frame, catalog = world()
    return train_recommender(frame, catalog, config=FAST)


def with_config(rec: Recommender, **sections: object) -> Recommender:
    return replace(rec, config=RecsysConfig.model_validate(sections))


def test_a_warm_user_gets_personalized_recommendations(rec: Recommender) -> None:
    answer = rec.recommend(RecommendRequest("u1", n=10))
    assert answer.level == "personalized"
    assert len(answer.items) == 10
    assert 0.0 < answer.confidence <= 1.0


def test_a_user_with_a_few_interactions_gets_the_hybrid_of_their_content(
    rec: Recommender,
) -> None:
    answer = rec.recommend(RecommendRequest("newcomer", n=5, session=("i0", "i5")))
    assert answer.level == "hybrid"
    # Items 0 and 5 are action films: the content of the items seen leads the list.
    assert "action" in rec.snapshot.item_tags[rec.items.index(answer.items[0])]


def test_an_unknown_user_with_demographics_gets_the_cohort(rec: Recommender) -> None:
    answer = rec.recommend(
        RecommendRequest("stranger", n=5, context={"gender": "F", "age_group": "25-34"})
    )
    assert answer.level == "cohort"
    assert answer.interactions == 0


def test_an_unknown_user_without_anything_gets_global_popularity(rec: Recommender) -> None:
    answer = rec.recommend(RecommendRequest("stranger", n=5))
    assert answer.level == "popular"
    assert list(answer.items) == rec.popularity.top(5)


def test_low_confidence_sends_a_warm_user_to_the_hybrid(rec: Recommender) -> None:
    strict = with_config(rec, fallback={"min_confidence": 1.0})
    assert strict.recommend(RecommendRequest("u1", n=10)).level == "hybrid"


def test_a_cohort_too_small_falls_to_global_popularity(rec: Recommender) -> None:
    picky = with_config(rec, fallback=FallbackConfig(cohort_min=10**6).model_dump())
    answer = picky.recommend(
        RecommendRequest("stranger", n=5, context={"gender": "F", "age_group": "25-34"})
    )
    assert answer.level == "popular"


def test_seen_items_are_never_recommended_at_any_level(rec: Recommender) -> None:
    requests = [
        RecommendRequest("u1", n=30),
        RecommendRequest("u2", n=30, session=("i1", "i2", "i3")),
        RecommendRequest("newcomer", n=30, session=("i0", "i5")),
    ]
    for request, answer in zip(requests, rec.recommend_many(requests), strict=True):
        assert not set(answer.items) & set(rec.history(request)), answer.level


def test_at_most_k_items_per_genre_in_the_top_n(rec: Recommender) -> None:
    capped = with_config(rec, rules=RecsysRules(max_per_genre=2).model_dump())
    for request in (RecommendRequest("u1", n=8), RecommendRequest("stranger", n=8)):
        answer = capped.recommend(request)
        counts: dict[str, int] = {}
        for item in answer.items:
            for tag in capped.snapshot.item_tags[capped.items.index(item)]:
                counts[tag] = counts.get(tag, 0) + 1
        assert max(counts.values()) <= 2, (answer.level, counts)


def test_the_freshness_boost_moves_newer_items_up(rec: Recommender) -> None:
    plain = rec.recommend(RecommendRequest("stranger", n=10))
    boosted = with_config(rec, rules={"freshness_boost": 5.0}).recommend(
        RecommendRequest("stranger", n=10)
    )

    def mean_year(items: tuple[str, ...]) -> float:
        return sum(rec.snapshot.item_year[rec.items.index(i)] for i in items) / len(items)

    assert mean_year(boosted.items) > mean_year(plain.items)


def test_a_new_item_enters_the_index_through_its_content(rec: Recommender) -> None:
    frame, catalog = world()
    new = catalog.items.iloc[[0]].assign(item_id="brand-new")
    catalog = replace(catalog, items=pd.concat([catalog.items, new]))
    fresh = train_recommender(frame, catalog, config=replace(FAST, ranker_fraction=0.0))
    assert "brand-new" in fresh.items
    assert "brand-new" not in fresh.encoding.items  # no interaction: content only
    position = fresh.items.index("brand-new")
    labels, _ = fresh.index.query(fresh.index.vectors([position]), 5)
    assert position in labels[0]


def test_a_batch_answers_each_user_as_if_asked_alone(rec: Recommender) -> None:
    # The batch is answered with masks over one retrieved matrix: one user's seen items,
    # session or context must never leak into another's list.
    requests = [
        RecommendRequest("u1", n=5),
        RecommendRequest("u2", n=12, session=("i3", "i8")),
        RecommendRequest("u3", n=3, context={"gender": "F"}),
        RecommendRequest("stranger", n=4, context={"gender": "M", "age_group": "18-24"}),
        RecommendRequest("u1", n=7, session=("i1",)),
        RecommendRequest("nobody", n=2),
    ]
    for config in ({}, {"rules": {"max_per_genre": 1, "freshness_boost": 0.2}}):
        version = with_config(rec, **config)
        alone = [with_config(rec, **config).recommend(r) for r in requests]
        together = version.recommend_many(requests)
        assert [a.items for a in together] == [a.items for a in alone]
        assert [a.level for a in together] == [a.level for a in alone]
        for mine, single in zip(together, alone, strict=True):
            assert mine.scores == pytest.approx(single.scores)
        assert "i1" not in together[4].items
        assert not {"i3", "i8"} & set(together[1].items)


def test_the_batch_features_are_each_users_own(rec: Recommender) -> None:
    # The ranker reads the same features whether its rows are built one user at a time
    # (training) or for a whole batch (serving).
    snapshot = rec.snapshot
    users = [("u1", [0, 4, 9]), ("u2", [1, 2]), ("u7", [5, 3, 8, 11])]
    alone = [
        snapshot.rows(
            snapshot.history[u],
            snapshot.user_mean_rating.get(u),
            np.array(c),
            np.linspace(1.0, 0.5, len(c)),
        )
        for u, c in users
    ]
    owner = np.repeat(np.arange(len(users)), [len(c) for _, c in users])
    together = snapshot.rows_many(
        [snapshot.positions(snapshot.history[u]) for u, _ in users],
        [len(snapshot.history[u]) for u, _ in users],
        [snapshot.user_mean_rating.get(u) for u, _ in users],
        owner,
        np.concatenate([c for _, c in users]),
        np.concatenate([np.linspace(1.0, 0.5, len(c)) for _, c in users]),
        np.concatenate([np.arange(len(c)) for _, c in users]),
    )
    np.testing.assert_array_equal(together, np.vstack(alone))
