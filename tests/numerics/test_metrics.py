"""Tests for kdutils.metrics (hand-computed examples + tiny foolbox runs)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kdutils.metrics import (
    accuracy,
    agreement,
    ece,
    kl_teacher_student,
    nll,
    predict_logits,
    rank_correlation,
    rank_histogram,
    reliability,
    retention,
    robust_accuracy,
    robust_correct,
    robustness_curves,
)


def _logits_from_probs(rows: list[list[float]]) -> torch.Tensor:
    # softmax(log p) == p, so these logits have exactly the given probabilities
    return torch.tensor(rows, dtype=torch.float64).log()


def _onehot_logits(pred: list[int], k: int = 3) -> torch.Tensor:
    return F.one_hot(torch.tensor(pred), k).float() * 5.0


# ---------------------------------------------------------------------------
# calibration
# ---------------------------------------------------------------------------

# 5 samples, 10 bins of width 0.1; confidences 0.95, 0.95, 0.75, 0.45, 0.55
ECE_PROBS = [
    [0.95, 0.03, 0.02],  # y=0 correct, conf .95 -> bin 9
    [0.95, 0.03, 0.02],  # y=1 wrong,   conf .95 -> bin 9
    [0.15, 0.75, 0.10],  # y=1 correct, conf .75 -> bin 7
    [0.35, 0.45, 0.20],  # y=0 wrong,   conf .45 -> bin 4
    [0.55, 0.25, 0.20],  # y=0 correct, conf .55 -> bin 5
]
ECE_Y = torch.tensor([0, 1, 1, 0, 0])
# bin 9: n=2, acc=.5, conf=.95 -> 2/5 * .45 = .18
# bin 7: n=1, acc=1,  conf=.75 -> 1/5 * .25 = .05
# bin 4: n=1, acc=0,  conf=.45 -> 1/5 * .45 = .09
# bin 5: n=1, acc=1,  conf=.55 -> 1/5 * .45 = .09
# ECE = .18 + .05 + .09 + .09 = .41
ECE_EXPECTED = 0.41


def test_ece_hand_example() -> None:
    logits = _logits_from_probs(ECE_PROBS)
    assert ece(logits, ECE_Y, n_bins=10) == pytest.approx(ECE_EXPECTED, abs=1e-6)
    # float32 logits give the same answer
    assert ece(logits.float(), ECE_Y, n_bins=10) == pytest.approx(ECE_EXPECTED, abs=1e-5)


def test_reliability_hand_example() -> None:
    rel = reliability(_logits_from_probs(ECE_PROBS), ECE_Y, n_bins=10)
    assert set(rel) == {"bin_lower", "bin_upper", "confidence", "accuracy", "count"}
    assert all(len(v) == 10 for v in rel.values())
    assert rel["bin_lower"][0] == 0.0 and rel["bin_upper"][-1] == 1.0
    assert rel["bin_lower"][1:] == pytest.approx(rel["bin_upper"][:-1])
    assert rel["count"] == [0, 0, 0, 0, 1, 1, 0, 1, 0, 2]
    assert all(type(c) is int for c in rel["count"])
    assert sum(rel["count"]) == len(ECE_Y)
    assert rel["confidence"][9] == pytest.approx(0.95)
    assert rel["accuracy"][9] == pytest.approx(0.5)
    assert rel["accuracy"][4] == 0.0 and rel["accuracy"][5] == 1.0
    for b in (0, 1, 2, 3, 6, 8):  # empty bins
        assert math.isnan(rel["confidence"][b])
        assert math.isnan(rel["accuracy"][b])
    assert all(isinstance(v, float) for v in rel["confidence"] + rel["accuracy"])


def test_reliability_counts_sum_to_n_random() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(97, 10, generator=g) * 3
    y = torch.randint(0, 10, (97,), generator=g)
    rel = reliability(logits, y)  # default 15 bins
    assert len(rel["count"]) == 15
    assert sum(rel["count"]) == 97


def test_reliability_edge_goes_to_lower_bin() -> None:
    # confidences exactly 0.25 (4 equal logits) and 0.5 (2 equal of 2 classes
    # padded with -inf) with 4 bins: 0.25 -> bin (0, .25], 0.5 -> bin (.25, .5]
    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, -math.inf, -math.inf]], dtype=torch.float64)
    rel = reliability(logits, torch.tensor([0, 0]), n_bins=4)
    assert rel["count"] == [1, 1, 0, 0]
    assert rel["confidence"][0] == 0.25 and rel["confidence"][1] == 0.5


def test_ece_perfectly_calibrated_is_zero() -> None:
    # 4 samples all with confidence .75, 3 of them right -> acc .75 = conf
    logits = _logits_from_probs([[0.75, 0.25]] * 4)
    y = torch.tensor([0, 0, 0, 1])
    assert ece(logits, y) == pytest.approx(0.0, abs=1e-9)


def test_ece_confident_and_wrong_is_near_one() -> None:
    logits = torch.tensor([[30.0, 0.0, 0.0]] * 8)
    y = torch.ones(8, dtype=torch.long)
    assert ece(logits, y) == pytest.approx(1.0, abs=1e-6)
    assert accuracy(logits, y) == 0.0


# ---------------------------------------------------------------------------
# simple metrics
# ---------------------------------------------------------------------------


def test_accuracy_hand_example() -> None:
    logits = _onehot_logits([0, 1, 2, 0])
    assert accuracy(logits, torch.tensor([0, 1, 1, 1])) == pytest.approx(0.5)


def test_nll_matches_cross_entropy() -> None:
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(20, 7, generator=g) * 4
    y = torch.randint(0, 7, (20,), generator=g)
    assert nll(logits, y) == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-5)
    # hand value: uniform over 4 classes -> log 4
    assert nll(torch.zeros(3, 4), torch.tensor([0, 1, 3])) == pytest.approx(math.log(4))


def test_kl_zero_for_identical_and_positive_otherwise() -> None:
    g = torch.Generator().manual_seed(2)
    t = torch.randn(16, 5, generator=g)
    s = torch.randn(16, 5, generator=g)
    assert kl_teacher_student(t, t.clone()) == pytest.approx(0.0, abs=1e-12)
    # shift invariance of softmax
    assert kl_teacher_student(t, t + 3.0, tau=2.0) == pytest.approx(0.0, abs=1e-9)
    for tau in (1.0, 4.0):
        val = kl_teacher_student(t, s, tau=tau)
        assert val > 0
        p = F.softmax(t.double() / tau, dim=1)
        q = F.softmax(s.double() / tau, dim=1)
        ref = (p * (p.log() - q.log())).sum(dim=1).mean().item()
        assert val == pytest.approx(ref, rel=1e-9)
    # stable for extreme logits (no inf / nan)
    big = torch.tensor([[1000.0, -1000.0]])
    assert math.isfinite(kl_teacher_student(big, -big))


def test_agreement_hand_example() -> None:
    student = _onehot_logits([0, 1, 0, 0, 1, 0])
    teacher = _onehot_logits([0, 1, 2, 0, 2, 0])
    # agree at positions 0, 1, 3, 5 -> 4/6
    assert agreement(student, teacher) == pytest.approx(4 / 6)


def test_retention_hand_example() -> None:
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    teacher = _onehot_logits([0, 1, 2, 0, 2, 0])  # wrong on 4, 5; right on 0-3
    student = _onehot_logits([0, 1, 0, 0, 1, 0])  # right on 0,1,3,4; wrong on 2,5
    r = retention(teacher, student, y)
    assert r["n_teacher_wrong"] == 2 and r["n_teacher_right"] == 4
    # teacher wrong {4, 5}, student right on {4}        -> mu_S = 1/2
    assert r["mu_s"] == pytest.approx(0.5)
    # teacher right {0, 1, 2, 3}, student wrong on {2}  -> mu_F = 1/4
    assert r["mu_f"] == pytest.approx(0.25)


def test_retention_zero_denominators_give_nan() -> None:
    y = torch.tensor([0, 1, 2])
    right = _onehot_logits([0, 1, 2])
    wrong = _onehot_logits([1, 2, 0])
    r = retention(right, wrong, y)  # teacher never wrong
    assert math.isnan(r["mu_s"]) and r["mu_f"] == 1.0
    assert r["n_teacher_wrong"] == 0 and r["n_teacher_right"] == 3
    r = retention(wrong, right, y)  # teacher never right
    assert r["mu_s"] == 1.0 and math.isnan(r["mu_f"])


# ---------------------------------------------------------------------------
# model-based helpers
# ---------------------------------------------------------------------------


def _linear_model(n_classes: int, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, n_classes))


def _data(model: nn.Module, n: int = 24, n_wrong: int = 6, seed: int = 0):
    """Random uint8 1x8x8 images; labels = model prediction, except that the
    first ``n_wrong`` labels are shifted, so clean accuracy = 1 - n_wrong/n."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 1, 8, 8), dtype=torch.uint8, generator=g)
    with torch.no_grad():
        k = model[-1].out_features
        y = model(x.float() / 255).argmax(dim=1)
    y[:n_wrong] = (y[:n_wrong] + 1) % k
    return x, y


