"""The group-sequential statistics (analysis/sequential.py): the boundary engine against published normal-limit
bounds and the fixed t quantile, and every rule's type-I error on fresh simulated paths, drawn here seed by seed
(not by the module's block decomposition) with a seed other than the calibration's. A tolerance of 3 Monte Carlo
SEs counts both the calibration's paths and the fresh ones."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from ganablate.analysis import sequential as seq
from ganablate.errors import ConfigError

LOOKS = list(range(4, 33, 4))  # the default plan: first 4, block 4, cap 32
CAP = 32
ALPHA = 0.05
CALIBRATION = 1_000_000
FRESH = 200_000
MARGIN = math.log1p(0.1)


def se(level: float, *paths: int) -> float:
    """The Monte Carlo SE of a crossing probability measured on fresh paths against boundaries calibrated on others."""
    return math.sqrt(level * (1 - level) * sum(1 / p for p in paths))


def fresh_t(paths: int, seed: int = 7, mean: float = 0.0) -> np.ndarray:
    """paths x looks paired t statistics of standard-normal per-seed contrasts, drawn one seed at a time."""
    d = np.random.default_rng(seed).standard_normal((paths, CAP)) + mean
    n, idx = np.array(LOOKS, float), np.array(LOOKS) - 1
    s1, s2 = np.cumsum(d, axis=1)[:, idx], np.cumsum(d * d, axis=1)[:, idx]
    return (s1 / n) / np.sqrt((s2 - s1 * s1 / n) / (n - 1) / n)


def crossing(t: np.ndarray, c: np.ndarray) -> float:
    return float(np.mean(np.any(t > c, axis=1)))


@pytest.fixture(scope="module")
def one_sided():
    return seq.boundaries(LOOKS, CAP, ALPHA, paths=CALIBRATION)


def test_the_normal_limit_reproduces_published_group_sequential_bounds():
    # gsDesign's five equal looks at one-sided 0.025. The MC SE of a bound is about sqrt(spent / paths) / phi(c):
    # at most 0.0045 (O'Brien-Fleming's second look) and 0.002 (Pocock's), so 0.02 and 0.01 are over 4 SEs.
    fractions = [0.2, 0.4, 0.6, 0.8, 1.0]
    obf = seq.z_boundaries(fractions, 0.025, "obrien-fleming", paths=10_000_000)
    np.testing.assert_allclose(obf, [4.877, 3.357, 2.680, 2.290, 2.031], atol=0.02)
    pocock = seq.z_boundaries(fractions, 0.025, "pocock", paths=8_000_000)
    np.testing.assert_allclose(pocock, [2.438, 2.427, 2.410, 2.397, 2.386], atol=0.01)


def test_a_single_look_is_the_fixed_t_quantile_exactly():
    assert seq.boundaries([13], 13, 0.05)[0] == stats.t.isf(0.05, 12)
    assert seq.boundaries([8], 32, 0.05)[0] == stats.t.isf(seq.spent("hsd", 0.05, 8 / 32), 7)  # spent on n / cap


def test_boundaries_fall_over_the_looks_and_rise_as_alpha_falls():
    tables = [seq.boundaries(LOOKS, CAP, alpha, paths=200_000) for alpha in (0.05, 0.025, 0.05 / 6)]
    for c in tables:
        assert np.all(np.diff(c) < 0)
    assert np.all(tables[0] < tables[1]) and np.all(tables[1] < tables[2])


def test_the_same_seed_gives_the_same_boundaries_and_another_seed_other_ones():
    first, again = (seq.boundaries(LOOKS, CAP, ALPHA, paths=100_000, seed=3) for _ in range(2))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, seq.boundaries(LOOKS, CAP, ALPHA, paths=100_000, seed=4))


def test_a_realized_look_sequence_keeps_the_boundaries_already_used():
    # a failed run makes look 3 hold 11 seeds: looks 1-2 keep their boundaries, the rest are its own
    planned = seq.boundaries(LOOKS, CAP, ALPHA, paths=100_000)
    realized = seq.boundaries([4, 8, 11, 16], CAP, ALPHA, paths=100_000)
    np.testing.assert_array_equal(planned[:2], realized[:2])
    assert realized[2] != planned[2]


def test_one_sided_type_i_error_is_the_level(one_sided):
    assert crossing(fresh_t(FRESH), one_sided) == pytest.approx(ALPHA, abs=3 * se(ALPHA, CALIBRATION, FRESH))


def test_two_sided_type_i_error_is_the_level():
    level = ALPHA / 3  # a member of a family of three at its Bonferroni level
    c = seq.boundaries(LOOKS, CAP, level / 2, paths=CALIBRATION)
    measured = float(np.mean(np.any(np.abs(fresh_t(FRESH)) > c, axis=1)))
    assert measured == pytest.approx(level, abs=3 * se(level, CALIBRATION, FRESH))


def test_the_textbook_significance_level_conversion_is_not_what_is_used(one_sided):
    # Jennison & Turnbull's approximation: the normal bound's nominal p as a t quantile; 0.053 at 0.05 from 4 seeds
    z = seq.z_boundaries(np.array(LOOKS) / CAP, ALPHA, paths=CALIBRATION)
    textbook = stats.t.isf(stats.norm.sf(z), np.array(LOOKS) - 1)
    t, tolerance = fresh_t(FRESH), 3 * se(ALPHA, CALIBRATION, FRESH)
    assert crossing(t, textbook) > ALPHA + tolerance
    assert crossing(t, one_sided) == pytest.approx(ALPHA, abs=tolerance)


@pytest.mark.parametrize("sd", [0.05, 0.17])
def test_tost_exactly_at_the_margin_claims_equivalence_at_most_at_the_level(one_sided, sd):
    oc = seq.simulate("equivalence", MARGIN, sd, LOOKS, one_sided, paths=FRESH, seed=11)
    assert oc["equivalent"] <= ALPHA + 3 * se(ALPHA, CALIBRATION, FRESH)


@pytest.mark.parametrize(("sd", "better"), [(0.05, "lower"), (0.17, "higher")])
def test_non_inferiority_exactly_at_the_margin_claims_it_at_the_level(one_sided, sd, better):
    at_margin = MARGIN if better == "lower" else -MARGIN  # the margin lies on the metric's bad side
    oc = seq.simulate("noninferiority", at_margin, sd, LOOKS, one_sided, better=better, paths=FRESH, seed=12)
    assert oc["non-inferior"] == pytest.approx(ALPHA, abs=3 * se(ALPHA, CALIBRATION, FRESH))


def test_a_fixed_design_has_the_power_of_the_fixed_t_test():
    n, log_ratio, sd, paths = 13, math.log(1.2), 0.17, 100_000
    c = stats.t.isf(ALPHA / 2, n - 1)
    oc = seq.simulate("difference", log_ratio, sd, [n], [c], paths=paths, seed=13)
    shift = log_ratio / sd * math.sqrt(n)
    power = stats.nct.sf(c, n - 1, shift) + stats.nct.cdf(-c, n - 1, shift)
    assert oc["worse"] + oc["better"] == pytest.approx(power, abs=3 * se(power, paths))
    assert oc["mean_seeds"] == oc["p90_seeds"] == n


def test_large_effects_stop_within_six_seeds_on_average():
    c = seq.boundaries(LOOKS, CAP, ALPHA / 6, paths=200_000)  # per side, a member of a family of three
    for ratio in (1.67, 3.6):
        oc = seq.simulate("difference", math.log(ratio), 0.05, LOOKS, c, paths=20_000)
        assert oc["worse"] > 0.99 and oc["mean_seeds"] <= 6


@pytest.fixture(scope="module")
def holm_tables():
    """Per-side boundaries of a two-sided family of three at alpha/3, alpha/2 and alpha (Holm's steps)."""
    return seq.holm_tables(LOOKS, CAP, ALPHA, 3)


def family_t(paths: int, means: tuple, seed: int) -> np.ndarray:
    """|T| (paths x 3 members x looks) of three arms each against one shared reference arm (correlation 0.5)."""
    rng = np.random.default_rng(seed)
    reference = rng.standard_normal((paths, 1, CAP))
    d = rng.standard_normal((paths, 3, CAP)) + np.array(means)[None, :, None] - reference
    n, idx = np.array(LOOKS, float), np.array(LOOKS) - 1
    s1, s2 = np.cumsum(d, axis=-1)[..., idx], np.cumsum(d * d, axis=-1)[..., idx]
    return np.abs(s1 / n) / np.sqrt((s2 - s1 * s1 / n) / (n - 1) / n)


@pytest.mark.parametrize(
    ("means", "level_left"),
    [((0.0, 0.0, 0.0), None), ((20.0, 20.0, 0.0), ALPHA)],
    ids=["global null", "one true null left"],
)
def test_holm_keeps_the_familywise_error_at_the_level(holm_tables, means, level_left):
    paths = 20_000
    rejected, _ = seq.holm(family_t(paths, means, seed=17), holm_tables)
    nulls = np.array(means) == 0
    fwer = float(np.mean(np.any(rejected[:, nulls], axis=1)))
    tolerance = 3 * se(ALPHA, paths)
    if level_left is None:
        assert fwer <= ALPHA + tolerance
    else:  # the two rejected members pass their level on: the last one is tested at the whole alpha
        assert np.all(rejected[:, ~nulls].mean(axis=0) > 0.999)
        assert fwer == pytest.approx(level_left, abs=tolerance)


def test_holm_retests_earlier_looks_at_the_raised_level():
    tables = np.array([[4.0, 3.0], [2.0, 1.5], [1.0, 0.5]])  # steps alpha/3, alpha/2, alpha at two looks
    t = np.array([[5.0, 0.1], [2.5, 0.2], [0.1, 0.1]])  # member 1 crossed step 1's bound at look 1 only
    rejected, step = seq.holm(t, tables)
    assert rejected.tolist() == [True, True, False] and step.tolist() == [0, 1, -1]


def test_an_untestable_holm_member_keeps_the_family_size():
    tables = np.array([[3.0], [2.0], [1.0]])
    rejected, _ = seq.holm(np.array([[2.5], [np.nan], [0.5]]), tables)  # at alpha/2, not alpha/3: not rejected
    assert not rejected.any()


def read(rule, d, shown=False, better="lower", last=False):
    """A rule's word on per-seed contrasts d, its interval read at a boundary of 2 against a margin of 10%."""
    return rule.read(d, shown, 2.0, 0.1, better, last)


def test_the_rules_speak_the_house_words():
    rng = np.random.default_rng(0)
    tight, wide = rng.normal(0, 0.01, 8), np.array([-0.5, 0.5, -0.3, 0.3, -0.1, 0.1, 0.0, 0.05])
    assert read(seq.EQUIVALENCE, tight) == "equivalent"
    assert read(seq.EQUIVALENCE, tight + 0.5) == "not equivalent"
    assert read(seq.EQUIVALENCE, wide) is None
    assert read(seq.EQUIVALENCE, wide, last=True) == "inconclusive"
    assert read(seq.EQUIVALENCE, wide, shown=True) == "equivalent"  # its boundary crossed: shown, whatever c reads
    assert read(seq.NONINFERIORITY, tight - 0.5) == "non-inferior"  # much lower FID: no worse
    assert read(seq.NONINFERIORITY, tight + 0.5) == "inferior"
    assert read(seq.NONINFERIORITY, tight + 0.5, better="higher") == "non-inferior"  # higher is better
    assert read(seq.NONINFERIORITY, tight - 0.5, better="higher") == "inferior"
    assert read(seq.DIFFERENCE, tight + 0.5, shown=True) == "worse"
    assert read(seq.DIFFERENCE, tight + 0.5, shown=True, better="higher") == "better"
    assert read(seq.DIFFERENCE, tight) == seq.NO_MATERIAL_DIFFERENCE
    assert read(seq.DIFFERENCE, tight + 0.5) is None


def test_identical_arms_say_identical_and_a_spreadless_contrast_is_not_tested():
    for rule in (seq.EQUIVALENCE, seq.DIFFERENCE):
        assert read(rule, np.zeros(4)) == "identical"
        assert read(rule, np.full(4, 0.3)) == "inconclusive"


def test_the_rci_is_the_mean_plus_minus_the_boundary_in_standard_errors():
    d = np.array([0.1, 0.2, 0.3, 0.4])
    half = 3.0 * d.std(ddof=1) / 2
    assert seq.rci(d, 3.0) == pytest.approx((0.25 - half, 0.25 + half))


def test_a_skewed_or_outlying_contrast_is_flagged_and_a_gaussian_one_is_not():
    gaussian = np.random.default_rng(1).standard_normal(16)
    assert seq.shape_flag(gaussian) is None
    assert "skew" in seq.shape_flag(np.random.default_rng(2).chisquare(1, 16))
    assert "MAD" in seq.shape_flag(np.r_[gaussian[:11] * 0.05, 0.0, 2.0, -2.0])  # two seeds in a far second mode


@pytest.mark.parametrize(
    ("call", "key"),
    [
        (lambda: seq.spent("linear", 0.05, 0.5), "spending: 'linear' is not one of hsd, obrien-fleming, pocock"),
        (lambda: seq.boundaries([4, 8], 3, 0.05), "cap"),
        (lambda: seq.boundaries([4, 8, 8], 32, 0.05), "looks"),
        (lambda: seq.boundaries([4, 8], 32, 0.5), "alpha"),
        (lambda: seq.boundaries([4, 8], 32, 0.0), "alpha"),
        (lambda: seq.simulate("superiority", 0.0, 0.1, [4], [3.0]), "role"),
    ],
)
def test_bad_inputs_are_refused_in_one_line_naming_the_key(call, key):
    with pytest.raises(ConfigError) as refused:
        call()
    assert str(refused.value).startswith(key) and "\n" not in str(refused.value)


def test_the_rules_speak_only_words_of_the_house_and_the_futility_verdict():
    from ganablate.study import vocab

    words = {w for rule in seq.ROLES.values() for w in rule.words}
    assert words <= set(vocab.VERDICTS)


def test_a_look_that_spends_less_than_one_calibration_path_is_silent_and_its_boundary_infinite():
    # O'Brien-Fleming spends 3e-13, 3e-7 and 3e-5 of 0.01 at 4, 8 and 12 of 32 seeds: below one of 20000 paths
    looks, paths = [4, 8, 12, 16, 20, 24, 28, 32], 20_000
    silent = seq.silent_looks(looks, 32, 0.01, "obrien-fleming", paths=paths)
    c = seq.boundaries(looks, 32, 0.01, "obrien-fleming", paths=paths)
    assert list(silent) == [0, 1, 2] and all(0 <= spends < 1 / paths for spends in silent.values())
    assert c[0] > 1000 and np.isinf(c[1]) and set(np.flatnonzero(~np.isfinite(c))) <= set(silent)
    assert seq.silent_looks(looks, 32, 0.01, "hsd", paths=paths) == {}
