"""IBP training (kdutils.methods.ibp_training): the loss's golden value, the schedule, and certified accuracy after training."""

from __future__ import annotations

import pytest
import torch
from method_reference import Y6, ce, logits

import kdutils as kd
from kdutils import ibp
from kdutils.methods import create_method
from kdutils.methods.ibp_training import ibp_loss


def test_ibp_loss_golden():
    z, zw = logits(0), logits(1)
    want = 0.7 * ce(z, Y6) + 0.3 * ce(zw, Y6)
    torch.testing.assert_close(ibp_loss(z, zw, Y6, 0.7), want, rtol=1e-5, atol=1e-5)


def test_ibp_schedule_eps_and_kappa():
    m = create_method({"name": "ibp", "eps": 0.2, "kappa": 0.5, "warmup": 0.1, "ramp": 0.4})
    assert m.schedule(0.0) == (0.0, 1.0)
    eps, kappa = m.schedule(0.3)
    assert eps == pytest.approx(0.1) and kappa == pytest.approx(0.75)
    assert m.schedule(0.95) == (0.2, 0.5)


@pytest.fixture(scope="module")
def split():
    return kd.make_split(kd.load_dataset("digits"), val_fraction=0.1)


def _net(split, seed=0, name="ibp_small"):
    torch.manual_seed(seed)
    sp = split
    return kd.create_model(name, sp.num_classes, sp.in_channels, input_size=sp.input_size, mean=sp.mean, std=sp.std)


def test_ibp_training_gives_certified_accuracy(split):
    recipe = kd.Recipe(epochs=4, batch_size=64, lr=3e-3)
    ce, robust = _net(split), _net(split)
    kd.fit(ce, split, create_method("ce"), recipe, progress=False)
    kd.fit(
        robust, split, create_method({"name": "ibp", "eps": 0.05, "warmup": 0.0, "ramp": 0.5}), recipe, progress=False
    )
    cert = ibp.certified_accuracy(robust.eval(), split.test_x, split.test_y, 0.02)
    assert cert > 0.3 and cert > ibp.certified_accuracy(ce.eval(), split.test_x, split.test_y, 0.02)
