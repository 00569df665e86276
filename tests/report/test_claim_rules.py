"""The notebooks' claim rules (kdutils.claims) on constructed numbers: each one can hold and can fail."""

from __future__ import annotations

import pytest

import kdutils as kd
from kdutils import claims
from kdutils.results import FAILS, HOLDS, INCONCLUSIVE, NOT_TESTABLE

KD = [0.900, 0.910, 0.905]


def _plus(values, d, wiggle=(0.0, 0.001, -0.001)):
    return [v + d + w for v, w in zip(values, wiggle)]


# --------------------------------------------------------------------------- non-inferiority


def test_non_inferior_each_holds_fails_and_is_inconclusive():
    ok = claims.non_inferior_each({"CCKD-L vs KD": (_plus(KD, 0.002), KD), "CCKD-T vs KD": (_plus(KD, -0.002), KD)})
    assert ok.verdict.verdict == HOLDS and set(ok.parts) == {"CCKD-L vs KD", "CCKD-T vs KD"}
    assert "margin, 1 point" in ok.verdict.rule and "90 %" in ok.verdict.rule
    # one comparison 3 points worse, tightly: the whole claim does not hold
    bad = claims.non_inferior_each({"CCKD-L vs KD": (_plus(KD, 0.002), KD), "CCKD-T vs KD": (_plus(KD, -0.03), KD)})
    assert bad.verdict.verdict == FAILS and bad.parts["CCKD-T vs KD"].verdict == FAILS
    # about 1 point worse with a wide spread: the interval contains -1 point
    wide = claims.non_inferior_each({"a vs b": (_plus(KD, -0.01, (0.02, -0.02, 0.0)), KD)})
    assert wide.verdict.verdict == INCONCLUSIVE


def test_non_inferior_each_one_seed_is_not_testable():
    c = claims.non_inferior_each({"a vs b": ([0.95], [0.90])})
    assert c.verdict.verdict == NOT_TESTABLE


def test_a_margin_is_a_margin():
    # 0.5 points worse: non-inferior at the default margin of 1 point, not with a margin of 0.1 point
    a = _plus(KD, -0.005, (0.0, 0.0005, -0.0005))
    assert claims.non_inferior_each({"a vs KD": (a, KD)}).verdict.verdict == HOLDS
    assert claims.non_inferior_each({"a vs KD": (a, KD)}, margin=0.001).verdict.verdict == FAILS


# --------------------------------------------------------------------------- data efficiency


def test_data_efficiency_holds_for_a_real_saving():
    v = claims.data_efficiency([0.20, 0.21, 0.19], label="CCKD-T+SR")
    assert v.verdict == HOLDS and v.threshold == pytest.approx(0.9)
    assert "CCKD-T+SR" in v.rule and "%" in v.describe()


def test_data_efficiency_is_not_true_by_construction():
    # KD itself (every sample, every epoch) does not save anything
    assert claims.data_efficiency([1.0, 1.0, 1.0]).verdict == FAILS
    # below KD but by less than 10 %: the old rule (usage < 1) passed this, the new one does not
    assert claims.data_efficiency([0.95, 0.96, 0.97]).verdict == FAILS
    # around the threshold with spread: the interval decides nothing
    assert claims.data_efficiency([0.85, 0.95, 0.90]).verdict == INCONCLUSIVE
    assert claims.data_efficiency([0.2]).verdict == NOT_TESTABLE


