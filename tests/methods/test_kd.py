"""Hinton KD (kdutils.methods.kd): the loss's golden value, and the method computing exactly it."""

import pytest
import torch

from kdutils import losses
from kdutils.methods.kd import kd_loss

ZS = torch.tensor([[1.5, -0.3, -2.2, 0.6], [-1.1, -1.4, 0.4, 0.8], [-0.7, -0.4, -0.6, 0.2]])
ZT = torch.tensor([[-0.9, 1.1, -1.1, 0.1], [-0.6, 0.4, -0.9, -1.5], [0.4, 1.5, 0.9, 0.8]])


Y = torch.tensor([0, 2, 3])


def test_kd_loss_golden_and_mix():
    got = kd_loss(ZS, ZT, Y, tau=4.0, ce_weight=0.1, kd_weight=0.9)
    assert got.tolist() == pytest.approx([1.072943, 1.247677, 0.197298], abs=1e-5)
    assert torch.allclose(kd_loss(ZS, ZT, Y, ce_weight=1.0, kd_weight=0.0), losses.cross_entropy(ZS, Y))
    assert torch.allclose(kd_loss(ZS, ZT, Y, ce_weight=0.0, kd_weight=1.0), losses.kd_kl(ZS, ZT, 4.0))


def test_the_method_is_the_loss_bit_for_bit():
    """One formula: the ``kd`` method's per-sample loss is :func:`kd_loss`, not a second copy of it."""
    from kdutils.methods import Batch, create_method

    method = create_method("kd", tau=2.0, ce_weight=0.3, kd_weight=0.7)
    b = Batch(
        x=torch.zeros(3, 1, 2, 2),
        y=Y,
        idx=torch.arange(3),
        logits=ZS,
        teacher_logits=ZT,
        epoch=0,
        num_epochs=1,
        step=0,
        student=None,
    )
    terms = method(b)
    assert torch.equal(terms.per_sample, kd_loss(ZS, ZT, Y, tau=2.0, ce_weight=0.3, kd_weight=0.7))
    assert torch.equal(terms.parts["kd"], losses.kd_kl(ZS, ZT, 2.0))
