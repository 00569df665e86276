"""Self-regulated KD (kdutils.methods.self_regulation): the confidence readings, the eta schedule, the gate, wrapping any method, and participation counts."""

import math
from dataclasses import dataclass

import pytest
import torch

import kdutils as kd
from kdutils.methods.base import Batch
from kdutils.methods.self_regulation import SelfRegulated, eta_schedule, sr_confidence, sr_gate

ZS = torch.tensor([[1.5, -0.3, -2.2, 0.6], [-1.1, -1.4, 0.4, 0.8], [-0.7, -0.4, -0.6, 0.2]])
ZT = torch.tensor([[-0.9, 1.1, -1.1, 0.1], [-0.6, 0.4, -0.9, -1.5], [0.4, 1.5, 0.9, 0.8]])


Y = torch.tensor([0, 2, 3])


def test_sr_confidence_readings():
    assert sr_confidence(ZS, Y, "margin").tolist() == pytest.approx([0.371686, 0.170757, 0.187627], abs=1e-5)
    assert sr_confidence(ZS, Y, "true_prob").tolist() == pytest.approx([0.626334, 0.347192, 0.415851], abs=1e-5)
    with pytest.raises(kd.UnknownNameError, match="margin, true_prob"):
        sr_confidence(ZS, Y, "entropy")


def test_eta_schedule():
    assert eta_schedule(0, 10) == 0.0
    assert eta_schedule(9, 10) == pytest.approx(0.9)  # default: eta_end at the last epoch
    assert eta_schedule(4, 5, eta_end=0.5) == pytest.approx(0.5)
    assert eta_schedule(2, 10, alpha=0.5) == pytest.approx(1 - math.exp(-1.0))
    etas = [eta_schedule(n, 10) for n in range(10)]
    assert etas == sorted(etas)


def test_gate_at_epoch_zero_takes_only_misclassified():
    # sample 0 predicted 0 (= y, right), samples 1, 2 predicted 3 (y = 2 wrong, y = 3 right)
    gate = sr_gate(ZS, Y, eta_schedule(0, 5))
    assert gate.tolist() == [False, True, False]
    assert sr_gate(ZS, Y, 0.2).tolist() == [False, True, True]  # sample 2's margin 0.19 < 0.2
    assert sr_gate(ZS, Y, 1.0).all()


def _batch(epoch=0, num_epochs=5):
    return Batch(
        x=torch.zeros(3, 1, 2, 2),
        y=Y,
        idx=torch.arange(3),
        logits=ZS,
        teacher_logits=ZT,
        epoch=epoch,
        num_epochs=num_epochs,
        step=0,
        student=None,
    )


@pytest.mark.parametrize("inner", ["kd", "cckd_l", "cckd_t", "ce"])
def test_any_method_can_be_wrapped(inner):
    m = kd.create_method(f"{inner}+sr")
    assert isinstance(m, SelfRegulated) and m.inner.name == inner
    assert m.needs_teacher == (inner != "ce")
    plain, gated = kd.create_method(inner)(_batch()), m(_batch())
    assert torch.allclose(plain.per_sample, gated.per_sample)
    assert gated.mask.tolist() == [False, True, False]
    assert m.params() == {
        "name": "sr",
        "inner": kd.create_method(inner).params(),
        "delta": "margin",
        "eta_end": 0.9,
        "alpha": None,
        "beta": None,
        "delta_tau": None,
    }


def test_fixed_threshold_variant_and_bad_delta():
    m = kd.create_method({"name": "sr", "inner": "ce", "beta": 0.2})
    assert m(_batch(epoch=0)).mask.tolist() == [False, True, True]
    with pytest.raises(kd.UnknownNameError, match="margin, true_prob"):
        kd.create_method({"name": "sr", "inner": "kd", "delta": "entropy"})


@dataclass
class RecordingSR(SelfRegulated):
    """SR that remembers, per sample index, in how many epochs its gate opened."""

    def __post_init__(self):
        super().__post_init__()
        self.opened: dict[int, int] = {}

    def __call__(self, b):
        t = super().__call__(b)
        for i, w in zip(b.idx.tolist(), t.mask.tolist()):
            self.opened[i] = self.opened.get(i, 0) + int(w)
        return t


def test_participation_counts_match_the_gate(digits_split):
    torch.manual_seed(0)
    net = kd.create_model("lenet5_half", 10, 1, input_size=8, mean=digits_split.mean, std=digits_split.std)
    m = RecordingSR(inner="ce")
    r = kd.fit(net, digits_split, m, kd.Recipe(epochs=4, batch_size=32, lr=3e-3), progress=False)
    n = len(digits_split.train_y)
    assert r.participation.tolist() == [m.opened.get(i, 0) for i in range(n)]
    usage = [h["participation"] for h in r.history]
    assert usage[0] < 1.0 and 0 < r.participation.sum() < 4 * n  # SR saves sample-epochs
    assert all(0.0 <= u <= 1.0 for u in usage)


def test_no_step_when_nobody_takes_part():
    """A model right on every sample with margin ~1 at eta = 0: the gate is closed, nothing moves."""

    class Confident(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.b = torch.nn.Parameter(torch.tensor([20.0, 0.0]))

        def forward(self, x):
            return self.b.expand(len(x), 2) + 0 * x.flatten(1)[:, :2]

    x = torch.zeros(6, 1, 2, 1, dtype=torch.uint8)
    y = torch.zeros(6, dtype=torch.long)
    sp = kd.Split("toy", x, y, x[:0], y[:0], x, y, torch.arange(6), ["a", "b"], (0.5,), (0.5,))
    net = Confident()
    r = kd.fit(net, sp, kd.create_method("ce+sr"), kd.Recipe(epochs=1, batch_size=3), progress=False)
    assert r.steps_skipped == 2 and int(r.participation.sum()) == 0
    assert net.b.tolist() == [20.0, 0.0]


def test_sr_reads_delta_at_the_inner_methods_tau():
    """[paper, Algorithm 1] delta from y_S = softmax(z_S / tau): softer at tau = 4, so the gate stays open longer."""
    assert sr_confidence(ZS, Y, "margin", tau=4.0).tolist() == pytest.approx(
        (torch.softmax(ZS / 4, 1).topk(2, 1).values[:, 0] - torch.softmax(ZS / 4, 1).topk(2, 1).values[:, 1]).tolist()
    )
    m = kd.create_method("cckd_t+sr")
    assert m.gate_tau == 4.0
    assert kd.create_method("ce+sr").gate_tau == 1.0  # no temperature: tau = 1
    assert kd.create_method({"name": "sr", "inner": "cckd_t", "delta_tau": 1.0}).gate_tau == 1.0
    # eta = 0.2: at tau = 1 sample 2 (margin 0.19) is in; sample 0 (margin 0.37) out; at tau = 4 both margins shrink below 0.2
    b = _batch(epoch=0)
    m.beta = 0.2
    assert m(b).mask.tolist() == [True, True, True]
    strict = kd.create_method({"name": "sr", "inner": "cckd_t", "delta_tau": 1.0, "beta": 0.2})
    assert strict(b).mask.tolist() == [False, True, True]