def test_data_efficiency_relative_to_a_measured_reference():
    # 0.5 of a reference that used 0.6: a ratio of 0.83, a saving of 17 %
    assert claims.data_efficiency([0.5, 0.5, 0.5], [0.6, 0.6, 0.6]).verdict == HOLDS
    assert claims.data_efficiency([0.5, 0.5, 0.5], [0.52, 0.52, 0.52]).verdict == FAILS
    with pytest.raises(ValueError, match="usage_ref"):
        claims.data_efficiency([0.5, 0.5], [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="saving"):
        claims.data_efficiency([0.5, 0.5], saving=1.0)


def test_data_efficient_each_needs_every_method():
    ok = claims.data_efficient_each({"a": [0.2, 0.21, 0.2], "b": [0.5, 0.52, 0.51]})
    assert ok.verdict.verdict == HOLDS
    one_bad = claims.data_efficient_each({"a": [0.2, 0.21, 0.2], "b": [0.95, 0.96, 0.95]})
    assert one_bad.verdict.verdict == FAILS and one_bad.parts["b (saves 4.7%)"].verdict == FAILS


def test_data_efficient_and_non_inferior_can_fail_on_either_side():
    t = [0.90, 0.91, 0.905]
    ok = claims.data_efficient_and_non_inferior([0.2, 0.21, 0.2], _plus(t, 0.0), t, name="CCKD-T+SR", ref_name="CCKD-T")
    assert ok.verdict.verdict == HOLDS and len(ok.parts) == 2
    less_acc = claims.data_efficient_and_non_inferior([0.2, 0.21, 0.2], _plus(t, -0.05), t)
    assert less_acc.verdict.verdict == FAILS
    no_saving = claims.data_efficient_and_non_inferior([1.0, 1.0, 1.0], _plus(t, 0.0), t)
    assert no_saving.verdict.verdict == FAILS


# --------------------------------------------------------------------------- retention


def test_retention_above():
    assert claims.retention_above([0.62, 0.65, 0.60]).verdict.verdict == HOLDS
    assert claims.retention_above([0.30, 0.32, 0.35]).verdict.verdict == FAILS
    assert claims.retention_above([0.45, 0.55, 0.50]).verdict.verdict == INCONCLUSIVE
    assert claims.retention_above([0.9]).verdict.verdict == NOT_TESTABLE


# --------------------------------------------------------------------------- robustness


def test_robust_setting_names_the_epsilon_and_the_paper_number():
    mnist_grid = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3)
    cifar_grid = (0.0, 1 / 255, 2 / 255, 4 / 255, 8 / 255)
    assert claims.robust_setting("mnist", mnist_grid) == (0.1, 3.0)
    assert claims.robust_setting("fashion_mnist", mnist_grid) == (0.1, 3.0)
    assert claims.robust_setting("cifar10", cifar_grid) == (pytest.approx(4 / 255), 6.0)
    assert claims.robust_setting("digits", mnist_grid) == (0.1, 3.0)
    assert claims.robust_setting("mnist", (0.0, 0.08, 0.3)) == (0.08, 3.0)  # nearest value of the grid
    with pytest.raises(ValueError, match="epsilon"):
        claims.robust_setting("mnist", (0.0,))


def test_robust_margin_needs_the_lower_end_to_reach_the_paper_number():
    kd_rob = [0.60, 0.62, 0.61]
    assert claims.robust_margin(_plus(kd_rob, 0.06), kd_rob, points=3.0).verdict.verdict == HOLDS
    # better, but by 2 points and tightly: below the paper's 3 points
    assert claims.robust_margin(_plus(kd_rob, 0.02), kd_rob, points=3.0).verdict.verdict == FAILS
    # 4 points on average with a wide spread: the lower end does not reach 3 points
    assert (
        claims.robust_margin(_plus(kd_rob, 0.04, (0.03, -0.03, 0.0)), kd_rob, points=3.0).verdict.verdict
        == INCONCLUSIVE
    )


# --------------------------------------------------------------------------- pruning


def test_significance_pruning_at_every_k():
    least = {0.1: [0.95, 0.952, 0.951], 0.3: [0.94, 0.942, 0.941]}
    rand = {0.1: [0.94, 0.941, 0.940], 0.3: [0.92, 0.921, 0.922]}
    ok = claims.significance_pruning(least, rand)
    assert ok.verdict.verdict == HOLDS and list(ok.parts) == ["k = 10%", "k = 30%"]
    assert "random draw" in ok.verdict.rule and "paired t (seed s" in ok.verdict.rule
    import numpy as np

    from kdutils.report.evidence import SeedValues

    rng = np.random.default_rng(0)

    def images(v):
        return SeedValues(v, (rng.random((len(v), 400)) < np.array(v)[:, None]).astype(float))

    with_images = claims.significance_pruning(
        {k: images(v) for k, v in least.items()}, {k: images(v) for k, v in rand.items()}
    )
    assert "over seeds and test images" in with_images.verdict.rule  # the rule names the interval it used
    worse = {0.1: least[0.1], 0.3: [0.90, 0.901, 0.902]}
    assert claims.significance_pruning(worse, rand).verdict.verdict == FAILS
    with pytest.raises(ValueError, match="same fractions"):
        claims.significance_pruning({0.1: [1]}, {0.3: [1]})


# --------------------------------------------------------------------------- the table


