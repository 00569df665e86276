"""Label revision (LR, Lan et al. arXiv 2404.03693): the revised target, both loss forms, the method."""

import math

import pytest
import torch

import kdutils as kd
from kdutils.methods.base import Batch
from kdutils.methods.label_revision import (
    group_weights,
    lr_kl_loss,
    lr_mse_loss,
    revised_logits,
    revised_target,
    revision_beta,
    teacher_wrong,
)

G = torch.Generator().manual_seed(14)
ZS = torch.randn(8, 5, generator=G) * 2
ZT = torch.randn(8, 5, generator=G) * 3
Y = torch.tensor([0, 1, 2, 3, 4, 0, 1, 2])
Y[:3] = ZT[:3].argmax(1)  # the teacher is right on the first three rows (at least)


def _softmax(row, tau=1.0):
    e = [math.exp(v / tau) for v in row]
    return [v / sum(e) for v in e]


def _revised(zt_row, y, eta, tau=1.0):
    """The spec's formula, transcribed: p~ = beta p_T + (1 - beta) y, beta = eta / (p_T[max] - p_T[y] + 1)."""
    p = _softmax(zt_row, tau)
    beta = eta / (max(p) - p[y] + 1)
    return [beta * p[c] + (1 - beta) * (c == y) for c in range(len(p))], beta


def _batch(zs=ZS, zt=ZT, y=Y):
    return Batch(
        x=torch.zeros(len(y), 1, 2, 2),
        y=y,
        idx=torch.arange(len(y)),
        logits=zs,
        teacher_logits=zt,
        epoch=0,
        num_epochs=1,
        step=0,
        student=None,
    )


def test_fixture_has_right_and_wrong_teacher_rows():
    wrong = teacher_wrong(ZT, Y)
    assert 0 < int(wrong.sum()) < len(Y)


def test_revised_target_is_the_formula():
    for tau in (1.0, 4.0):
        t = revised_target(ZT, Y, 0.8, tau)
        for i in range(len(Y)):
            want, _ = _revised(ZT[i].tolist(), int(Y[i]), 0.8, tau)
            assert t[i].tolist() == pytest.approx(want, rel=1e-5, abs=1e-7)


@pytest.mark.parametrize("eta", [0.1, 0.5, 0.8, 0.99])
@pytest.mark.parametrize("tau", [1.0, 4.0])
def test_revised_target_is_a_distribution_with_the_label_on_top(eta, tau):
    g = torch.Generator().manual_seed(int(eta * 100) + int(tau))
    zt = torch.randn(200, 10, generator=g) * 5
    y = torch.randint(0, 10, (200,), generator=g)
    t = revised_target(zt, y, eta, tau)
    assert bool((t >= 0).all())
    assert torch.allclose(t.sum(1), torch.ones(200), atol=1e-6)
    assert torch.equal(t.argmax(1), y)  # eta < 1: the true class is on top of every revised target
    top_other = t.scatter(1, y[:, None], -1.0).max(1).values
    assert bool((t.gather(1, y[:, None]).squeeze(1) > top_other).all())


def test_teacher_right_keeps_its_ranking_and_beta_is_eta():
    right = ~teacher_wrong(ZT, Y)
    p = torch.softmax(ZT, 1)
    beta = revision_beta(p, Y, 0.8)
    assert beta[right].tolist() == pytest.approx([0.8] * int(right.sum()))
    assert bool((beta[~right] < 0.8).all())  # a wrong teacher is trusted less
    t = revised_target(ZT, Y, 0.8)
    assert torch.equal(t[right].argsort(1), p[right].argsort(1))  # the teacher's ranking, unchanged


def test_wrong_teacher_keeps_the_order_of_the_other_classes():
    wrong = teacher_wrong(ZT, Y)
    t, p = revised_target(ZT, Y, 0.8), torch.softmax(ZT, 1)
    for i in wrong.nonzero().flatten().tolist():
        others = [c for c in range(5) if c != int(Y[i])]
        assert sorted(others, key=lambda c: float(t[i, c])) == sorted(others, key=lambda c: float(p[i, c]))


