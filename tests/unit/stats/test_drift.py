from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import spatial, stats

from driftloop.core import InvalidParameterError, SchemaMismatchError
from driftloop.stats import (
    ChiSquare,
    JensenShannon,
    KLDivergence,
    KolmogorovSmirnov,
    PopulationStabilityIndex,
    Profile,
    Wasserstein,
    compare_frames,
    compare_to_profile,
)


@pytest.fixture
def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(7)
    ref = pd.DataFrame(
        {
            "normal": rng.normal(0, 1, 3_000),
            "shifted": rng.normal(0, 1, 3_000),
            "rounded": np.round(rng.normal(0, 3, 3_000)),  # many ties
            "lognormal": rng.lognormal(2, 1, 3_000),
            "channel": rng.choice(["pos", "web", "atm"], 3_000, p=[0.5, 0.3, 0.2]),
        }
    )
    cur = pd.DataFrame(
        {
            "normal": rng.normal(0, 1, 2_500),
            "shifted": rng.normal(0.3, 1, 2_500),
            "rounded": np.round(rng.normal(0.5, 3, 2_500)),
            "lognormal": rng.lognormal(2.2, 1, 2_500),
            "channel": rng.choice(["pos", "web", "moto"], 2_500, p=[0.4, 0.4, 0.2]),
        }
    )
    return ref, cur


NUMERIC = ["normal", "shifted", "rounded", "lognormal"]


def test_ks_statistic_and_p_value_equal_scipy_exact_mode(frames) -> None:
    ref, cur = frames
    table = compare_frames(ref, cur)
    ks = table.results["ks"]
    for i, name in enumerate(table.numeric.names):
        expected = stats.ks_2samp(ref[name], cur[name])
        assert abs(ks.values[i] - expected.statistic) <= 1e-12
        assert ks.p_values[i] == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)


def test_ks_equals_scipy_in_asymptotic_mode_against_a_profile_sample() -> None:
    rng = np.random.default_rng(3)
    ref = pd.DataFrame({"x": rng.normal(0, 1, 40_000), "y": rng.exponential(1, 40_000)})
    cur = pd.DataFrame({"x": rng.normal(0.01, 1, 30_000), "y": rng.exponential(1.02, 30_000)})
    profile = Profile.from_frame(ref, sample_size=20_000)
    ks = compare_to_profile(profile, cur).results["ks"]
    for i, name in enumerate(["x", "y"]):
        expected = stats.ks_2samp(profile.numeric[name].sample, cur[name])
        assert abs(ks.values[i] - expected.statistic) <= 1e-12
        assert ks.p_values[i] == pytest.approx(expected.pvalue, rel=1e-9)


def test_ks_asymptotic_method_equals_scipys_asymptotic_p_value(frames) -> None:
    ref, cur = frames
    table = compare_frames(ref, cur, statistics=[KolmogorovSmirnov(method="asymp")])
    ks = table.results["ks"]
    for i, name in enumerate(table.numeric.names):
        expected = stats.ks_2samp(ref[name], cur[name], method="asymp")
        assert abs(ks.values[i] - expected.statistic) <= 1e-12
        assert ks.p_values[i] == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)


def test_wasserstein_is_scipys_distance_over_the_reference_std(frames) -> None:
    ref, cur = frames
    table = compare_frames(ref, cur)
    for i, name in enumerate(table.numeric.names):
        raw = stats.wasserstein_distance(ref[name], cur[name])
        expected = raw / max(float(ref[name].std(ddof=0)), 1e-3)
        assert table.results["wasserstein"].values[i] == pytest.approx(expected, rel=1e-9)


def _binned(table, name):
    pair = table.numeric
    i = pair.names.index(name)
    mask = pair.mask[i]
    return pair.ref_counts[i][mask], pair.cur_counts[i][mask], i


def test_binned_statistics_equal_their_textbook_definitions(frames) -> None:
    ref, cur = frames
    table = compare_frames(ref, cur, bins=10)
    for name in NUMERIC:
        r, c, i = _binned(table, name)
        rs, cs = (r + 0.5) / (r + 0.5).sum(), (c + 0.5) / (c + 0.5).sum()
        psi = float(np.sum((cs - rs) * np.log(cs / rs)))
        assert table.results["psi"].values[i] == pytest.approx(psi, rel=1e-12)
        kl = stats.entropy(rs, cs)
        assert table.results["kl_divergence"].values[i] == pytest.approx(kl, rel=1e-12)
        js = spatial.distance.jensenshannon(r / r.sum(), c / c.sum(), base=2)
        assert table.results["jensen_shannon"].values[i] == pytest.approx(js, rel=1e-9)