def test_checked_row_has_the_rule_level_profile_and_convergence():
    c = claims.retention_above([0.62, 0.65, 0.60])
    row = c.row(
        "students do not retain",
        "[paper] abstract",
        "none given",
        dataset="mnist",
        profile="quick",
        converged="no (val acc +1.0 points over the last 2 of 3 epochs)",
    )
    assert row["verdict"] == HOLDS and row["level"] == "90 %" and row["profile"] == "quick"
    assert row["measured"] == c.verdict.describe() and "one-sample t" in row["rule"]
    table = kd.claims_frame([row])
    assert "converged" in table.columns
    several = claims.data_efficient_each({"a": [0.2, 0.21, 0.2], "b": [0.5, 0.52, 0.51]})
    assert several.measured.startswith("a (saves 79.7%): 20.33 %") and "; b (saves 49.0%): " in several.measured


def test_convergence():
    rising = [{"epoch": 1, "val_acc": 0.80}, {"epoch": 2, "val_acc": 0.85}, {"epoch": 3, "val_acc": 0.88}]
    flat = [{"epoch": e, "val_acc": v} for e, v in enumerate((0.80, 0.90, 0.902, 0.903), 1)]
    assert claims.convergence([rising, rising]) == "no (val acc +3.0 points over the last 1 of 3 epochs)"
    assert claims.convergence([flat]) == "plateau (val acc +0.1 points over the last 1 of 4 epochs)"
    twenty = [{"epoch": e, "val_acc": 0.80 + 0.001 * e} for e in range(1, 21)]  # +0.4 points over the last 4
    assert claims.convergence([twenty]) == "no (val acc +0.4 points over the last 4 of 20 epochs)"
    assert claims.convergence([twenty], tol=0.005).startswith("plateau")
    assert claims.convergence([[{"epoch": 1, "val_acc": 0.5}]]).startswith("unknown")


# --------------------------------------------------------------------------- CMKD (notebook 02)


def test_better_each_holds_fails_and_is_inconclusive():
    ok = claims.better_each({"CMKD vs KD": (_plus(KD, 0.02), KD), "CMKD vs DIST": (_plus(KD, 0.01), KD)})
    assert ok.verdict.verdict == HOLDS and set(ok.parts) == {"CMKD vs KD", "CMKD vs DIST"}
    assert "above 0 points" in ok.verdict.rule and "all must hold" in ok.verdict.rule
    # one part a point worse, tightly: the whole claim does not hold
    tie = claims.better_each({"CMKD vs KD": (_plus(KD, 0.02), KD), "CMKD vs DIST": (_plus(KD, -0.01), KD)})
    assert tie.verdict.verdict == FAILS and tie.parts["CMKD vs DIST"].verdict == FAILS
    wide = claims.better_each({"a vs b": (_plus(KD, 0.005, (0.02, -0.02, 0.0)), KD)})
    assert wide.verdict.verdict == INCONCLUSIVE
    assert claims.better_each({"a vs b": ([0.95], [0.90])}).verdict.verdict == NOT_TESTABLE
    # a correlation: unit-free text
    rho = claims.better_each(
        {"CMKD vs KD": ([0.80, 0.82, 0.81], [0.70, 0.71, 0.69])},
        scale=1.0,
        unit="",
        what="mean per-sample Spearman rho",
    )
    assert rho.verdict.verdict == HOLDS and rho.measured.startswith("+0.11, 90 % CI")
    with pytest.raises(ValueError, match="at least one"):
        claims.better_each({})


def test_steeper_compares_the_slopes_paired_by_seed():
    x = [0.90, 0.95, 0.97]  # teacher accuracies
    kd_ = [[0.85, 0.86, 0.84], [0.86, 0.87, 0.855], [0.865, 0.875, 0.86]]  # slope about 0.2 per seed
    cmkd = [[0.85, 0.86, 0.84], [0.89, 0.90, 0.88], [0.91, 0.92, 0.895]]  # slope about 0.8
    up = claims.steeper(x, cmkd, kd_, name_a="CMKD", name_b="KD")
    assert up.verdict.verdict == HOLDS and "slope(CMKD) - slope(KD)" in up.verdict.rule
    assert claims.steeper(x, kd_, cmkd, name_a="KD", name_b="CMKD").verdict.verdict == FAILS
    assert up.verdict.estimate == pytest.approx(float((kd.curve_slopes(x, cmkd) - kd.curve_slopes(x, kd_)).mean()))
    one = claims.steeper(x, [[v[0]] for v in cmkd], [[v[0]] for v in kd_])
    assert one.verdict.verdict == NOT_TESTABLE


