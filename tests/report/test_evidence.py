"""Intervals with both noises (seeds and test images), per-image predictions, scaled margins."""

import math

import numpy as np
import pytest

from kdutils.report.evidence import (
    SeedValues,
    decode_predictions,
    encode_predictions,
    sampling_se,
    scaled_margin,
    sensitivity,
    two_level_bootstrap,
    two_noise_interval,
)
from kdutils.report.results import FAILS, HOLDS, INCONCLUSIVE, claim_better, claim_non_inferior, paired_interval


def _world(rng, n_images, seeds, delta, seed_sd):
    """One draw of a test set and of each method's students on it, with a known population difference.

    Per image a chance ``q`` that method b is right and ``q + delta_i`` for method a, ``delta_i``
    spread around ``delta`` (a helps on some images, hurts on others), and one draw ``u`` of the
    image's luck that every seed shares (hard images are hard for every seed); each seed shifts
    each method's chances by its own offset (the training noise). Nothing is clipped, so the
    population difference is ``delta`` exactly."""
    q = rng.uniform(0.3, 0.7, n_images)
    delta_i = delta + rng.uniform(-0.2, 0.2, n_images)
    u = rng.random(n_images)
    ca, cb = [], []
    for _ in range(seeds):
        off_a, off_b = rng.normal(0, seed_sd, 2)
        ca.append(u < q + delta_i + off_a)
        cb.append(u < q + off_b)
    return np.array(ca, dtype=float), np.array(cb, dtype=float)


def test_matches_paired_t_when_there_is_no_test_noise():
    # every image differs by the same amount within a seed: no image-to-image variance
    d = np.array([0.01, 0.02, 0.04])
    ca = np.zeros((3, 100))
    cb = np.zeros((3, 100))
    for s, x in enumerate(d):
        ca[s, : int(round(x * 100)) + 50] = 1
        cb[s, :50] = 1
    iv = two_noise_interval(ca, cb)
    t = paired_interval(ca.mean(1), cb.mean(1))
    assert iv.estimate == pytest.approx(t.estimate)
    assert iv.low <= t.low and iv.high >= t.high  # never narrower
    assert iv.high - iv.low < 1.6 * (t.high - t.low)  # and only the image variance wider


def test_seed_only_holds_but_test_noise_makes_it_inconclusive():
    # three seeds, each a net gain of exactly 5 images in 10,000 (a fixes 50 of b's errors and
    # breaks 45 of its right answers, other images per seed): the seed-only interval is a point
    # above 0 (holds); 95 discordant images per seed cannot tell a net 5 from noise
    n = 10_000
    rng = np.random.default_rng(0)
    cb = (rng.random((3, n)) < 0.97).astype(float)
    ca = cb.copy()
    for s in range(3):
        wrong, right = np.flatnonzero(cb[s] == 0), np.flatnonzero(cb[s] == 1)
        ca[s, wrong[s * 50 : s * 50 + 50]] = 1.0
        ca[s, right[s * 45 : s * 45 + 45]] = 0.0
    a = SeedValues(ca.mean(1) + 0.0, ca)
    b = SeedValues(cb.mean(1), cb)
    seed_only = claim_better(list(a), list(b))
    both = claim_better(a, b)
    assert seed_only.verdict == HOLDS
    assert both.verdict == INCONCLUSIVE
    assert both.seed_only is not None and both.seed_only.low > 0
    assert "seeds and test images" in both.rule and both.describe_seed_only().startswith("[+")
    assert sampling_se(ca, cb) > 0


@pytest.mark.parametrize("seed_sd", [0.0, 0.002, 0.005, 0.02])
def test_never_narrower_than_the_seed_only_interval(seed_sd):
    rng = np.random.default_rng(5)
    for _ in range(20):
        ca, cb = _world(rng, 2000, 3, 0.0, seed_sd)
        iv, t = two_noise_interval(ca, cb), paired_interval(ca.mean(1), cb.mean(1))
        assert iv.low <= t.low + 1e-15 and iv.high >= t.high - 1e-15


