"""CCKD-L, CCKD-T and the self-regulation gate: golden values and the properties they promise."""

import pytest
import torch

import kdutils as kd
from kdutils import losses
from kdutils.methods.base import Batch
from kdutils.methods.confidence_conditioned import cckd_l_loss, cckd_t_target, teacher_confidence

ZS = torch.tensor([[1.5, -0.3, -2.2, 0.6], [-1.1, -1.4, 0.4, 0.8], [-0.7, -0.4, -0.6, 0.2]])
ZT = torch.tensor([[-0.9, 1.1, -1.1, 0.1], [-0.6, 0.4, -0.9, -1.5], [0.4, 1.5, 0.9, 0.8]])


Y = torch.tensor([0, 2, 3])
LAM = teacher_confidence(ZT, Y)


def test_lambda_golden_and_detached():
    assert LAM.tolist() == pytest.approx([0.08385, 0.152254, 0.208801], abs=1e-5)
    assert teacher_confidence(ZT, Y, 4.0).tolist() == pytest.approx([0.204751, 0.231341, 0.242636], abs=1e-5)
    zt = ZT.clone().requires_grad_()
    assert not teacher_confidence(zt, Y).requires_grad


def test_cckd_l_golden_and_limits():
    assert cckd_l_loss(ZS, ZT, Y, LAM).tolist() == pytest.approx([0.524244, 1.089987, 0.719638], abs=1e-5)
    ones, zeros = torch.ones(3), torch.zeros(3)
    assert torch.allclose(cckd_l_loss(ZS, ZT, Y, ones, 4.0), losses.kd_kl(ZS, ZT, 4.0))  # lambda = 1: KD term
    assert torch.allclose(cckd_l_loss(ZS, ZT, Y, zeros, 4.0), losses.cross_entropy(ZS, Y))  # lambda = 0: CE


def test_cckd_t_target_golden_and_is_a_distribution():
    t = cckd_t_target(ZT, Y, LAM)
    assert t[0].tolist() == pytest.approx([0.933318, 0.028306, 0.016331, 0.022045], abs=1e-5)
    assert torch.allclose(t.sum(1), torch.ones(3)) and (t >= 0).all()
    # random logits and lambdas: still a distribution, true class never below (1 - lambda)
    g = torch.Generator().manual_seed(0)
    zt, y, lam = (
        torch.randn(64, 10, generator=g) * 5,
        torch.randint(0, 10, (64,), generator=g),
        torch.rand(64, generator=g),
    )
    t = cckd_t_target(zt, y, lam)
    assert torch.allclose(t.sum(1), torch.ones(64), atol=1e-6) and (t >= 0).all()
    assert (t.gather(1, y[:, None]).squeeze(1) >= 1 - lam - 1e-6).all()
    # lambda = 1: the teacher's softened distribution; lambda = 0: the one-hot label
    assert torch.allclose(cckd_t_target(ZT, Y, torch.ones(3), 4.0), torch.softmax(ZT / 4.0, 1))
    assert torch.equal(cckd_t_target(ZT, Y, torch.zeros(3)), torch.nn.functional.one_hot(Y, 4).float())


def test_cckd_t_loss_golden_and_reduces_to_kd():
    t = cckd_t_target(ZT, Y, LAM)
    assert losses.kl_to_target(ZS, t, 4.0).tolist() == pytest.approx([12.11882, 12.454044, 10.670405], abs=1e-4)
    p_t = torch.softmax(ZT / 4.0, 1)
    assert torch.allclose(losses.kl_to_target(ZS, p_t, 4.0), losses.kd_kl(ZS, ZT, 4.0), atol=1e-5)
    assert torch.allclose(losses.kl_to_target(ZS, torch.softmax(ZS / 2.0, 1), 2.0), torch.zeros(3), atol=1e-5)


def _batch(epoch=0, num_epochs=5):
    return Batch(
        x=torch.zeros(3, 1, 2, 2),
        y=Y,
        idx=torch.arange(3),
        logits=ZS,
        teacher_logits=ZT,
        epoch=epoch,
        num_epochs=num_epochs,
        step=0,
        student=None,
    )


def test_methods_read_lambda_at_their_tau_by_default_algorithm_1():
    """[paper, Algorithm 1] lambda = y . softmax(z_T / tau) at the method's tau; lambda_tau overrides."""
    b = _batch()
    for name in ("cckd_l", "cckd_t"):
        t = kd.create_method(name)(b)
        assert torch.allclose(t.parts["lambda"], teacher_confidence(ZT, Y, 4.0))
        t2 = kd.create_method({"name": name, "tau": 2.0})(b)
        assert torch.allclose(t2.parts["lambda"], teacher_confidence(ZT, Y, 2.0))
        t1 = kd.create_method({"name": name, "lambda_tau": 1.0})(b)
        assert torch.allclose(t1.parts["lambda"], LAM)
    lam4 = teacher_confidence(ZT, Y, 4.0)
    assert torch.allclose(kd.create_method("cckd_l")(b).per_sample, cckd_l_loss(ZS, ZT, Y, lam4, 4.0))


def test_kd_scale_defaults_to_tau_squared_and_one_is_literal():
    b = _batch()
    lam4 = teacher_confidence(ZT, Y, 4.0)
    kl = losses.kd_kl(ZS, ZT, 4.0, scale=False)
    ce = losses.cross_entropy(ZS, Y)
    got = kd.create_method({"name": "cckd_l", "kd_scale": 1.0})(b).per_sample
    assert torch.allclose(got, lam4 * kl + (1 - lam4) * ce)
    assert torch.allclose(kd.create_method("cckd_l")(b).per_sample, lam4 * 16.0 * kl + (1 - lam4) * ce)
    t = cckd_t_target(ZT, Y, lam4, 4.0)
    got_t = kd.create_method({"name": "cckd_t", "kd_scale": 1.0})(b).per_sample
    assert torch.allclose(got_t, losses.kl_to_target(ZS, t, 4.0, scale=False))
    assert torch.allclose(kd.create_method("cckd_t")(b).per_sample, 16.0 * got_t)