def test_beta_golden_values():
    p = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3]])
    assert revision_beta(p, torch.tensor([0, 2]), 0.8).tolist() == pytest.approx([0.8, 0.8 / 1.3])


def test_mse_form_golden_values():
    """Teacher right: CE + lambda1 mean_c (z_S - z_T)^2; wrong: lambda2 mean_c (softmax(z_S) - p~)^2, no CE."""
    got = lr_mse_loss(ZS, ZT, Y, eta=0.8, lambda1=4.0, lambda2=1.0)
    for i in range(len(Y)):
        zs, zt, y = ZS[i].tolist(), ZT[i].tolist(), int(Y[i])
        if max(range(5), key=lambda c: zt[c]) == y:
            ce = -math.log(_softmax(zs)[y])
            want = ce + 4.0 * sum((a - b) ** 2 for a, b in zip(zs, zt)) / 5
        else:
            target, _ = _revised(zt, y, 0.8)
            want = 1.0 * sum((a - b) ** 2 for a, b in zip(_softmax(zs), target)) / 5
        assert float(got[i]) == pytest.approx(want, rel=1e-5)


def test_kl_form_golden_values():
    """0.1 CE + 0.9 tau^2 KL(t || p_S^tau), t = p_T^tau where right, p~ (at tau) where wrong."""
    tau = 4.0
    got = lr_kl_loss(ZS, ZT, Y, eta=0.8, tau=tau)
    for i in range(len(Y)):
        zs, zt, y = ZS[i].tolist(), ZT[i].tolist(), int(Y[i])
        right = max(range(5), key=lambda c: zt[c]) == y
        t = _softmax(zt, tau) if right else _revised(zt, y, 0.8, tau)[0]
        ps = _softmax(zs, tau)
        kl = sum(a * math.log(a / b) for a, b in zip(t, ps) if a > 0)
        want = 0.1 * -math.log(_softmax(zs)[y]) + 0.9 * tau * tau * kl
        assert float(got[i]) == pytest.approx(want, rel=1e-5)


def test_revised_logits_give_the_revised_target_and_leave_right_rows():
    right = ~teacher_wrong(ZT, Y)
    for tau in (1.0, 4.0):
        z = revised_logits(ZT, Y, 0.8, tau)
        assert torch.equal(z[right], ZT[right])
        assert torch.allclose(torch.softmax(z[~right] / tau, 1), revised_target(ZT, Y, 0.8, tau)[~right], atol=1e-6)
    huge = torch.tensor([[200.0, -200.0, 0.0]])  # p_T underflows to 0: the logits stay finite
    assert bool(torch.isfinite(revised_logits(huge, torch.tensor([2]), 0.8, 1.0)).all())


# --------------------------------------------------------------------------- the method


def test_lr_method_forms_and_run_key_parameters():
    m = kd.create_method("lr")
    assert m.params() == {"name": "lr", "form": "mse", "eta": 0.8, "lambda1": 4.0, "lambda2": 1.0, "average": "groups"}
    t = m(_batch())
    assert torch.allclose(t.per_sample, lr_mse_loss(ZS, ZT, Y))
    assert torch.equal(t.weight, group_weights(teacher_wrong(ZT, Y)))
    assert t.parts["lr_wrong"].tolist() == teacher_wrong(ZT, Y).float().tolist()
    kl = kd.create_method("lr", form="kl")
    assert kl.params() == {"name": "lr", "form": "kl", "eta": 0.8, "tau": 4.0, "ce_weight": 0.1, "kd_weight": 0.9}
    assert torch.allclose(kl(_batch()).per_sample, lr_kl_loss(ZS, ZT, Y))


def test_kd_plus_lr_is_the_kl_form():
    """``"kd+lr"`` revises KD's target: the same loss as LR's kl form (up to rounding)."""
    m = kd.create_method("kd+lr")
    assert m.params()["inner"]["name"] == "kd" and "form" not in m.params()
    assert torch.allclose(m(_batch()).per_sample, lr_kl_loss(ZS, ZT, Y), rtol=1e-5, atol=1e-6)
    right = ~teacher_wrong(ZT, Y)
    plain = kd.create_method("kd")(_batch()).per_sample
    assert torch.equal(m(_batch()).per_sample[right], plain[right])  # right rows: plain KD