def test_a_real_effect_still_holds_with_both_noises():
    rng = np.random.default_rng(1)
    ca, cb = _world(rng, 10_000, 3, 0.03, 0.002)
    v = claim_better(SeedValues(ca.mean(1), ca), SeedValues(cb.mean(1), cb))
    assert v.verdict == HOLDS
    w = claim_better(SeedValues(cb.mean(1), cb), SeedValues(ca.mean(1), ca))
    assert w.verdict == FAILS


@pytest.mark.parametrize("seed_sd", [0.0, 0.004])
def test_coverage_near_nominal_while_seed_only_undercovers(seed_sd):
    """Simulated worlds with a known difference: the 90 % two-noise interval covers it about 90 %
    of the time; with little training noise the seed-only interval covers far less (it misses the
    test set as a sample)."""
    rng = np.random.default_rng(2)
    delta, trials = 0.005, 300
    hit_both = hit_seed = 0
    for _ in range(trials):
        ca, cb = _world(rng, 2000, 3, delta, seed_sd)
        iv = two_noise_interval(ca, cb)
        t = paired_interval(ca.mean(1), cb.mean(1))
        hit_both += iv.low <= delta <= iv.high
        hit_seed += t.low <= delta <= t.high
    cov_both, cov_seed = hit_both / trials, hit_seed / trials
    assert 0.85 <= cov_both <= 0.95, cov_both  # 0.89-0.90 over 1,000 worlds
    if seed_sd == 0.0:
        assert cov_seed < 0.75, cov_seed


def test_two_level_bootstrap_is_deterministic_and_near_the_interval_with_many_seeds():
    rng = np.random.default_rng(3)
    ca, cb = _world(rng, 2000, 8, 0.01, 0.003)
    b1 = two_level_bootstrap(ca, cb, n_boot=400, seed=0)
    b2 = two_level_bootstrap(ca, cb, n_boot=400, seed=0)
    assert (b1.low, b1.high) == (b2.low, b2.high)
    iv = two_noise_interval(ca, cb)
    assert b1.estimate == pytest.approx(iv.estimate)
    # same centre, widths within a factor of 2 of each other
    assert 0.5 < (b1.high - b1.low) / (iv.high - iv.low) < 2.0


def test_one_seed_is_not_testable_and_shapes_are_checked():
    iv = two_noise_interval(np.ones((1, 10)), np.zeros((1, 10)))
    assert math.isnan(iv.low)
    with pytest.raises(ValueError, match="same"):
        two_noise_interval(np.ones((2, 10)), np.ones((2, 9)))
    with pytest.raises(ValueError, match="seeds"):
        SeedValues([0.5, 0.6], np.ones((3, 4)))


def test_predictions_round_trip_and_are_small():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 10, 10_000)
    pred = np.where(rng.random(10_000) < 0.98, y, (y + 1) % 10)
    text = encode_predictions(pred)
    assert (decode_predictions(text) == pred).all()
    assert len(text) < 8_000  # a few kB, not 10k ints of JSON
    wide = np.array([0, 300, 999, 7])  # ImageNet's 1,000 classes: two bytes each
    assert encode_predictions(wide).startswith("u16:") and (decode_predictions(encode_predictions(wide)) == wide).all()
    with pytest.raises(ValueError, match="0..65535"):
        encode_predictions(np.array([0, -1]))


def test_value_records_round_trip_as_float32_and_others_as_predictions():
    from kdutils.core.io import decode_record, encode_values

    gap = np.random.default_rng(5).random(500)
    text = encode_values(gap)
    assert text.startswith("f32:") and np.array_equal(decode_record(text), gap.astype(np.float32).astype(np.float64))
    bits = np.array([0, 1, 1, 0], dtype=np.uint8)
    assert np.array_equal(decode_record(encode_predictions(bits)), bits)
    with pytest.raises(ValueError, match="one number per image"):
        encode_values(np.zeros((2, 2)))