def test_predict_logits_uint8_float_and_modes() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3), nn.Dropout(0.9))
    model.train()
    g = torch.Generator().manual_seed(3)
    x = torch.randint(0, 256, (10, 1, 8, 8), dtype=torch.uint8, generator=g)
    out_u8 = predict_logits(model, x, batch_size=4)
    out_f = predict_logits(model, x.float() / 255, batch_size=1024)
    assert model.training and all(m.training for m in model.modules())
    assert out_u8.dtype == torch.float32 and out_u8.device.type == "cpu"
    assert out_u8.shape == (10, 3)
    assert torch.allclose(out_u8, out_f, atol=1e-6)
    # eval mode was used: dropout off, so equals the bare linear layer
    with torch.no_grad():
        ref = model[1](model[0](x.float() / 255))
    assert torch.allclose(out_u8, ref, atol=1e-6)
    # an eval-mode model stays in eval mode
    model.eval()
    predict_logits(model, x)
    assert not model.training


def test_robust_accuracy_eps0_is_clean_accuracy() -> None:
    model = _linear_model(3)
    x, y = _data(model)  # clean accuracy 18/24 = .75
    clean = accuracy(predict_logits(model, x), y)
    assert clean == pytest.approx(0.75)
    for attack in ("fgsm", "pgd"):
        accs = robust_accuracy(model, x, y, attack, [0.0, 0.02, 0.1], batch_size=10)
        assert all(isinstance(a, float) for a in accs)
        # foolbox counts clean misclassifications as successes: eps 0 is .75
        # (not 1.0), and no epsilon can exceed the clean accuracy
        assert accs[0] == pytest.approx(clean)
        assert all(a <= clean + 1e-12 for a in accs)
    # float input gives the same numbers as uint8
    assert robust_accuracy(model, x.float() / 255, y, "fgsm", [0.0, 0.05]) == (
        robust_accuracy(model, x, y, "fgsm", [0.0, 0.05])
    )


