"""The student alone (kdutils.methods.ce): cross-entropy with the labels, no teacher."""

import pytest
import torch

from kdutils import losses
from kdutils.methods import Batch, create_method

G = torch.Generator().manual_seed(0)
ZS = torch.randn(5, 3, generator=G)
Y = torch.tensor([0, 2, 1, 1, 0])


def test_ce_is_the_hard_label_cross_entropy_and_needs_no_teacher():
    method = create_method("ce")
    assert not method.needs_teacher
    b = Batch(x=torch.zeros(5, 1, 2, 2), y=Y, idx=torch.arange(5), logits=ZS, teacher_logits=None, epoch=0,
              num_epochs=1, step=0, student=None)  # fmt: skip
    terms = method(b)
    assert torch.equal(terms.per_sample, losses.cross_entropy(ZS, Y))
    expected = [-torch.log_softmax(ZS[i], 0)[Y[i]].item() for i in range(5)]
    assert terms.per_sample.tolist() == pytest.approx(expected, abs=1e-6)
