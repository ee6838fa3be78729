"""The verdict rule: the paired interval, the five verdicts, composite claims, and its calibration.

The calibration tests simulate experiments at the seed and item counts each claim declares (and the
chapters must use: ``record_experiment`` refuses other counts), with no true effect and with an effect of
twice the margin, and check how often the rule decides. Fixed simulation seeds: deterministic.
"""

import math

import numpy as np
import pytest

from infir_lib import report
from infir_lib.report import verdicts as V


def test_interval_of_identical_arms_is_a_point_at_zero():
    x = np.array([[1, 0, 1, 1], [0, 0, 1, 1]], dtype=float)
    iv = V.paired_interval(x, x)
    assert iv.diff == 0 and iv.lo == 0 and iv.hi == 0
    assert V.decide(iv, 0.05) == "no effect at toy scale"


def test_interval_matches_the_paired_t_interval_for_one_item_per_seed():
    from scipy import stats
    t, c = [2.0, 2.3, 2.1, 2.6], [1.0, 1.5, 1.4, 1.2]
    iv = V.paired_interval(t, c)
    d = np.subtract(t, c)
    h = stats.t.ppf(0.975, 3) * d.std(ddof=1) / 2
    assert iv.diff == pytest.approx(d.mean()) and iv.half_width == pytest.approx(h)
    assert iv.n_seeds == 4 and iv.n_items == 1 and iv.df == pytest.approx(3)


def test_one_seed_is_the_paired_interval_over_items():
    from scipy import stats
    rng = np.random.default_rng(1)
    t, c = rng.normal(0.2, 1, (1, 50)), rng.normal(0, 1, (1, 50))
    iv = V.paired_interval(t, c)
    d = (t - c).ravel()
    assert iv.half_width == pytest.approx(stats.t.ppf(0.975, 49) * d.std(ddof=1) / math.sqrt(50))


def test_seed_noise_widens_the_interval():
    rng = np.random.default_rng(2)
    base = (rng.random((1, 300)) < 0.5).astype(float)
    calm_t = np.repeat(base, 3, axis=0)
    shifted = calm_t.copy()
    shifted[0, :90] = 1.0  # one run is better on many items: a run-to-run shift
    calm = V.paired_interval(calm_t, np.repeat(base, 3, axis=0))
    noisy = V.paired_interval(shifted, np.repeat(base, 3, axis=0))
    assert noisy.half_width > calm.half_width
    assert noisy.seed_var > 0


def test_lower_is_better_flips_the_sign():
    iv = V.paired_interval([[1.0, 1.1]] * 3, [[2.0, 2.1]] * 3, higher_is_better=False)
    assert iv.diff == pytest.approx(1.0)


def test_shapes_and_values_are_checked():
    with pytest.raises(ValueError, match="same seeds × items"):
        V.paired_interval(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="different numbers of seeds"):
        V.paired_interval(np.zeros((2, 3)), np.zeros((3, 3)), paired_items=False)
    with pytest.raises(ValueError, match="NaN"):
        V.paired_interval([[1.0, float("nan")]], [[1.0, 0.0]])
    with pytest.raises(ValueError, match="margin_reason"):
        V.compare([1.0, 2.0], [1.0, 2.0], metric="m", margin=0.1, margin_reason=" ")


def test_unpaired_items():
    rng = np.random.default_rng(3)
    iv = V.paired_interval(rng.normal(1, 1, (2, 80)), rng.normal(0, 1, (2, 60)), paired_items=False)
    assert 0.4 < iv.diff < 1.6 and iv.lo < iv.diff < iv.hi and iv.n_items == 60


def _iv(lo, hi):
    return V.Interval((lo + hi) / 2, lo, hi, 1.0, 10.0, 0.0, 1.0, 3, 100, True, 0.95)


@pytest.mark.parametrize("lo,hi,sup,eq,noninf", [
    (0.06, 0.2, "reproduced", "opposite", "reproduced"),
    (0.01, 0.2, "inconclusive", "inconclusive", "reproduced"),
    (-0.04, 0.04, "no effect at toy scale", "reproduced", "reproduced"),
    (-0.06, 0.04, "inconclusive", "inconclusive", "inconclusive"),
    (-0.2, -0.06, "opposite", "opposite", "opposite"),
    (-0.3, 0.3, "inconclusive", "inconclusive", "inconclusive"),
])
def test_five_verdicts_against_a_margin(lo, hi, sup, eq, noninf):
    assert V.decide(_iv(lo, hi), 0.05, "superiority") == sup
    assert V.decide(_iv(lo, hi), 0.05, "equivalence") == eq
    assert V.decide(_iv(lo, hi), 0.05, "noninferiority") == noninf


