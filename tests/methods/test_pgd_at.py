"""PGD adversarial training (kdutils.methods.pgd_at): the student trains on its own PGD points."""

import dataclasses

import pytest
import torch
from torch import nn

from kdutils import losses
from kdutils.core.errors import ParameterError
from kdutils.methods import Batch, create_method
from kdutils.methods.base import ATTACK_STEP


def _batch(student, x, y):
    return Batch(x=x, y=y, idx=torch.arange(len(y)), logits=None, teacher_logits=None, epoch=0, num_epochs=1,
                 step=0, student=student, generator=torch.Generator().manual_seed(0))  # fmt: skip


def test_the_forward_is_on_points_in_the_ball_that_raise_the_loss():
    torch.manual_seed(0)
    student = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    x, y = torch.rand(16, 1, 2, 2) * 0.6 + 0.2, torch.randint(0, 3, (16,))
    method = create_method("pgd_at", eps=0.1, steps=10)
    seen = []
    hook = student.register_forward_hook(lambda m, inp, out: seen.append(inp[0].detach().clone()))
    adv_logits = method.forward(_batch(student, x, y))
    hook.remove()
    x_adv = seen[-1].view_as(x)
    assert (x_adv - x).abs().max() <= 0.1 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    clean = losses.cross_entropy(student(x), y)
    adv = method(dataclasses.replace(_batch(student, x, y), logits=adv_logits))
    assert (adv.per_sample >= clean - 1e-6).all() and adv.per_sample.mean() > clean.mean()


def test_cost_and_bad_arguments():
    assert create_method("pgd_at", steps=7).passes() == (ATTACK_STEP * 7, 0.0)
    with pytest.raises(ParameterError):
        create_method("pgd_at", eps=8)  # pixel units: 8/255 was meant