def test_fgsm_non_increasing_on_linear_model() -> None:
    # Two classes: FGSM moves every pixel by min(eps, room to the bound) in a
    # fixed direction that lowers the true-class margin, so the margin is
    # monotone in eps and robust accuracy cannot increase.
    model = _linear_model(2, seed=1)
    x, y = _data(model, n=32, n_wrong=4, seed=1)
    eps = [0.0, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32]
    accs = robust_accuracy(model, x, y, "fgsm", eps)
    assert all(a >= b for a, b in zip(accs, accs[1:]))
    assert accs[0] > accs[-1]  # the attack does something


def test_pgd_large_eps_gives_zero_and_is_deterministic() -> None:
    model = _linear_model(3)
    x, y = _data(model)
    assert robust_accuracy(model, x, y, "pgd", [1.0]) == [0.0]
    eps = [0.0, 0.01, 0.03, 0.06]
    a1 = robust_accuracy(model, x, y, "pgd", eps, steps=5, seed=123)
    a2 = robust_accuracy(model, x, y, "pgd", eps, steps=5, seed=123)
    assert a1 == a2
    # default PGD step size is 2.5 / steps
    assert a1 == robust_accuracy(model, x, y, "pgd", eps, steps=5, rel_stepsize=0.5, seed=123)


def test_robust_accuracy_restores_rng_and_mode() -> None:
    model = _linear_model(3)
    x, y = _data(model)
    model.train()
    torch.manual_seed(999)
    state = torch.get_rng_state()
    robust_accuracy(model, x, y, "pgd", [0.05], steps=3, seed=0)
    assert torch.equal(torch.get_rng_state(), state)
    assert model.training


def test_robust_accuracy_unknown_attack() -> None:
    model = _linear_model(3)
    x, y = _data(model)
    with pytest.raises(ValueError) as exc:
        robust_accuracy(model, x, y, "cw", [0.1])
    assert "fgsm" in str(exc.value) and "pgd" in str(exc.value)


