"""Shared pieces of the method tests: seeded tiny logits, hand-written references (KL and CE in
plain Python), and a batch of given logits with the trainer's reduction. Not a test module."""

from __future__ import annotations

import math

import torch

from kdutils.methods.base import Batch
from kdutils.train import reduce_terms

# tiny float64 logits for DIST and CMKD: 4 samples, 5 classes
G = torch.Generator().manual_seed(0)
ZS = torch.randn(4, 5, generator=G, dtype=torch.float64) * 2
ZT = torch.randn(4, 5, generator=G, dtype=torch.float64) * 2
Y = torch.tensor([0, 3, 1, 4])
# labels of the robust methods' golden tests (6 samples, 5 classes)
Y6 = torch.tensor([0, 1, 2, 3, 4, 0])


def logits(seed: int, b: int = 6, c: int = 5) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, c, generator=g) * 3


def kl(p_logits, q_logits, tau):
    """KL(softmax(p / tau) || softmax(q / tau)) per row, written out."""
    p = [[math.exp(v / tau) for v in row] for row in p_logits.tolist()]
    q = [[math.exp(v / tau) for v in row] for row in q_logits.tolist()]
    out = []
    for pr, qr in zip(p, q):
        sp, sq = sum(pr), sum(qr)
        out.append(sum(a / sp * math.log((a / sp) / (b / sq)) for a, b in zip(pr, qr)))
    return torch.tensor(out)


def ce(z, y):
    return torch.tensor([math.log(sum(math.exp(v) for v in row)) - row[t] for row, t in zip(z.tolist(), y.tolist())])


def batch(zs=ZS, zt=ZT, y=Y) -> Batch:
    return Batch(x=torch.zeros(len(y), 1, 2, 2), y=y, idx=torch.arange(len(y)), logits=zs, teacher_logits=zt,
                 epoch=0, num_epochs=3, step=0, student=None)  # fmt: skip


def step_loss(method, b):
    loss, _ = reduce_terms(method(b), method=method.name, epoch=0, step=0)
    return loss
