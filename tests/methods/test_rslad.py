"""RSLAD (kdutils.methods.rslad): the loss's golden value and its inner maximisation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from method_reference import kl, logits

from kdutils import attacks
from kdutils.methods.rslad import rslad_loss


def test_rslad_loss_golden():
    zs_adv, zs, zt = logits(5), logits(6), logits(7)
    want = 5 / 6 * kl(zt, zs_adv, 1.0) + 1 / 6 * kl(zt, zs, 1.0)
    torch.testing.assert_close(rslad_loss(zs_adv, zs, zt), want, rtol=1e-5, atol=1e-6)


def test_kl_objective_is_rslads_inner_maximisation():
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    x, zt = torch.rand(5, 4), logits(10, 5, 3)
    got = attacks.KLDivergence(net, zt)(x)
    want = F.kl_div(F.log_softmax(net(x), 1), F.softmax(zt, 1), reduction="none").sum(1)
    torch.testing.assert_close(got, want)
