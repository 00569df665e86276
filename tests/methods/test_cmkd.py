"""CMKD (kdutils.methods.cmkd): difficulty and weights, the per-sample formula of each weighting, the gated intra-class term, one training step of every DIST and CMKD ablation, and their run keys."""

import dataclasses
import json
import math

import pytest
import torch
import torch.nn.functional as F
from method_reference import ZS, ZT, Y, batch, step_loss

import kdutils as kd
from kdutils import correlation as corr
from kdutils.methods import cmkd as cmkd_method
from kdutils.methods.cmkd import CMKD, correlation_weights, difficulty
from kdutils.methods.dist import dist_intra
from kdutils.train import reduce_terms


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


def test_cmkd_per_sample_formula_for_each_weighting():
    b = batch()
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
    b = batch()
    dist = step_loss(kd.create_method("dist"), b)
    assert step_loss(kd.create_method({"name": "cmkd", "correlation": "pearson"}), b).item() == pytest.approx(
        dist.item(), abs=1e-10
    )


def test_cmkd_standardise_changes_the_inputs_only():
    b = batch()
    plain = kd.create_method({"name": "cmkd", "standardise": True})(b)
    zs, zt = corr.standardise(ZS), corr.standardise(ZT)
    d = difficulty(ZT)  # read on the raw logits
    term = (1 - d) * corr.pearson_distance(zs, zt, 4.0) + d * corr.spearman_distance(zs, zt, 4.0)
    assert torch.allclose(plain.per_sample, F.cross_entropy(ZS, Y, reduction="none") + 32.0 * term, atol=1e-12)


@pytest.mark.parametrize("inner", ["kd", "cckd_l", "cckd_t"])
def test_cmkd_on_top_of_another_method(inner):
    b = batch()
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
    terms = dataclasses.replace(m(batch(zs, zt, y)), mask=mask)
    loss, _ = reduce_terms(terms, method=m.name, epoch=0, step=0)
    subset = step_loss(m, batch(zs[mask], zt[mask], y[mask]))
    assert loss.item() == pytest.approx(subset.item(), abs=1e-10)
    unmasked = step_loss(m, batch(zs, zt, y))
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
