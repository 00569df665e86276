"""Significance-based, regulated and hybrid distillation (self-regulated KD)."""

import pytest
import torch

import kdutils as kd
from kdutils.methods.base import Batch
from kdutils.methods.kd import kd_loss
from kdutils.methods.significance import significance_weights

ZS = torch.tensor([[1.5, -0.3, -2.2, 0.6], [-1.1, -1.4, 0.4, 0.8], [-0.7, -0.4, -0.6, 0.2], [0.1, 0.2, 0.3, 2.0]])
ZT = torch.tensor([[-0.9, 1.1, -1.1, 0.1], [-0.6, 0.4, -0.9, -1.5], [0.4, 1.5, 0.9, 0.8], [0.0, 0.0, 0.0, 3.0]])
Y = torch.tensor([0, 2, 3, 3])


def _batch(sample_weight, epoch=0):
    return Batch(
        x=torch.zeros(4, 1, 2, 2),
        y=Y,
        idx=torch.arange(4),
        logits=ZS,
        teacher_logits=ZT,
        epoch=epoch,
        num_epochs=5,
        step=0,
        student=None,
        sample_weight=sample_weight,
    )


def test_weights_are_normalised_as_specified():
    s = torch.tensor([0, 2, 5, 10])
    assert significance_weights(s).tolist() == pytest.approx([0.0, 0.2, 0.5, 1.0])  # s / max s
    assert significance_weights(s, "epochs", epochs=20).tolist() == pytest.approx([0.0, 0.1, 0.25, 0.5])
    assert significance_weights(s, "sqrt").tolist() == pytest.approx([0.0, 0.2**0.5, 0.5**0.5, 1.0])
    assert significance_weights(torch.zeros(3, dtype=torch.long)).tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(kd.UnknownNameError, match="epochs, max, sqrt"):
        significance_weights(s, "log")


def test_zero_significance_never_takes_part():
    m = kd.create_method("significance")
    t = m(_batch(torch.tensor([0.0, 0.2, 0.5, 1.0])))
    assert t.weight.tolist() == pytest.approx([0.0, 0.2, 0.5, 1.0])
    assert t.mask.tolist() == [False, True, True, True]  # s_i = 0: does not take part
    assert t.reduction == "weighted_mean"  # sum w l / sum w [ours, the spec]
    assert kd.create_method({"name": "significance", "normalise": False})(_batch(torch.ones(4))).reduction == "mean"
    assert torch.allclose(t.per_sample, kd_loss(ZS, ZT, Y))  # l_i is the KD baseline's loss


def test_hybrid_is_gate_times_significance():
    sig = torch.tensor([0.3, 0.6, 0.0, 1.0])
    hybrid = kd.create_method("significance+sr")
    regulated = kd.create_method("kd+sr")
    gate = regulated(_batch(None, epoch=0)).mask  # epoch 0 (eta = 0): only misclassified samples take part
    t = hybrid(_batch(sig, epoch=0))
    assert torch.equal(t.mask, gate & (sig > 0))
    assert t.mask.tolist() == [False, True, False, False]  # only sample 1 is misclassified
    assert torch.allclose(t.weight, sig)  # importance: the significance weights


def test_significance_needs_weights():
    with pytest.raises(ValueError, match="needs per-sample weights"):
        kd.create_method("significance")(_batch(None))


def test_significance_equals_participation_of_the_sr_teacher(store):
    """s_i = number of epochs sample i took part in the SR teacher's training, stored with the run."""
    exp = kd.Experiment(kd.configure("smoke", teacher_epochs=3, progress=False, device="cpu"), store)
    t = exp.teacher(method="ce+sr")
    s = t.participation
    assert s.dtype == torch.int64 and len(s) == len(exp.split.train_y)
    assert int(s.min()) >= 0 and int(s.max()) <= 3
    assert int(s.sum()) == sum(h["sample_epochs"] for h in t.history)
    again = kd.Experiment(kd.configure("smoke", teacher_epochs=3, progress=False, device="cpu"), store).teacher(
        method="ce+sr"
    )
    assert again.reused and torch.equal(again.participation, s)  # stored with the teacher's run
