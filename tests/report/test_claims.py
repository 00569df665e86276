"""Claim statistics (kdutils.results): intervals, three-way verdicts, multiplicity, tables."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import kdutils as kd
from kdutils.results import FAILS, HOLDS, INCONCLUSIVE, NOT_TESTABLE

A = [0.861, 0.874, 0.866]
B = [0.850, 0.859, 0.862]


def _t_ci(x, level):
    x = np.asarray(x, float)
    n = len(x)
    half = stats.t.ppf((1 + level) / 2, n - 1) * x.std(ddof=1) / math.sqrt(n)
    return x.mean() - half, x.mean() + half


# --------------------------------------------------------------------------- intervals


@pytest.mark.parametrize("level", [0.90, 0.95])
def test_paired_interval_matches_scipy(level):
    iv = kd.paired_interval(A, B, level=level)
    d = np.subtract(A, B)
    low, high = stats.t.interval(level, len(d) - 1, loc=d.mean(), scale=stats.sem(d))
    assert iv.estimate == pytest.approx(d.mean())
    assert (iv.low, iv.high) == pytest.approx((low, high))
    assert (iv.level, iv.n) == (level, 3)
    # 3 seeds: the 90 % half-width is 2.92 standard errors, the 95 % one 4.30
    t = {0.90: 2.920, 0.95: 4.303}[level]
    assert iv.high - iv.estimate == pytest.approx(t * stats.sem(d), rel=1e-3)


def test_paired_interval_is_paired_not_pooled():
    a, b = [0.80, 0.90, 0.70], [0.79, 0.89, 0.69]  # huge spread between seeds, constant gain
    iv = kd.paired_interval(a, b)
    assert (iv.low, iv.high) == pytest.approx((0.01, 0.01))


def test_paired_interval_needs_equal_lengths_and_two_seeds():
    with pytest.raises(ValueError, match="3 and 2"):
        kd.paired_interval([1, 2, 3], [1, 2])
    one = kd.paired_interval([0.9], [0.8])
    assert one.estimate == pytest.approx(0.1) and math.isnan(one.low) and math.isnan(one.high) and one.n == 1


def test_mean_interval_matches_scipy():
    x = [0.61, 0.55, 0.68, 0.59]
    iv = kd.mean_interval(x)
    assert (iv.low, iv.high) == pytest.approx(stats.t.interval(0.9, 3, loc=np.mean(x), scale=stats.sem(x)))
    assert (iv.low, iv.high) == pytest.approx(_t_ci(x, 0.9))
    assert kd.DEFAULT_LEVEL == 0.90


# --------------------------------------------------------------------------- three-way verdicts


def test_claim_better_three_ways():
    base = [0.80, 0.82, 0.81]
    holds = kd.claim_better([0.83, 0.84, 0.84], base, label="KD - alone")  # diffs 3, 2, 3 points
    assert holds.verdict == HOLDS and holds.low > 0
    inconclusive = kd.claim_better([0.82, 0.81, 0.82], base)  # diffs +2, -1, +1
    assert inconclusive.verdict == INCONCLUSIVE and inconclusive.low < 0 < inconclusive.high
    fails = kd.claim_better([0.78, 0.79, 0.79], base)  # diffs -2, -3, -2
    assert fails.verdict == FAILS and fails.high < 0
    assert kd.claim_better([0.9], [0.8]).verdict == NOT_TESTABLE  # one seed: no spread to judge by
    # the threshold moves the decision: +3, +2, +3 points is not "better by 5 points"
    assert kd.claim_better([0.83, 0.84, 0.84], base, by=0.05).verdict == FAILS
    assert holds.rule == "paired t, 90 % interval of (KD - alone) above 0.00 points"
    assert holds.threshold == 0.0 and holds.n == 3 and holds.level == 0.9


def test_claim_better_one_standard_error_is_not_enough():
    """The old rule (mean gain above one standard error) would say holds; a 90 % t interval does not."""
    a, b = [0.82, 0.80, 0.83], [0.80, 0.80, 0.80]  # diffs 2, 0, 3 points: mean 1.67, se 0.88
    d = np.subtract(a, b)
    assert d.mean() > stats.sem(d)
    assert kd.claim_better(a, b).verdict == INCONCLUSIVE


def test_claim_better_lower_is_better():
    ece_a, ece_b = [0.02, 0.03, 0.025], [0.05, 0.055, 0.06]
    v = kd.claim_better(ece_a, ece_b, higher_is_better=False, label="ECE: CCKD - KD")
    assert v.verdict == HOLDS and v.estimate == pytest.approx(np.mean(np.subtract(ece_b, ece_a)))
    assert kd.claim_better(ece_b, ece_a, higher_is_better=False).verdict == FAILS
    assert "lower is better" in v.rule


def test_claim_non_inferior_three_ways():
    kd_acc = [0.850, 0.860, 0.855]
    holds = kd.claim_non_inferior([0.848, 0.859, 0.856], kd_acc, label="CCKD-T - KD")  # within 0.2 points
    assert holds.verdict == HOLDS and holds.low > -0.01 and holds.threshold == -0.01
    assert holds.rule == (
        "paired t, 90 % interval of (CCKD-T - KD) above -1.00 points (non-inferiority margin 1.00 points)"
    )
    inconclusive = kd.claim_non_inferior([0.850, 0.830, 0.865], kd_acc)  # diffs 0, -3, +1
    assert inconclusive.verdict == INCONCLUSIVE and inconclusive.low < -0.01 < inconclusive.high
    fails = kd.claim_non_inferior([0.820, 0.835, 0.830], kd_acc)  # 2.5-3 points worse
    assert fails.verdict == FAILS and fails.high < -0.01
    assert kd.claim_non_inferior([0.85], [0.86]).verdict == NOT_TESTABLE
    # a wider margin turns the failure into non-inferiority: the margin is what decides
    assert kd.claim_non_inferior([0.820, 0.835, 0.830], kd_acc, margin=0.05).verdict == HOLDS


def test_claim_mean_above_and_below():
    assert kd.claim_mean_above([0.62, 0.65, 0.60], 0.5, label="mu_S").verdict == HOLDS
    assert kd.claim_mean_above([0.45, 0.58, 0.52], 0.5).verdict == INCONCLUSIVE
    assert kd.claim_mean_above([0.41, 0.40, 0.44], 0.5).verdict == FAILS
    assert kd.claim_mean_above([0.9], 0.5).verdict == NOT_TESTABLE
    usage = [0.71, 0.74, 0.70]
    assert kd.claim_mean_below(usage, 0.9, label="data usage").verdict == HOLDS
    assert kd.claim_mean_below([0.85, 0.95, 0.90], 0.9).verdict == INCONCLUSIVE
    assert kd.claim_mean_below([0.97, 0.99, 0.98], 0.9).verdict == FAILS
    assert kd.claim_mean_below([0.5], 0.9).verdict == NOT_TESTABLE
    v = kd.claim_mean_below(usage, 0.9, label="data usage")
    assert v.rule == "one-sample t, 90 % interval of data usage below 0.90"
    assert (v.low, v.high) == pytest.approx(_t_ci(usage, 0.9))


def test_describe():
    v = kd.Verdict(HOLDS, 0.0041, -0.0020, 0.0102, 0.9, 3, 0.0, "r")
    assert v.describe() == "+0.41 points, 90 % CI [-0.20, +1.02], n = 3"
    assert v.describe(scale=1.0, unit="", digits=4) == "+0.0041, 90 % CI [-0.0020, +0.0102], n = 3"
    m = kd.claim_mean_above([0.62, 0.65, 0.60], 0.5)
    assert m.describe().startswith("0.62, 90 % CI [0.") and m.describe().endswith("n = 3")
    assert "n = 1" in kd.claim_better([0.9], [0.8]).describe()


def test_claim_all():
    h = kd.claim_mean_below([0.71, 0.74, 0.70], 0.9)  # holds, margin about 0.16
    h2 = kd.claim_non_inferior([0.848, 0.859, 0.856], [0.850, 0.860, 0.855])  # holds, margin below 0.01
    i = kd.claim_better([0.82, 0.81, 0.82], [0.80, 0.82, 0.81])
    f = kd.claim_better([0.78, 0.79, 0.79], [0.80, 0.82, 0.81])
    nt = kd.claim_better([0.9], [0.8])
    both = kd.claim_all([h, h2], "saves 10 % and is non-inferior")
    assert both.verdict == HOLDS and both.rule == "saves 10 % and is non-inferior"
    assert both.low == h2.low and both.threshold == h2.threshold  # the weakest part is reported
    assert kd.claim_all([h, i], "r").verdict == INCONCLUSIVE
    assert kd.claim_all([h, i, f], "r").verdict == FAILS
    assert kd.claim_all([h, f, nt], "r").verdict == FAILS  # a measured failure is a failure
    assert kd.claim_all([h, i, nt], "r").verdict == NOT_TESTABLE
    assert kd.claim_all([h, i], "r").estimate == i.estimate
    with pytest.raises(ValueError):
        kd.claim_all([], "r")


# --------------------------------------------------------------------------- tests and multiplicity


def test_sign_flip_pvalue_exact_for_three_seeds():
    assert kd.sign_flip_pvalue([3, 2, 1], [0, 0, 0]) == 1 / 8  # all positive: the smallest p with 3 seeds
    assert kd.sign_flip_pvalue([0.83, 0.84, 0.84], [0.80, 0.82, 0.81]) == 1 / 8
    assert kd.sign_flip_pvalue([3, -1, 2], [0, 0, 0]) == 2 / 8  # sums >= 4 out of +-3 +-1 +-2: 6 and 4
    assert kd.sign_flip_pvalue([1, 2, -3], [0, 0, 0]) == 5 / 8
    assert kd.sign_flip_pvalue([0, 0, 0], [3, 2, 1]) == 1.0
    assert kd.sign_flip_pvalue([0, 0, 0], [3, 2, 1], higher_is_better=False) == 1 / 8
    assert (
        kd.sign_flip_pvalue([3, 2, 1], [0, 0, 0], threshold=1.5) == 3 / 8
    )  # centred 1.5, 0.5, -0.5: sums 2.5, 1.5, 1.5 >= 1.5
    assert math.isnan(kd.sign_flip_pvalue([], []))


def test_holm_by_hand():
    p = {"a": 0.01, "b": 0.04, "c": 0.03, "d": 0.5}
    # sorted a .01, c .03, b .04, d .5; times 4, 3, 2, 1: .04, .09, .08 -> .09 (monotone), .5
    assert kd.holm(p) == pytest.approx({"a": 0.04, "b": 0.09, "c": 0.09, "d": 0.5})
    assert list(kd.holm(p)) == list(p)
    assert kd.holm({"x": 0.6, "y": 0.7}) == {"x": 1.0, "y": 1.0}  # capped at 1
    assert kd.holm({"x": 0.3, "y": 0.4}) == pytest.approx({"x": 0.6, "y": 0.6})


def test_best_of_many_holds_uncorrected_not_after_holm():
    base = [0.80, 0.81, 0.82]
    family = {"best": ([0.81, 0.83, 0.85], base)}  # diffs 1, 2, 3 points: p = 0.037 < 0.05
    for k, d in enumerate(
        [
            [0.01, -0.01, 0.0],
            [0.0, 0.01, -0.005],
            [-0.01, 0.0, 0.005],
            [0.005, -0.005, 0.0],
            [0.0, 0.0, 0.002],
            [-0.002, 0.004, 0.0],
            [0.003, -0.003, 0.001],
        ]
    ):
        family[f"v{k}"] = (list(np.add(base, d)), base)
    t = kd.best_of_many(family)
    assert list(t.columns) == [
        "comparison",
        "estimate",
        "low",
        "high",
        "n",
        "p",
        "p_holm",
        "p_holm_below",
        "uncorrected",
        "corrected",
        "note",
    ]
    assert len(t) == 8 and t["estimate"].is_monotonic_decreasing
    best = t.iloc[0]
    assert best["comparison"] == "best" and best["estimate"] == pytest.approx(2.0) and best["n"] == 3
    d = np.array([0.01, 0.02, 0.03])
    p = stats.ttest_1samp(d, 0.0, alternative="greater").pvalue
    assert best["p"] == pytest.approx(p) and p < 0.05
    assert best["p_holm"] == pytest.approx(8 * p)
    assert best["uncorrected"] == HOLDS and best["corrected"] == INCONCLUSIVE
    assert kd.claim_better(*family["best"]).verdict == HOLDS  # the same decision as the claim function
    assert set(t["corrected"]) == {INCONCLUSIVE}
    alone = kd.best_of_many({"best": family["best"]})  # named in advance, alone: no correction to pay
    assert alone.loc[0, "corrected"] == HOLDS


# --------------------------------------------------------------------------- tables


def test_format_mean_std():
    assert kd.format_mean_std(0.83571, 0.00749) == "83.57 ± 0.75"
    assert kd.format_mean_std(0.123456, 0.01, scale=1.0, digits=3) == "0.123 ± 0.010"
    assert kd.format_mean_std(0.5, float("nan")) == "50.00"
    assert kd.format_mean_std(0.5, 0.0, n=1) == "50.00 (n = 1)"  # one seed: no spread, said so (issue 33)
    assert kd.format_mean_std(float("nan"), 0.0) == ""  # nothing measured: a blank cell, never "nan"


def test_tables_say_n_1_instead_of_a_zero_spread():
    df = pd.DataFrame(
        {
            "dataset": "mnist",
            "method": ["teacher", "KD", "KD"],
            "seed": [0, 0, 1],
            "metric": "accuracy",
            "value": [0.99, 0.97, 0.98],
        }
    )
    t = kd.mean_std_table(df, "accuracy", order=["teacher", "KD"])
    assert t.loc["teacher", "mnist"] == "99.00 (n = 1)" and t.loc["KD", "mnist"] == "97.50 ± 0.71"
    cells = kd.mean_std_cells(df, ["accuracy"], scale=100.0, digits=2)
    assert cells.loc[("mnist", "teacher"), "accuracy"] == "99.00 (n = 1)"


def test_mean_std_cells():
    r = kd.Results("nb", "smoke")
    for ds in ("mnist", "cifar10"):
        for method, acc in (("KD", 0.9), ("alone", 0.8), ("CCKD", 0.95)):
            for seed, j in ((0, -0.01), (1, 0.01)):
                r.add(ds, method, seed, {"accuracy": acc + j, "ece": 0.05})
    t = kd.mean_std_cells(r.frame, ["ece", "accuracy"], order=["alone", "KD"])
    assert list(t.columns) == ["ece", "accuracy"]
    assert list(t.index) == [("mnist", "alone"), ("mnist", "KD"), ("cifar10", "alone"), ("cifar10", "KD")]
    assert t.loc[("mnist", "KD"), "accuracy"] == f"0.900 ± {0.02 / math.sqrt(2):.3f}"
    assert t.loc[("cifar10", "alone"), "ece"] == "0.050 ± 0.000"
    t2 = kd.mean_std_cells(r.frame[r.frame.dataset == "mnist"], ["accuracy"], index=("method",), scale=100, digits=1)
    assert list(t2.index) == ["KD", "alone", "CCKD"] and t2.loc["CCKD", "accuracy"] == "95.0 ± 1.4"
    assert kd.mean_std_table(r.frame, "accuracy", order=["KD"]).loc["KD", "mnist"] == "90.00 ± 1.41"


def test_claim_row_and_claims_frame():
    v = kd.claim_better([0.83, 0.84, 0.84], [0.80, 0.82, 0.81], label="KD - alone")
    row = kd.claim_row("KD beats alone", "[paper]", "146 -> 74 errors", v, dataset="digits", profile="smoke")
    assert row["measured"] == v.describe() and row["rule"] == v.rule and row["level"] == "90 %"
    assert row["verdict"] == HOLDS and "converged" not in row
    f = kd.claims_frame([row])
    assert list(f.columns) == [
        "claim",
        "source",
        "paper's number",
        "measured",
        "rule",
        "level",
        "profile",
        "dataset",
        "verdict",
    ]
    row2 = kd.claim_row("c", "[ours]", "none", v, dataset="d", profile="quick", measured="m", converged="yes")
    f2 = kd.claims_frame([row, row2])
    assert "converged" in f2.columns and list(f2["converged"]) == ["", "yes"]
    assert list(f2["measured"]) == [v.describe(), "m"]


def test_compare_uses_the_new_rule():
    a, b = [0.82, 0.80, 0.83], [0.80, 0.80, 0.80]
    c = kd.compare(a, b)
    assert c.verdict == INCONCLUSIVE and c.diff == pytest.approx(np.mean(np.subtract(a, b)))
    assert c.stderr == pytest.approx(stats.sem(np.subtract(a, b)))
    assert kd.compare([0.83, 0.84, 0.84], [0.80, 0.82, 0.81]).verdict == HOLDS
    with pytest.raises(ValueError):
        kd.compare([1, 2, 3], [1, 2])


def test_format_values_is_mean_and_sample_std_of_seeds():
    assert kd.format_values([0.8, 0.82, 0.84]) == "82.00 ± 2.00"
    assert kd.format_values([0.5]) == kd.format_mean_std(0.5, float("nan"))


# --------------------------------------------------------------------------- curve slopes (notebook 02)


def test_curve_slopes_known_answer_per_seed():
    x = [0.90, 0.95, 0.97]
    # seed 0: y = 2x + 0.1, seed 1: y = 0.5x + 0.4, seed 2: constant
    y = [[2 * v + 0.1, 0.5 * v + 0.4, 0.8] for v in x]
    assert kd.curve_slopes(x, y) == pytest.approx([2.0, 0.5, 0.0], abs=1e-12)
    # least squares, not the end points: a noisy middle point moves the slope by its own share
    assert kd.curve_slopes([0.0, 1.0, 2.0], [[0.0], [0.3], [1.0]])[0] == pytest.approx(0.5)


def test_curve_slopes_rejects_what_has_no_slope():
    with pytest.raises(ValueError, match="two distinct"):
        kd.curve_slopes([0.9, 0.9], [[0.8], [0.85]])
    with pytest.raises(ValueError, match="same seeds"):
        kd.curve_slopes([0.9, 0.95], [[0.8, 0.81], [0.85]])
    with pytest.raises(ValueError, match="points"):
        kd.curve_slopes([0.9, 0.95, 0.97], [[0.8], [0.85]])


def test_slope_table_mean_and_interval_over_seeds():
    x = [0.90, 0.95, 0.97]
    y = [[2 * v + 0.1, 1.0 * v, 1.5 * v - 0.2] for v in x]  # slopes 2, 1, 1.5
    t = kd.slope_table({"KD": (x, y), "one seed": (x, [[v] for v in x])})
    assert list(t.columns) == ["curve", "slope", "low", "high", "n"]
    row = t.iloc[0]
    assert row.slope == pytest.approx(1.5) and row.n == 3
    low, high = _t_ci([2.0, 1.0, 1.5], 0.90)
    assert (row.low, row.high) == (pytest.approx(low), pytest.approx(high))
    assert t.iloc[1].slope == pytest.approx(1.0) and math.isnan(t.iloc[1].low)


def test_slopes_on_each_seeds_own_teachers_carry_the_teachers_variance():
    """x per seed (each student seed distilled from the teacher of the same seed): the same x for
    every seed gives the shared-x slopes; teachers that differ by seed change each seed's slope."""
    from kdutils.report.results import curve_slopes

    y = [[0.50, 0.52], [0.55, 0.58], [0.60, 0.60]]
    shared = curve_slopes([0.6, 0.7, 0.8], y)
    assert shared.tolist() == pytest.approx(curve_slopes([[0.6, 0.6], [0.7, 0.7], [0.8, 0.8]], y).tolist())
    own = curve_slopes([[0.6, 0.65], [0.7, 0.7], [0.8, 0.75]], y)
    assert own[0] == pytest.approx(shared[0]) and own[1] == pytest.approx(0.8) and shared[1] == pytest.approx(0.4)
    with pytest.raises(ValueError, match="x per seed"):
        curve_slopes([[0.6], [0.7], [0.8]], y)