def test_numeric_bins_follow_the_reference_quantile_edges_plus_out_of_range_bins(frames) -> None:
    ref, cur = frames
    table = compare_frames(ref, cur, bins=10)
    profile = Profile.from_frame(ref, bins=10, sample_size=len(ref))
    for name in NUMERIC:
        _, c, _ = _binned(table, name)
        p = profile.numeric[name]
        values = cur[name].to_numpy()
        inside = (values >= p.min) & (values <= p.max)
        expected = np.bincount(p.bin_of(values[inside]), minlength=len(p.counts))
        # one extra bin below the reference minimum, one above its maximum
        assert c[0] == (values < p.min).sum()
        assert c[-1] == (values > p.max).sum()
        assert np.array_equal(c[1:-1], expected)


def test_chi_square_equals_scipy_contingency_including_unseen_categories(frames) -> None:
    ref, cur = frames
    table = compare_frames(ref, cur)
    result = table.categorical_results["chi_square"]
    cats = ["atm", "moto", "pos", "web"]
    observed = np.array(
        [
            [int((ref["channel"] == c).sum()) for c in cats],
            [int((cur["channel"] == c).sum()) for c in cats],
        ]
    )
    expected = stats.chi2_contingency(observed, correction=False)
    assert result.values[0] == pytest.approx(expected.statistic, rel=1e-12)
    assert result.p_values[0] == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)
    assert bool(result.drifted[0])


def test_identical_distributions_do_not_drift_and_shifted_ones_do(frames) -> None:
    ref, cur = frames
    table = compare_frames(ref, cur)
    names = table.numeric.names
    w = table.results["wasserstein"]
    assert not w.drifted[names.index("normal")]
    assert w.drifted[names.index("shifted")]
    assert table.results["ks"].drifted[names.index("shifted")]


def test_constant_features_never_divide_by_zero() -> None:
    ref = pd.DataFrame({"c": np.ones(500), "k": ["a"] * 500})
    cur = pd.DataFrame({"c": np.ones(400), "k": ["a"] * 400})
    with np.errstate(all="raise"):
        same = compare_frames(ref, cur)
        moved = compare_frames(ref, pd.DataFrame({"c": np.full(400, 2.0), "k": ["b"] * 400}))
    for name in ("psi", "ks", "jensen_shannon", "kl_divergence", "wasserstein"):
        assert np.isfinite(same.results[name].values).all(), name
        assert not same.results[name].drifted.any(), name
        assert moved.results[name].drifted.all(), name
    assert np.isfinite(same.categorical_results["chi_square"].values).all()
    assert not same.categorical_results["chi_square"].drifted.any()
    assert moved.categorical_results["chi_square"].drifted.all()


def test_features_missing_from_the_window_are_reported_not_compared(frames) -> None:
    ref, cur = frames
    table = compare_frames(ref, cur.drop(columns=["lognormal", "channel"]))
    assert table.status["lognormal"] == "missing"
    assert table.status["channel"] == "missing"
    assert "lognormal" not in table.numeric.names
    rows = table.to_frame()
    assert set(rows.loc[rows["status"] == "missing", "feature"]) == {"lognormal", "channel"}


def test_too_few_rows_are_insufficient_data_not_a_verdict(frames) -> None:
    ref, cur = frames
    few = cur.head(50).copy()
    few.loc[:, "shifted"] = 100.0  # would be a huge drift if judged
    table = compare_frames(ref, few, min_rows=100)
    assert set(table.status.values()) == {"insufficient-data"}
    for result in table.results.values():
        assert not result.drifted.any()
        assert np.isnan(result.values).all()


def test_nulls_in_the_window_are_left_out_of_the_distributions(frames) -> None:
    ref, cur = frames
    holed = cur.copy()
    holed.loc[::2, "normal"] = np.nan
    table = compare_frames(ref, holed)
    i = table.numeric.names.index("normal")
    expected = stats.ks_2samp(ref["normal"], holed["normal"].dropna())
    assert abs(table.results["ks"].values[i] - expected.statistic) <= 1e-12


def test_a_window_with_text_where_numbers_were_profiled_is_refused(frames) -> None:
    ref, cur = frames
    bad = cur.assign(normal=cur["normal"].astype(str))
    with pytest.raises(SchemaMismatchError, match="'normal'"):
        compare_frames(ref, bad)


@pytest.mark.parametrize(
    "make",
    [
        PopulationStabilityIndex,
        KolmogorovSmirnov,
        JensenShannon,
        KLDivergence,
        Wasserstein,
        ChiSquare,
    ],
)
def test_thresholds_must_be_positive(make) -> None:
    with pytest.raises(InvalidParameterError, match="threshold"):
        make(threshold=0.0)