def test_margin_scales_with_the_gap_and_reports_sensitivity():
    m = scaled_margin(0.99, [0.975, 0.978, 0.972])
    assert m.value == pytest.approx((0.99 - 0.975) / 3)
    assert "gap" in m.describe()
    assert scaled_margin(0.90, [0.91, 0.92]).value == 0.0  # the student alone as good: no free margin
    a, b = [0.964, 0.967, 0.963], [0.975, 0.976, 0.974]  # a about 1 point below b

    def decide(margin):
        return claim_non_inferior(a, b, margin=margin).verdict

    assert decide(m.value) == FAILS  # 1 point lost against a margin of 0.5: the interval is below it
    assert sensitivity(decide, m.value) == {"margin/2": FAILS, "2 x margin": INCONCLUSIVE}
    assert sensitivity(decide, 0.03) == {"margin/2": HOLDS, "2 x margin": HOLDS}
    with pytest.raises(ValueError):
        scaled_margin(0.9, [])


def test_two_noise_p_decides_exactly_as_its_interval_and_best_of_many_uses_both():
    """The p-value of best_of_many's Holm step comes from the same noise as the interval: the
    interval's lower end is above 0 exactly when p < (1 - level) / 2, and a difference that the
    seeds alone call significant can stop being so once the test images' noise is in."""
    from kdutils.report.evidence import SeedValues
    from kdutils.report.results import _one_sided_p, best_of_many, two_noise_interval, two_noise_p

    rng = np.random.default_rng(0)
    for _ in range(200):
        S, N = int(rng.integers(2, 6)), int(rng.integers(50, 400))
        a = (rng.random((S, N)) < rng.uniform(0.6, 0.9)).astype(float)
        b = (rng.random((S, N)) < rng.uniform(0.6, 0.9)).astype(float)
        iv, p = two_noise_interval(a, b), two_noise_p(a, b)
        assert (iv.low > 0) == (p < 0.05)
    # on 2,000 images a beats b on 60-62 images and loses on 50, on every seed alike: the seeds
    # alone see +0.50 to +0.60 points with no spread; 110 images decide it, about one standard error
    a = np.ones((3, 2000))
    b = np.ones((3, 2000))
    for s, k in enumerate((60, 61, 62)):
        b[s, :k] = 0  # a right, b wrong
        a[s, 100:150] = 0  # b right, a wrong
    d = a.mean(1) - b.mean(1)
    assert _one_sided_p(d, 0.0) < 0.05 < two_noise_p(a, b)
    va = SeedValues(list(a.mean(1)), correct=a)
    vb = SeedValues(list(b.mean(1)), correct=b)
    row = best_of_many({"a - b": (va, vb)}).iloc[0]
    assert row.p == two_noise_p(a, b) and row.uncorrected == "inconclusive"
    assert best_of_many({"a - b": (list(va), list(vb))}).iloc[0].uncorrected == "holds"  # seeds only


# ---------------------------------------------------------------- shares on a fixed set of images (mu_S)


def _share_world(rng, n_images, seeds, p, seed_sd):
    """A student's accuracy on ``n_images`` images drawn from a population where its chance on an image is
    ``q_i`` (mean ``p``) and every seed shares the image's luck (hard images are hard for every seed)."""
    q = np.clip(rng.beta(2.0, 2.0 * (1 - p) / p, n_images), 0, 1)
    u = rng.random(n_images)
    return np.array([(u < q + rng.normal(0, seed_sd)).mean() for _ in range(seeds)])


def test_share_interval_is_conservative_on_few_images_while_seed_only_undercovers():
    """The population share is covered near the nominal 90 % on 30 images even where the bound is attained
    (every seed shares each image's outcome, as here; 0.87-0.91 over 1,000 worlds at 10-1,000 images),
    where the seed-only interval misses it most of the time (0.25-0.60)."""
    from kdutils.report.results import mean_interval, share_interval

    rng = np.random.default_rng(3)
    p, trials, hits, hits_seed = 0.3, 300, 0, 0
    for _ in range(trials):
        x = _share_world(rng, 30, 3, p, 0.01)
        iv, t = share_interval(x, n_images=30), mean_interval(x)
        assert iv.low <= t.low + 1e-12 and iv.high >= t.high - 1e-12  # never narrower
        hits += iv.low <= p <= iv.high
        hits_seed += t.low <= p <= t.high
    assert hits / trials >= 0.84, hits / trials
    assert hits_seed / trials < 0.6, hits_seed / trials


