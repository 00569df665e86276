"""The faithfulness evaluations (kdutils.evaluation.faithfulness): empirical under certified gaps, empty point sets, the share and histogram."""

from __future__ import annotations

import pytest
import torch

import kdutils as kd
from kdutils import faithfulness


@pytest.fixture(scope="module")
def split():
    return kd.make_split(kd.load_dataset("digits"), val_fraction=0.1)


def _net(split, seed=0, name="ibp_small"):
    torch.manual_seed(seed)
    sp = split
    return kd.create_model(name, sp.num_classes, sp.in_channels, input_size=sp.input_size, mean=sp.mean, std=sp.std)


def test_empirical_gap_is_below_the_certified_gap_per_point(split):
    t, s = _net(split, 0).eval(), _net(split, 1).eval()
    x, y = split.test_x[:48], split.test_y[:48]
    for eps in (0.01, 0.05):
        plus, minus = faithfulness.empirical_gap(t, s, x, y, eps, steps=5)
        ub_plus, ub_minus, both = faithfulness.certified_gap(t, s, x, y, eps)
        assert (plus <= ub_plus + 1e-6).all() and (minus <= ub_minus + 1e-6).all()
        s_hit, t_hit = faithfulness.local_disagreement(t, s, x, y, eps, steps=5)
        assert not ((s_hit | t_hit) & both).any()  # certified agreement: no disagreement can be found


def test_faithfulness_on_no_points_gives_empty_results(split):
    """A teacher right on none of the evaluation points (found by the paper dry run: 8 images,
    untrained networks) leaves nothing to attack: empty results, not a crash."""
    t, s = _net(split, 0).eval(), _net(split, 1).eval()
    x, y = split.test_x[:0], split.test_y[:0]
    kt, ks = faithfulness.predictions(t, s, x, y)
    assert kt.shape == ks.shape == (0,) and kt.dtype == torch.int64
    s_hit, t_hit = faithfulness.local_disagreement(t, s, x, y, 0.05, steps=2)
    assert s_hit.shape == t_hit.shape == (0,) and s_hit.dtype == torch.bool
    plus, minus = faithfulness.empirical_gap(t, s, x, y, 0.05, steps=2)
    assert plus.shape == minus.shape == (0,) and plus.dtype == torch.float32
    ub_plus, ub_minus, both = faithfulness.certified_gap(t, s, x, y, 0.05)
    assert ub_plus.shape == both.shape == (0,) and both.dtype == torch.bool


def test_faithful_share_and_histogram():
    gap = torch.tensor([0.0, 0.05, 0.1, 0.5, 1.0])
    assert faithfulness.faithful_share(gap, [0.01, 0.1, 1.0]) == [0.2, 0.6, 1.0]
    h = faithfulness.gap_histogram(gap, bins=4)
    assert h["counts"] == [3, 0, 1, 1] and len(h["edges"]) == 5


def test_the_slice_image_is_neither_saturated_nor_wrong():
    from kdutils.faithfulness import slice_image, true_class_confidence

    ok = torch.tensor([True, True, False, True, True])
    conf = torch.tensor([0.99999, 0.5, 0.9, 0.93, 0.85])
    assert slice_image(ok, conf) == 3  # 0.93 is nearest 0.9 among the right ones (image 2 is wrong)
    assert slice_image(ok, conf, target=0.6) == 1
    assert slice_image(torch.zeros(5, dtype=torch.bool), conf) == 0
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    x, y = torch.rand(6, 1, 2, 2), torch.tensor([0, 1, 2, 0, 1, 2])
    p = true_class_confidence(net, x, y)
    with torch.no_grad():
        want = net(x).softmax(1)[torch.arange(6), y]
    assert torch.allclose(p, want) and p.shape == (6,)