def test_a_failed_gate_makes_the_comparison_untestable_but_keeps_the_interval():
    t = (np.random.default_rng(0).random((3, 200)) < 0.9).astype(float)
    c = np.zeros((3, 200))
    g = V.gate_above("beats the blind baseline", t.mean(), 0.95, what="blind baseline")
    p = V.compare(t, c, metric="acc", margin=0.05, margin_reason="r", gates=[g])
    assert p.rule_verdict == "reproduced" and p.verdict == "untestable at toy scale"
    assert "untestable" in p.sentence() and "blind baseline 0.95" in p.sentence()
    assert V.gate_off_floor("f", {"a": 0.0, "b": 0.01}).passed is False
    assert V.gate_off_floor("f", {"a": 0.0, "b": 0.3}).passed is True
    assert V.gate_off_floor("f", {"a": 1.0, "b": 0.99}).passed is False
    gap = V.gate_off_floor("gap", {"a": 0.01, "b": 0.015}, floor=0.02, ceiling=float("inf"))  # an unbounded measure
    assert gap.passed is False and "inf" not in gap.detail and "<= 0.02" in gap.detail
    assert V.gate_off_floor("gap", {"a": 0.01, "b": 5.0}, floor=0.02, ceiling=float("inf")).passed is True
    assert V.gate_between("b", {"a": 0.5}, 0.15, 0.85).passed and not V.gate_between("b", {"a": 0.9}, 0.15, 0.85).passed


def test_inconclusive_says_how_much_more_data_would_decide():
    iv = _iv(0.0, 0.2)  # estimate 0.1, half-width 0.1, margin 0.05: needs half-width < 0.05
    assert V.more_data_needed(iv, 0.05) == pytest.approx(4.0)
    assert V.more_data_needed(_iv(0.0, 0.1), 0.05) is None  # estimate on the margin
    assert V.minimum_detectable_effect(iv, 0.05) > 0.05


@pytest.mark.parametrize("parts,expected", [
    (["reproduced", "reproduced"], "reproduced"),
    (["reproduced", "inconclusive"], "inconclusive"),
    (["reproduced", "opposite"], "opposite"),
    (["no effect at toy scale", "reproduced"], "no effect at toy scale"),
    (["untestable at toy scale", "opposite"], "untestable at toy scale"),
    (["inconclusive"], "inconclusive"),
])
def test_composite_claims(parts, expected):
    assert V.combine_all(parts) == expected


def test_composite_rejects_unknown_verdicts():
    with pytest.raises(ValueError):
        V.combine_all(["not reproduced"])
    with pytest.raises(ValueError):
        V.combine_all([])


# --- calibration at the declared designs -------------------------------------------------------
def _designs():
    for claim, meta in report.CLAIMS.items():
        for name, d in meta["parts"].items():
            if d["outcome"] != "check":
                yield pytest.param(claim, name, d, id=f"claim{claim}-{name}")


@pytest.mark.slow
@pytest.mark.parametrize("claim,name,d", list(_designs()))
def test_no_true_effect_is_rarely_decided(claim, name, d):
    # For equivalence / non-inferiority parts "no effect" means the paper's statement is false by
    # twice the margin; deciding "reproduced" then is the false alarm.
    for p in ((0.15, 0.5) if d["outcome"] == "binary" else (0.5,)):
        r = V.simulate_design(d, V.null_effect(d), p_control=p)
        wrong = V.decided_share(r) if d["kind"] == "superiority" else r["reproduced"]
        assert wrong <= 0.05, f"claim {claim} {name}: decided {wrong:.1%} of null experiments (p={p})"


def test_power_of_the_rule_at_a_well_powered_design():
    # 5 seeds x 800 items, margin 5 points, control near 30%: a 10-point effect is called most of the time
    r = V.simulate(5, 800, 0.05, effect=0.10, p_control=0.3, seed_sd=0.02, trials=300, rng_seed=5)
    assert r["reproduced"] > 0.5
    assert V.decided_share(V.simulate(5, 800, 0.05, p_control=0.3, seed_sd=0.02, trials=300, rng_seed=6)) <= 0.05


def test_power_at_the_declared_designs_is_computed_for_the_scorecard():
    table = V.design_power(report.CLAIMS, trials=60)
    assert {(r["claim"], r["part"]) for r in table} == {
        (c, n) for c, m in report.CLAIMS.items() for n, d in m["parts"].items() if d["outcome"] != "check"}
    assert all(0 <= r["power"] <= 1 and 0 <= r["false_decisions"] <= 1 for r in table)


def test_level_in_band_is_the_one_evaluation_level_rule():
    from infir_lib.report.verdicts import level_in_band

    assert level_in_band([0.95, 0.6, 0.3, 0.05]) == 1          # inside [15%, 85%], nearest 50%
    assert level_in_band([0.4, 0.6]) == 0 and level_in_band([0.4, 0.6], ties="last") == 1
    assert level_in_band([0.85, 0.9]) == 0                     # inclusive band
    assert level_in_band([0.99, 0.10, 0.02]) is None           # floor or ceiling everywhere
