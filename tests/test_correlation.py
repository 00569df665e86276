"""DIST and CMKD: golden values of the correlation losses, the soft rank, the Spearman term, the
difficulty weights, the gated intra-class term, and one training step of every method and ablation."""

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import kdutils as kd
from kdutils import correlation as corr
from kdutils.methods import cmkd as cmkd_method
from kdutils.methods.base import Batch
from kdutils.methods.cmkd import CMKD, correlation_weights, difficulty
from kdutils.methods.dist import dist_inter, dist_intra
from kdutils.train import reduce_terms

G = torch.Generator().manual_seed(0)
ZS = torch.randn(4, 5, generator=G, dtype=torch.float64) * 2
ZT = torch.randn(4, 5, generator=G, dtype=torch.float64) * 2
Y = torch.tensor([0, 3, 1, 4])


def _np_dist(z_s, z_t, y, tau, beta, gamma, kd_weight):
    """DIST's published loss, transcribed from ``hunto/DIST_KD`` (``dist_kd.py``) in NumPy:
    cosine of centred rows with eps 1e-8 on the product of the norms; intra = inter on the
    transposes; total = CE + kd_weight * (beta * tau^2 inter + gamma * tau^2 intra)."""

    def softmax(z):
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def pearson_rows(a, b):
        a = a - a.mean(axis=1, keepdims=True)
        b = b - b.mean(axis=1, keepdims=True)
        return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-8)

    y_s, y_t = softmax(z_s / tau), softmax(z_t / tau)
    inter = tau**2 * (1 - pearson_rows(y_s, y_t).mean())
    intra = tau**2 * (1 - pearson_rows(y_s.T, y_t.T).mean())
    ce = -np.log(softmax(z_s)[np.arange(len(y)), y]).mean()
    return ce + kd_weight * (beta * inter + gamma * intra), inter, intra


def _batch(zs=ZS, zt=ZT, y=Y):
    return Batch(
        x=torch.zeros(len(y), 1, 2, 2),
        y=y,
        idx=torch.arange(len(y)),
        logits=zs,
        teacher_logits=zt,
        epoch=0,
        num_epochs=3,
        step=0,
        student=None,
    )


def _loss(method, b):
    loss, _ = reduce_terms(method(b), method=method.name, epoch=0, step=0)
    return loss


# ---------------------------------------------------------------- Pearson and DIST


@pytest.mark.parametrize("tau", [4.0, 1.0])
def test_dist_golden_against_the_published_formula(tau):
    zs, zt, y = ZS.numpy(), ZT.numpy(), Y.numpy()
    # DIST's CIFAR-100 setting: loss module beta = gamma = 1 and weight 2 == our beta = gamma = 2
    total, inter, intra = _np_dist(zs, zt, y, tau, beta=1.0, gamma=1.0, kd_weight=2.0)
    assert dist_inter(ZS, ZT, tau).mean().item() == pytest.approx(inter, abs=1e-10)
    assert dist_intra(ZS, ZT, tau).item() == pytest.approx(intra, abs=1e-10)
    assert _loss(kd.create_method({"name": "dist", "tau": tau}), _batch()).item() == pytest.approx(total, abs=1e-10)
    other = _np_dist(zs, zt, y, tau, beta=0.5, gamma=3.0, kd_weight=1.0)[0]
    got = _loss(kd.create_method({"name": "dist", "tau": tau, "beta": 0.5, "gamma": 3.0}), _batch())
    assert got.item() == pytest.approx(other, abs=1e-10)


def test_dist_pinned_values():
    assert dist_inter(ZS, ZT, 4.0).tolist() == pytest.approx(
        [10.049141586867933, 23.374673145275295, 1.086253939079997, 5.071723803034644], abs=1e-10
    )
    assert dist_intra(ZS, ZT, 4.0).item() == pytest.approx(6.342480197808666, abs=1e-10)


