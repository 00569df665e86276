"""ARD (kdutils.methods.ard): the loss's golden value."""

from __future__ import annotations

import math

import torch

from kdutils.methods.ard import ard_loss


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


def _ce(z, y):
    return torch.tensor([math.log(sum(math.exp(v) for v in row)) - row[t] for row, t in zip(z.tolist(), y.tolist())])


Y = torch.tensor([0, 1, 2, 3, 4, 0])


def test_ard_loss_golden():
    zs_adv, zs, zt = _logits(2), _logits(3), _logits(4)
    want = 0.8 * 30.0**2 * _kl(zt, zs_adv, 30.0) + 0.2 * _ce(zs, Y)
    torch.testing.assert_close(ard_loss(zs_adv, zs, zt, Y, tau=30.0, alpha=0.8), want, rtol=1e-4, atol=1e-5)
    # alpha = 1 (ARD's code default): the KL alone
    torch.testing.assert_close(ard_loss(zs_adv, zs, zt, Y), 900 * _kl(zt, zs_adv, 30.0), rtol=1e-4, atol=1e-5)
