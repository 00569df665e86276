"""Golden values and properties of the pure losses (seeded tiny tensors)."""

import math

import numpy as np
import pytest
import torch

from kdutils import losses

ZS = torch.tensor([[1.5, -0.3, -2.2, 0.6], [-1.1, -1.4, 0.4, 0.8], [-0.7, -0.4, -0.6, 0.2]])
ZT = torch.tensor([[-0.9, 1.1, -1.1, 0.1], [-0.6, 0.4, -0.9, -1.5], [0.4, 1.5, 0.9, 0.8]])


Y = torch.tensor([0, 2, 3])


def _np_softmax(z, tau=1.0):
    e = np.exp(z / tau - (z / tau).max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_cross_entropy_golden():
    got = losses.cross_entropy(ZS, Y)
    expected = [0.467871, 1.057878, 0.877429]  # pinned; also equals -log softmax below
    assert got.shape == (3,)
    assert got.tolist() == pytest.approx(expected, abs=1e-5)
    p = _np_softmax(ZS.double().numpy())
    assert got.tolist() == pytest.approx([-math.log(p[i, Y[i]]) for i in range(3)], abs=1e-5)


@pytest.mark.parametrize("tau, expected", [(4.0, [1.140173, 1.268766, 0.121728]), (1.0, [1.016857, 1.193917, 0.13534])])
def test_kd_kl_golden(tau, expected):
    got = losses.kd_kl(ZS, ZT, tau)
    assert got.tolist() == pytest.approx(expected, abs=1e-5)
    pt, ps = _np_softmax(ZT.double().numpy(), tau), _np_softmax(ZS.double().numpy(), tau)
    manual = tau**2 * (pt * (np.log(pt) - np.log(ps))).sum(axis=1)
    assert got.tolist() == pytest.approx(manual.tolist(), abs=1e-5)


def test_kd_kl_properties():
    assert torch.allclose(losses.kd_kl(ZS, ZS, 4.0), torch.zeros(3), atol=1e-6)  # KL(p || p) = 0
    assert (losses.kd_kl(ZS, ZT, 2.0) > 0).all()
    assert torch.allclose(losses.kd_kl(ZS, ZT, 3.0, scale=False) * 9.0, losses.kd_kl(ZS, ZT, 3.0))
    # shift invariance of the softmax
    assert torch.allclose(losses.kd_kl(ZS + 5.0, ZT - 2.0, 4.0), losses.kd_kl(ZS, ZT, 4.0), atol=1e-5)


def test_teacher_gets_no_gradient():
    zs, zt = ZS.clone().requires_grad_(), ZT.clone().requires_grad_()
    losses.kd_kl(zs, zt, 4.0).sum().backward()
    assert zs.grad is not None and zs.grad.abs().sum() > 0
    assert zt.grad is None


def test_soft_cross_entropy_with_one_hot_is_ce():
    onehot = torch.nn.functional.one_hot(Y, 4).float()
    assert torch.allclose(losses.soft_cross_entropy(ZS, onehot), losses.cross_entropy(ZS, Y), atol=1e-6)