def test_the_stronger_teacher_series_trains_a_teacher_per_student_seed_at_full_fixed_in_advance():
    from kdutils.papers import cmkd

    st = kd.configure("full", "fashion_mnist")
    ts = cmkd.teachers(st)
    series = [t for t in ts if t.label.startswith("teacher ") and not t.robustness]
    assert {t.seed for t in series} == set(st.seeds) == {0, 1, 2, 3, 4}
    by_index = {i: t for i, t in enumerate(ts)}
    for s in cmkd.students(st):
        if " | teacher " in s.label:  # the series' students distil from the teacher of their own seed
            assert by_index[s.teacher].seed == s.seed and by_index[s.teacher].model == s.label.split("teacher ")[1]
    assert {t.seed for t in cmkd.teachers(kd.configure("quick", "fashion_mnist"))} == {0}


def test_best_of_many_refuses_a_zero_width_interval_from_identical_differences():
    """Two seeds with the same difference (+29.69 [29.69, 29.69], n = 2) are not a certainty: not
    testable, the bounds blank and the note saying why (issue 33)."""
    t = kd.best_of_many({"flat": ([0.5, 0.6], [0.2, 0.3]), "real": ([0.5, 0.62, 0.55], [0.4, 0.5, 0.47])})
    flat = t[t.comparison == "flat"].iloc[0]
    assert flat.uncorrected == flat.corrected == NOT_TESTABLE
    assert math.isnan(flat.low) and math.isnan(flat.high) and "identical" in flat.note
    real = t[t.comparison == "real"].iloc[0]
    assert real.note == "" and real.low < real.estimate < real.high


