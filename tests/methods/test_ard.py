"""ARD (kdutils.methods.ard): the loss's golden value."""

from __future__ import annotations

import torch
from method_reference import Y6, ce, kl, logits

from kdutils.methods.ard import ard_loss


def test_ard_loss_golden():
    zs_adv, zs, zt = logits(2), logits(3), logits(4)
    want = 0.8 * 30.0**2 * kl(zt, zs_adv, 30.0) + 0.2 * ce(zs, Y6)
    torch.testing.assert_close(ard_loss(zs_adv, zs, zt, Y6, tau=30.0, alpha=0.8), want, rtol=1e-4, atol=1e-5)
    # alpha = 1 (ARD's code default): the KL alone
    torch.testing.assert_close(ard_loss(zs_adv, zs, zt, Y6), 900 * kl(zt, zs_adv, 30.0), rtol=1e-4, atol=1e-5)