def test_robust_correct_is_the_per_image_record_behind_robust_accuracy() -> None:
    """Row means are the robust accuracies (same attack calls, same batches, same seed); eps 0 marks
    exactly the clean-correct images, and a larger FGSM step never turns a lost image back on a
    linear two-class model."""
    model = _linear_model(3)
    x, y = _data(model)
    eps = [0.0, 0.02, 0.1]
    clean = (predict_logits(model, x).argmax(1) == y).numpy()
    for attack in ("fgsm", "pgd"):
        c = robust_correct(model, x, y, attack, eps, steps=4, batch_size=10, seed=7)
        assert c.dtype == torch.bool and tuple(c.shape) == (len(eps), len(y))
        assert c.double().mean(1).tolist() == pytest.approx(
            robust_accuracy(model, x, y, attack, eps, steps=4, batch_size=10, seed=7), abs=1e-12
        )
        assert np.array_equal(c[0].numpy(), clean)
        assert not (c[1:] & ~c[:1]).any()  # an image wrong without attack is wrong under it
    m2 = _linear_model(2, seed=1)
    x2, y2 = _data(m2, n=32, n_wrong=4, seed=1)
    c2 = robust_correct(m2, x2, y2, "fgsm", [0.0, 0.01, 0.04, 0.16])
    assert not (c2[1:] & ~c2[:-1]).any()  # monotone per image
    assert robust_correct(model, x, y, "fgsm", []).shape == (0, len(y))


def test_robustness_curves() -> None:
    model = _linear_model(3)
    x, y = _data(model)
    eps = [0.0, 0.05]
    curves = robustness_curves(model, x, y, eps, steps=3)
    assert set(curves) == {"fgsm", "pgd"}
    assert curves["pgd"] == robust_accuracy(model, x, y, "pgd", eps, steps=3)
    assert curves["fgsm"][0] == pytest.approx(0.75)


# ---------------------------------------------------------------------------
# teacher-student rank agreement (notebook 02)
# ---------------------------------------------------------------------------


def test_rank_correlation_hand_examples() -> None:
    t = torch.tensor([[1.0, 2.0, 3.0, 4.0]] * 4)
    s = torch.tensor(
        [
            [10.0, 20.0, 30.0, 40.0],  # same ranking: 1
            [4.0, 3.0, 2.0, 1.0],  # reversed: -1
            [1.0, 3.0, 2.0, 4.0],  # one swap: 1 - 6 * 2 / (4 * 15) = 0.8
            [1.0, 1.0, 2.0, 3.0],  # a tie: ranks 1.5 1.5 3 4 vs 1 2 3 4: 4.5 / sqrt(4.5 * 5) = 0.9487
        ]
    )
    rho = rank_correlation(s, t)
    assert rho.dtype == torch.float64 and rho.shape == (4,)
    assert rho.tolist()[:3] == pytest.approx([1.0, -1.0, 0.8], abs=1e-12)
    assert rho[3].item() == pytest.approx(4.5 / math.sqrt(4.5 * 5.0), abs=1e-12)
    # softmax at any temperature keeps the ranking
    assert torch.equal(rank_correlation(F.softmax(s / 4, dim=1), t), rho)


def test_rank_correlation_matches_scipy_with_ties_and_constant_rows_give_zero(monkeypatch) -> None:
    stats = pytest.importorskip("scipy.stats")
    g = torch.Generator().manual_seed(0)
    s = torch.randint(0, 4, (50, 7), generator=g).float()  # many ties
    t = torch.randn(50, 7, generator=g)
    s[0] = 2.0  # a constant row: no ranking
    rho = rank_correlation(s, t)
    assert rho[0].item() == 0.0
    expected = [stats.spearmanr(s[i].numpy(), t[i].numpy()).statistic for i in range(1, 50)]
    assert rho[1:].tolist() == pytest.approx(expected, abs=1e-12)
    monkeypatch.setattr("kdutils.metrics._RANK_MAX_ELEMENTS", 49 * 3)  # 3 rows per chunk
    assert torch.equal(rank_correlation(s, t), rho)


def test_rank_correlation_checks_shapes() -> None:
    with pytest.raises(ValueError, match="same shape"):
        rank_correlation(torch.zeros(3, 4), torch.zeros(3, 5))


def test_rank_histogram_bins_and_edges() -> None:
    h = rank_histogram(torch.tensor([-1.0, 0.0, 0.02, 1.0, 0.999]), bins=4)
    assert h["edges"] == [-1.0, -0.5, 0.0, 0.5, 1.0]
    assert h["counts"] == [1, 0, 2, 2]  # [-1, -0.5) [-0.5, 0) [0, 0.5) [0.5, 1]
    assert sum(rank_histogram(torch.rand(1000) * 2 - 1)["counts"]) == 1000
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        rank_histogram(torch.tensor([1.5]))
    with pytest.raises(ValueError, match="bins"):
        rank_histogram(torch.tensor([0.0]), bins=0)