def test_what_we_found_is_generated_from_the_verdicts():
    """Issue 35.4: the sentence after each claims table comes from its rows, never typed: each claim
    with where it was decided, its verdict in words and its measured interval."""
    import pandas as pd

    from kdutils.report.claims import findings

    table = pd.DataFrame(
        {
            "claim": ["KD beats the student alone", "CMKD keeps the ranking", "state of the art on CIFAR-100"],
            "measured": [
                "+0.64, 90 % CI [+0.45, +0.84], n = 3",
                "-0.01, 90 % CI [-0.03, +0.00], n = 3",
                "not measured: paper profile",
            ],
            "dataset": ["mnist", "mnist", "mnist"],
            "profile": ["quick"] * 3,
            "verdict": ["holds", "inconclusive", "not testable at this profile"],
        }
    )
    text = findings(table)
    assert text._repr_markdown_() == str(text)
    lines = [ln for ln in text.splitlines() if ln.startswith("- ")]
    assert len(lines) == 3
    assert lines[0].startswith("- KD beats the student alone (mnist, quick): **holds**")
    assert "measured +0.64, 90 % CI [+0.45, +0.84], n = 3." in lines[0]
    assert "**inconclusive**" in lines[1] and "cannot decide" in lines[1]
    assert "**not testable at this profile**; not measured: paper profile." in lines[2]
    short = findings(table, decided_only=True)
    assert "KD beats" in short and "CMKD" not in short and "the other 2 rows" in short
    assert "no claim holds or fails here: all 2 rows" in findings(table.iloc[1:], decided_only=True)