@pytest.mark.parametrize("spec", ["dist+lr", "kd+cmkd+lr", "cckd_l+lr", "cckd_t+lr", "kd+lr+sr"])
def test_lr_revises_other_methods_targets(spec):
    m = kd.create_method(spec)
    t = m(_batch())
    assert t.per_sample.shape == (len(Y),) and bool(torch.isfinite(t.per_sample).all())
    inner = spec.rpartition("+lr")[0] if spec.endswith("+lr") else None
    if inner:  # the inner method on the revised logits, at its own tau
        z = revised_logits(ZT, Y, 0.8, getattr(kd.create_method(inner), "tau", 1.0))
        want = kd.create_method(inner)(_batch(zt=z)).per_sample
        assert torch.allclose(t.per_sample, want)


def test_lr_errors_name_the_choices():
    with pytest.raises(kd.UnknownNameError, match="kl, mse"):
        kd.create_method("lr", form="l2")
    with pytest.raises(ValueError, match=r"eta must be in \(0, 1\)"):
        kd.create_method("lr", eta=1.0)
    with pytest.raises(ValueError, match="apply to LR's own loss"):
        kd.create_method({"name": "lr", "inner": "kd", "lambda1": 2.0})
    with pytest.raises(kd.UnknownNameError, match="valid choices"):
        kd.create_method("lr", lam=1.0)


@pytest.mark.parametrize("spec", ["lr", {"name": "lr", "form": "kl"}, "kd+lr"])
def test_lr_trains_one_step_through_an_experiment(store, spec):
    exp = kd.Experiment(kd.configure("smoke", teacher_epochs=1, student_epochs=1, progress=False, device="cpu"), store)
    t = exp.teacher()
    run = exp.student(spec, seed=0, teacher=t)
    h = run.history[0]
    assert math.isfinite(h["loss"]) and 0.0 <= h["lr_wrong"] <= 1.0
    assert run.config["method"] == kd.create_method(spec).params()
    assert exp.student(spec, seed=0, teacher=t).reused


def test_rlds_loss_adds_the_mean_of_each_group_and_batch_is_the_ablation():
    """RLD averages the rows the teacher gets right and those it gets wrong separately and adds the
    two means [public]; ``average="batch"`` is one mean over the batch (the wrong rows' term then
    weighs by their share of the batch)."""
    from kdutils.methods import Batch, create_method
    from kdutils.methods.label_revision import group_weights
    from kdutils.training.train import reduce_terms

    g = torch.Generator().manual_seed(3)
    zs, zt = torch.randn(8, 5, generator=g), torch.randn(8, 5, generator=g) * 3
    y = zt.argmax(1).clone()
    y[:2] = (y[:2] + 1) % 5  # the teacher is wrong on 2 of 8 rows
    wrong = teacher_wrong(zt, y)
    per = lr_mse_loss(zs, zt, y)
    expected = per[wrong].mean() + per[~wrong].mean()
    b = Batch(x=torch.zeros(8, 1, 2, 2), y=y, idx=torch.arange(8), logits=zs, teacher_logits=zt, epoch=0,
              num_epochs=1, step=0, student=None)  # fmt: skip
    groups = create_method({"name": "lr", "form": "mse"})
    loss, _ = reduce_terms(groups(b), method="lr", epoch=0, step=0)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    batch = create_method({"name": "lr", "form": "mse", "average": "batch"})
    loss_b, _ = reduce_terms(batch(b), method="lr", epoch=0, step=0)
    assert loss_b.item() == pytest.approx(per.mean().item(), rel=1e-6)
    assert torch.equal(group_weights(torch.zeros(4, dtype=torch.bool)), torch.ones(4))  # one group: a plain mean
    with pytest.raises(kd.errors.UnknownNameError, match="groups"):
        create_method({"name": "lr", "form": "mse", "average": "rows"})