def test_only_at_and_skipped_are_not_testable_with_a_reason():
    c = claims.better_each({"CMKD vs KD": (_plus(KD, 0.02), KD)})
    assert claims.only_at(c, profile="paper", dataset="cifar100", where=[("paper", "cifar100")]) is c
    elsewhere = claims.only_at(
        c,
        profile="quick",
        dataset="fashion_mnist",
        where=[("paper", "cifar100")],
        claim="state of the art on CIFAR-100",
    )
    assert elsewhere.verdict.verdict == NOT_TESTABLE and "cifar100 at the paper profile" in elsewhere.verdict.rule
    assert elsewhere.measured.startswith("not measured: state of the art on CIFAR-100 is about cifar100")
    assert "fashion_mnist at the quick profile" in elsewhere.measured
    row = elsewhere.row("SOTA", "[paper]", "n/a", dataset="fashion_mnist", profile="quick")
    assert row["verdict"] == NOT_TESTABLE and row["measured"] == elsewhere.measured
    assert claims.only_at(None, profile="paper", dataset="cifar100", where=[("paper", "cifar100")]).verdict.n == 0
    off = claims.skipped("stronger_teacher=False")
    assert off.verdict.verdict == NOT_TESTABLE and off.measured == "not measured: stronger_teacher=False"


# --------------------------------------------------------------------------- faithful KD (notebook 04)


def test_lower_each_holds_when_the_gap_shrinks_and_fails_when_it_grows():
    kd_gap = [0.30, 0.32, 0.31]
    ok = claims.lower_each({"faithful vs KD": (_plus(kd_gap, -0.1), kd_gap)}, what="mean empirical gap")
    assert ok.verdict.verdict == HOLDS and "lower" in ok.verdict.rule and "mean empirical gap" in ok.verdict.rule
    assert ok.verdict.estimate == pytest.approx(0.1)
    bad = claims.lower_each({"faithful vs KD": (_plus(kd_gap, 0.1), kd_gap)})
    assert bad.verdict.verdict == FAILS
    assert claims.lower_each({"a vs b": ([0.1], [0.3])}).verdict.verdict == NOT_TESTABLE
    with pytest.raises(ValueError):
        claims.lower_each({})


def test_above_each_zero_rate_does_not_hold():
    ok = claims.above_each({"KD disagreement rate": [0.4, 0.5, 0.45]}, 0.0, what="disagreement rate")
    assert ok.verdict.verdict == HOLDS and "above 0" in ok.verdict.rule
    zero = claims.above_each({"KD disagreement rate": [0.0, 0.0, 0.0]}, 0.0)
    assert zero.verdict.verdict != HOLDS
    wide = claims.above_each({"x": [0.05, 0.25, 0.0]}, 0.1)
    assert wide.verdict.verdict == INCONCLUSIVE


def test_every_combines_rules_and_any_failure_fails():
    kd_gap = [0.30, 0.32, 0.31]
    a = claims.above_each({"KD disagreement rate": [0.4, 0.5, 0.45]}, 0.0)
    b = claims.above_each({"KD mean gap": kd_gap}, 0.1)
    both = claims.every({"disagreement": a, "gap": b})
    assert both.verdict.verdict == HOLDS and " AND " in both.verdict.rule and len(both.parts) == 2
    c = claims.above_each({"KD mean gap": [0.01, 0.012, 0.011]}, 0.1)
    assert claims.every({"disagreement": a, "gap": c}).verdict.verdict == FAILS
    with pytest.raises(ValueError):
        claims.every({})


def test_a_quantity_exactly_at_the_threshold_on_every_seed_does_not_hold():
    """A rate of 0 on every seed is not "above 0" (its interval is the point 0): the rule fails,
    as claims.above_each says, instead of reading inconclusive; two students equal on every seed
    are not one better than the other."""
    assert claims.above_each({"rate": [0.0, 0.0, 0.0]}, 0.0).verdict.verdict == FAILS
    assert claims.above_each({"rate": [0.0, 0.01, 0.0]}, 0.0).verdict.verdict == INCONCLUSIVE
    assert claims.better_each({"a vs b": ([0.2, 0.3, 0.4], [0.2, 0.3, 0.4])}).verdict.verdict == FAILS
    assert kd.results.claim_mean_below([0.5, 0.5], 0.5).verdict == FAILS