def test_share_interval_on_many_images_is_the_seed_only_one_and_zero_is_not_certain():
    from kdutils.report.results import mean_interval, share_interval

    x = np.array([0.20, 0.22, 0.19, 0.21, 0.20])
    wide, t = share_interval(x, n_images=10**9), mean_interval(x)
    assert wide.low == pytest.approx(t.low, abs=1e-6) and wide.high == pytest.approx(t.high, abs=1e-6)
    zero = share_interval([0.0, 0.0, 0.0], n_images=10)  # 0 of 10 on every seed: a width, not a point
    assert zero.low < 0 < zero.high < 0.5
    assert share_interval([0.0, 0.0, 0.0], n_images=2).high > 0.5  # two images cannot say "below a half"
    assert math.isnan(share_interval([0.1, 0.2], n_images=0).estimate)
    assert math.isnan(share_interval([0.1], n_images=50).low)
    with pytest.raises(ValueError, match="a count"):
        share_interval([0.1, 0.2], n_images=-1)


def test_ten_images_turn_a_seed_only_verdict_inconclusive():
    """mu_S of 0.45 on every seed (tiny seed spread): seed-only says "does not hold" against 0.5; on the
    ten teacher-wrong images it rests on, the interval straddles 0.5; on 10,000 images it holds its ground."""
    from kdutils.report.claims import retention_above
    from kdutils.report.results import claim_mean_above

    mu = [0.44, 0.45, 0.46]
    assert claim_mean_above(mu, 0.5).verdict == FAILS
    ten = retention_above(mu, n_images=10)
    assert ten.verdict.verdict == INCONCLUSIVE
    assert ten.measured.endswith("on the 10 training images the teacher gets wrong")
    assert "over seeds and the 10 images (binomial bound)" in ten.verdict.rule
    assert ten.verdict.seed_only is not None and ten.verdict.seed_only.high < 0.5
    assert retention_above(mu, n_images=10_000).verdict.verdict == FAILS
    # a rate of 0 on every seed (04: KD's disagreement "above 0") is the point 0 seed-only, and keeps a
    # width over the images it was measured on
    from kdutils.report.claims import above_each

    assert above_each({"rate": [0.0, 0.0, 0.0]}, 0.0).verdict.verdict == FAILS
    zero = above_each({"rate": [0.0, 0.0, 0.0]}, 0.0, n_images=40).verdict
    assert zero.low < 0 < zero.high and zero.verdict == INCONCLUSIVE


def test_does_not_hold_rests_on_a_p_no_smaller_than_the_seed_only_one():
    """Both sides of best_of_many's test keep the rule "never bolder than the seeds alone": the p for
    ``diff < 0`` of a two-noise interval is not smaller than the seed-only t's (its Welch degrees of
    freedom must not buy significance), and it is below alpha exactly when the interval lies below 0
    (200 random cases)."""
    from kdutils.report.results import _one_sided_p, two_noise_interval, two_noise_p

    rng = np.random.default_rng(11)
    for _ in range(200):
        S, N = int(rng.integers(2, 6)), int(rng.integers(50, 400))
        a = (rng.random((S, N)) < rng.uniform(0.5, 0.9)).astype(float)
        b = (rng.random((S, N)) < rng.uniform(0.5, 0.9)).astype(float)
        seed_below = 1.0 - _one_sided_p((a - b).mean(1), 0.0)  # NaN (no spread) where seeds tie: then no bound
        p = two_noise_p(a, b, below=True)
        assert not p < seed_below - 1e-12
        assert (two_noise_interval(a, b).high < 0) == (p < 0.05)
