"""RSLAD (kdutils.methods.rslad): the loss's golden value and its inner maximisation."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from kdutils import attacks
from kdutils.methods.rslad import rslad_loss


def _logits(seed: int, b: int = 6, c: int = 5) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, c, generator=g) * 3


def _kl(p_logits, q_logits, tau):
    """KL(softmax(p / tau) || softmax(q / tau)) per row, written out."""
    p = [[math.exp(v / tau) for v in row] for row in p_logits.tolist()]
    q = [[math.exp(v / tau) for v in row] for row in q_logits.tolist()]
    out = []
    for pr, qr in zip(p, q):
        sp, sq = sum(pr), sum(qr)
        out.append(sum(a / sp * math.log((a / sp) / (b / sq)) for a, b in zip(pr, qr)))
    return torch.tensor(out)


def test_rslad_loss_golden():
    zs_adv, zs, zt = _logits(5), _logits(6), _logits(7)
    want = 5 / 6 * _kl(zt, zs_adv, 1.0) + 1 / 6 * _kl(zt, zs, 1.0)
    torch.testing.assert_close(rslad_loss(zs_adv, zs, zt), want, rtol=1e-5, atol=1e-6)


def test_kl_objective_is_rslads_inner_maximisation():
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    x, zt = torch.rand(5, 4), _logits(10, 5, 3)
    got = attacks.KLDivergence(net, zt)(x)
    want = F.kl_div(F.log_softmax(net(x), 1), F.softmax(zt, 1), reduction="none").sum(1)
    torch.testing.assert_close(got, want)