def test_pearson_properties():
    a = torch.randn(6, 9, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert torch.allclose(corr.pearson(a, a), torch.ones(6, dtype=torch.float64))
    assert torch.allclose(corr.pearson(a, -3 * a + 2), -torch.ones(6, dtype=torch.float64))  # affine invariant
    np_r = [np.corrcoef(a[i].numpy(), a[(i + 1) % 6].numpy())[0, 1] for i in range(6)]
    assert corr.pearson(a, a.roll(-1, 0)).tolist() == pytest.approx(np_r, abs=1e-7)
    assert corr.pearson(torch.ones(1, 4), torch.randn(1, 4)).item() == 0.0  # a constant row: 0, not NaN


def test_standardise_is_a_row_z_score():
    z = torch.randn(3, 7, dtype=torch.float64) * 5 + 2
    s = corr.standardise(z)
    assert torch.allclose(s.mean(1), torch.zeros(3, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(s.std(1), torch.ones(3, dtype=torch.float64), atol=1e-6)
    assert torch.equal(corr.standardise(torch.ones(1, 4)), torch.zeros(1, 4))


# ---------------------------------------------------------------- soft rank and Spearman


def _naive_soft_rank(x, kappa):
    """The definition, written out with plain differentiable ops (no chunks, no custom backward)."""
    d = torch.sigmoid((x[:, :, None] - x[:, None, :]) / kappa)
    off = ~torch.eye(x.shape[1], dtype=torch.bool)
    return 1 + (d * off).sum(2)


def test_soft_rank_tends_to_the_hard_rank():
    g = torch.Generator().manual_seed(2)
    x = torch.stack([torch.randperm(12, generator=g) for _ in range(5)]).double() * 0.1  # no ties, gaps 0.1
    hard = corr.hard_rank(x)
    assert sorted(hard[0].tolist()) == list(range(1, 13))
    errors = [(corr.soft_rank(x, k) - hard).abs().max().item() for k in (1.0, 0.1, 0.01, 0.001)]
    assert errors == sorted(errors, reverse=True) and errors[0] > 1.0
    assert errors[-1] < 1e-12
    assert torch.equal(corr.hard_rank(torch.tensor([[0.3, -1.0, 2.0]])), torch.tensor([[2.0, 1.0, 3.0]]))


def test_soft_rank_matches_its_definition_and_gradcheck():
    x = torch.randn(3, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64, requires_grad=True)
    assert torch.allclose(corr.soft_rank(x, 0.7), _naive_soft_rank(x, 0.7), atol=1e-12)
    for chunk in (1, 2, None):
        assert torch.autograd.gradcheck(lambda t, c=chunk: corr.soft_rank(t, 0.7, chunk=c), (x,))
    g = torch.randn(3, 5, dtype=torch.float64)
    (ours,) = torch.autograd.grad(corr.soft_rank(x, 0.7), x, g)
    (naive,) = torch.autograd.grad(_naive_soft_rank(x, 0.7), x, g)
    assert torch.allclose(ours, naive, atol=1e-12)


def test_chunked_soft_rank_equals_unchunked_forward_and_backward():
    x = torch.randn(7, 13, generator=torch.Generator().manual_seed(4), dtype=torch.float64, requires_grad=True)
    g = torch.randn(7, 13, dtype=torch.float64)
    full = corr.soft_rank(x, 0.5, chunk=7)
    (g_full,) = torch.autograd.grad(full, x, g)
    for chunk in (1, 2, 3, 100):
        out = corr.soft_rank(x, 0.5, chunk=chunk)
        (g_out,) = torch.autograd.grad(out, x, g)
        assert torch.allclose(out, full, atol=1e-12) and torch.allclose(g_out, g_full, atol=1e-12)


def test_a_1000_class_batch_runs_in_bounded_chunks():
    assert corr.soft_rank_chunk(1000) * 1000**2 <= corr.SOFT_RANK_MAX_ELEMENTS
    assert corr.soft_rank_chunk(100) * 100**2 <= corr.SOFT_RANK_MAX_ELEMENTS and corr.soft_rank_chunk(100) >= 64
    assert corr.soft_rank_chunk(10**5) == 1
    g = torch.Generator().manual_seed(5)
    zs = torch.randn(12, 1000, generator=g, requires_grad=True)
    zt = torch.randn(12, 1000, generator=g)
    ls = corr.spearman_distance(zs, zt, tau=4.0)  # default bound: 4 rows of 1000 x 1000 at a time
    ls.sum().backward()
    assert ls.shape == (12,) and torch.isfinite(ls).all() and torch.isfinite(zs.grad).all()
    small = corr.soft_rank(zs.detach()[:3], 1.0, max_elements=1000**2)  # one row at a time
    assert torch.allclose(small, corr.soft_rank(zs.detach()[:3], 1.0, chunk=3), atol=1e-3)


def test_soft_rank_rejects_bad_arguments():
    with pytest.raises(ValueError, match="kappa"):
        corr.soft_rank(torch.randn(2, 3), 0.0)
    with pytest.raises(ValueError, match="chunk"):
        corr.soft_rank(torch.randn(2, 3), 1.0, chunk=0)


def test_spearman_is_zero_for_the_same_ranking_and_two_for_the_reversed_one():
    zt = torch.arange(10, dtype=torch.float64).repeat(3, 1) * torch.tensor([[1.0], [2.0], [0.5]], dtype=torch.float64)
    same = 3 * zt + 1  # other values, the same ranking
    ls = corr.spearman_distance(same, zt, tau=1.0, kappa=0.01)
    # exact up to Pearson's eps 1e-8 over the ranks' squared norm (82.5): about 1e-10
    assert ls.tolist() == pytest.approx([0.0] * 3, abs=1e-9)
    assert corr.spearman_distance(-same, zt, tau=1.0, kappa=0.01).tolist() == pytest.approx([2.0] * 3, abs=1e-9)
    # random pairs lie in between, and the hard ranks reach the bounds exactly
    g = torch.Generator().manual_seed(6)
    mixed = corr.spearman_distance(torch.randn(50, 10, generator=g), torch.randn(50, 10, generator=g))
    assert (mixed > 0).all() and (mixed < 2).all()
    r = corr.hard_rank(zt)
    assert torch.allclose(1 - corr.pearson(r, r), torch.zeros(3, dtype=torch.float64), atol=1e-9)
    assert torch.allclose(1 - corr.pearson(r.flip(1), r), torch.full((3,), 2.0, dtype=torch.float64), atol=1e-9)


# ---------------------------------------------------------------- difficulty and weights


@pytest.mark.parametrize("kind", cmkd_method.DIFFICULTIES)
def test_difficulty_in_unit_interval_and_detached(kind):
    g = torch.Generator().manual_seed(7)
    zt = (torch.randn(64, 10, generator=g) * 6).requires_grad_()
    zs = (torch.randn(64, 10, generator=g) * 6).requires_grad_()
    y = torch.randint(0, 10, (64,), generator=g)
    d = difficulty(zt, y, kind, z_s=zs)
    assert d.shape == (64,) and not d.requires_grad
    assert (d >= 0).all() and (d <= 1).all() and d.std() > 0.01
    confident = torch.tensor([[50.0, 0.0, 0.0]])
    flat = torch.zeros(1, 3)
    y0 = torch.tensor([0])
    assert difficulty(confident, y0, kind, z_s=confident).item() == pytest.approx(0.0, abs=1e-6)
    expected_flat = 2 / 3 if kind == "teacher_miss" else 1.0
    assert difficulty(flat, y0, kind, z_s=flat).item() == pytest.approx(expected_flat, abs=1e-6)


def test_teacher_entropy_golden():
    p = F.softmax(ZT, 1)
    expected = (-(p * p.log()).sum(1) / math.log(5)).tolist()
    assert difficulty(ZT).tolist() == pytest.approx(expected, abs=1e-12)
    assert difficulty(ZT, Y, "teacher_miss").tolist() == pytest.approx((1 - p[range(4), Y]).tolist(), abs=1e-12)


def test_unknown_choices_name_the_valid_ones():
    with pytest.raises(kd.UnknownNameError, match="student_entropy, teacher_entropy, teacher_miss"):
        difficulty(ZT, Y, "margin")
    with pytest.raises(kd.UnknownNameError, match="student_entropy, teacher_entropy, teacher_miss"):
        kd.create_method({"name": "cmkd", "difficulty": "margin"})
    with pytest.raises(kd.UnknownNameError, match="constant, dynamic, reversed"):
        kd.create_method({"name": "cmkd", "weights": "learned"})
    with pytest.raises(kd.UnknownNameError, match="both, pearson, spearman"):
        kd.create_method({"name": "cmkd", "correlation": "kendall"})
    with pytest.raises(kd.UnknownNameError, match="kappa"):
        kd.create_method({"name": "cmkd", "temperature": 2.0})


def test_weights_schemes():
    d = torch.tensor([0.0, 0.25, 1.0])
    w_p, w_s = correlation_weights(d, "dynamic")
    assert w_p.tolist() == [1.0, 0.75, 0.0] and w_s.tolist() == [0.0, 0.25, 1.0]
    w_p, w_s = correlation_weights(d, "reversed")
    assert w_p.tolist() == [0.0, 0.25, 1.0] and w_s.tolist() == [1.0, 0.75, 0.0]
    assert [w.tolist() for w in correlation_weights(d, "constant")] == [[0.5] * 3, [0.5] * 3]


# ---------------------------------------------------------------- the methods


def test_cmkd_per_sample_formula_for_each_weighting():
    b = _batch()
    ce = F.cross_entropy(ZS, Y, reduction="none")
    d = difficulty(ZT)
    lp, ls = corr.pearson_distance(ZS, ZT, 4.0), corr.spearman_distance(ZS, ZT, 4.0, 1.0)
    expected = {
        ("both", "dynamic"): (1 - d) * lp + d * ls,
        ("both", "reversed"): d * lp + (1 - d) * ls,
        ("both", "constant"): 0.5 * lp + 0.5 * ls,
        ("pearson", "dynamic"): lp,
        ("spearman", "dynamic"): ls,
    }
    for (c, w), term in expected.items():
        t = kd.create_method({"name": "cmkd", "correlation": c, "weights": w})(b)
        assert torch.allclose(t.per_sample, ce + 2.0 * 16.0 * term, atol=1e-12), (c, w)
        assert t.batch(torch.ones(4, dtype=torch.bool)).item() == pytest.approx(2 * dist_intra(ZS, ZT).item())
    t = kd.create_method("cmkd")(b)
    assert set(t.parts) == {"ce", "pearson", "spearman", "difficulty", "intra"}
    assert kd.create_method({"name": "cmkd", "intra": False})(b).batch is None


def test_cmkd_pearson_only_is_dist():
    b = _batch()
    dist = _loss(kd.create_method("dist"), b)
    assert _loss(kd.create_method({"name": "cmkd", "correlation": "pearson"}), b).item() == pytest.approx(
        dist.item(), abs=1e-10
    )


def test_cmkd_standardise_changes_the_inputs_only():
    b = _batch()
    plain = kd.create_method({"name": "cmkd", "standardise": True})(b)
    zs, zt = corr.standardise(ZS), corr.standardise(ZT)
    d = difficulty(ZT)  # read on the raw logits
    term = (1 - d) * corr.pearson_distance(zs, zt, 4.0) + d * corr.spearman_distance(zs, zt, 4.0)
    assert torch.allclose(plain.per_sample, F.cross_entropy(ZS, Y, reduction="none") + 32.0 * term, atol=1e-12)


@pytest.mark.parametrize("inner", ["kd", "cckd_l", "cckd_t"])
def test_cmkd_on_top_of_another_method(inner):
    b = _batch()
    plain = kd.create_method(inner)(b)
    own = kd.create_method("cmkd")(b)
    ce = F.cross_entropy(ZS, Y, reduction="none")
    for spec in (f"{inner}+cmkd", {"name": "cmkd", "inner": inner}):
        m = kd.create_method(spec)
        assert isinstance(m, CMKD) and m.inner.name == inner and m.needs_teacher
        t = m(b)
        assert torch.allclose(t.per_sample, plain.per_sample + own.per_sample - ce, atol=1e-12)
        assert set(plain.parts) <= set(t.parts)
        assert m.params()["inner"] == kd.create_method(inner).params()
    stacked = kd.create_method(f"{inner}+cmkd+sr")
    assert stacked.inner.name == "cmkd" and stacked.inner.inner.name == inner and stacked.gate_tau == 4.0


def test_cmkd_needs_a_teacher_even_around_ce():
    m = kd.create_method("cmkd")
    assert m.inner.name == "ce" and m.needs_teacher
    with pytest.raises(ValueError, match="needs a teacher"):
        kd.methods.base.distils(m, None)


@pytest.mark.parametrize("spec", ["dist", "cmkd", "kd+cmkd", {"name": "cmkd", "correlation": "spearman"}])
def test_the_intra_class_term_is_gated_to_the_masked_rows(spec):
    """With a mask the loss equals the method's loss on the subset of rows alone (per-sample terms
    are per row, the batch term is computed on the masked rows only); gated rows get no gradient."""
    g = torch.Generator().manual_seed(8)
    zs = torch.randn(6, 7, generator=g, dtype=torch.float64, requires_grad=True)
    zt = torch.randn(6, 7, generator=g, dtype=torch.float64)
    y = torch.randint(0, 7, (6,), generator=g)
    mask = torch.tensor([True, False, True, True, False, True])
    m = kd.create_method(spec)
    terms = dataclasses.replace(m(_batch(zs, zt, y)), mask=mask)
    loss, _ = reduce_terms(terms, method=m.name, epoch=0, step=0)
    subset = _loss(m, _batch(zs[mask], zt[mask], y[mask]))
    assert loss.item() == pytest.approx(subset.item(), abs=1e-10)
    unmasked = _loss(m, _batch(zs, zt, y))
    assert abs(unmasked.item() - loss.item()) > 1e-3  # the mask matters
    (grad,) = torch.autograd.grad(loss, zs)
    assert grad[~mask].abs().sum() == 0 and grad[mask].abs().sum() > 0


def _toy_split(n=8, classes=5, size=4):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)
    y = torch.arange(n) % classes
    names = [str(c) for c in range(classes)]
    return kd.Split("toy", x, y, x[:0], y[:0], x, y, torch.arange(n), names, (0.5,) * 3, (0.5,) * 3)


ABLATIONS = [
    "dist",
    "cmkd",
    {"name": "cmkd", "correlation": "pearson"},
    {"name": "cmkd", "correlation": "spearman"},
    {"name": "cmkd", "weights": "constant"},
    {"name": "cmkd", "weights": "reversed"},
    {"name": "cmkd", "intra": False},
    {"name": "cmkd", "kappa": 0.1},
    {"name": "cmkd", "standardise": True},
    {"name": "cmkd", "difficulty": "teacher_miss"},
    {"name": "cmkd", "difficulty": "student_entropy"},
    {"name": "cmkd", "lam": 1.0},
    "kd+cmkd",
    "cckd_l+cmkd",
    "kd+cmkd+sr",
    "dist+sr",
]


@pytest.mark.parametrize("spec", ABLATIONS, ids=[json.dumps(s) for s in ABLATIONS])
def test_every_method_and_ablation_takes_a_training_step(spec):
    split = _toy_split()
    torch.manual_seed(0)
    teacher = kd.create_model("mlp", 5, 3, input_size=4, hidden=8)
    student = kd.create_model("mlp", 5, 3, input_size=4, hidden=8)
    before = [p.detach().clone() for p in student.parameters()]
    m = kd.create_method(spec)
    r = kd.fit(
        student, split, m, kd.Recipe(epochs=1, batch_size=8, optimizer="sgd", lr=0.1), teacher=teacher, progress=False
    )
    assert math.isfinite(r.history[0]["loss"])
    if r.steps_skipped == 0:
        assert any(not torch.equal(a, p) for a, p in zip(before, student.parameters()))
    if m.name == "cmkd":
        assert 0.0 <= r.history[0]["difficulty"] <= 1.0 and "pearson" in r.history[0]


def test_run_keys_differ_between_ablations():
    keys = [json.dumps(kd.create_method(s).params(), sort_keys=True) for s in ABLATIONS]
    assert len(set(keys)) == len(keys)
    assert kd.create_method("cmkd").params() == {
        "name": "cmkd",
        "inner": {"name": "ce"},
        "tau": 4.0,
        "lam": 2.0,
        "correlation": "both",
        "weights": "dynamic",
        "intra": True,
        "kappa": 1.0,
        "standardise": False,
        "difficulty": "teacher_entropy",
        "difficulty_tau": 1.0,
    }
    assert kd.create_method("dist").params() == {
        "name": "dist",
        "tau": 4.0,
        "beta": 2.0,
        "gamma": 2.0,
        "ce_weight": 1.0,
    }
