"""kdutils.attacks: PGD finds the known optimum of a linear model, stays in the ball and in [0, 1],
FGSM is one step, seeds reproduce, models keep their modes, and the objectives do what they say."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import kdutils as kd
from kdutils import attacks as A


def _linear(d: int = 12, seed: int = 0) -> tuple[nn.Module, torch.Tensor]:
    """f(x) = w . x + b on flattened (B, 1, 3, 4) images; w has no zero entry."""
    g = torch.Generator().manual_seed(seed)
    lin = nn.Linear(d, 1)
    with torch.no_grad():
        w = torch.randn(1, d, generator=g)
        lin.weight.copy_(w + 0.1 * w.sign())
        lin.bias.fill_(0.3)
    return nn.Sequential(nn.Flatten(), lin), lin.weight[0].detach()


def _x(n: int = 5, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 1, 3, 4, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("random_start", [True, False])
def test_pgd_finds_the_worst_case_of_a_linear_model(random_start):
    # max of w . x' + b over ||x' - x||_inf <= eps, x' in [0, 1]: x' = clip(x + eps sign(w)), coordinate-wise
    model, w = _linear()
    x, eps = _x(), 0.2
    objective = lambda z: model(z)[:, 0]
    x_adv = A.pgd(objective, x, eps, steps=5, random_start=random_start, generator=torch.Generator().manual_seed(0))
    best = (x + eps * w.view(1, 1, 3, 4).sign()).clamp(0, 1)
    assert torch.allclose(x_adv, best, atol=1e-6)
    # the same optimum through the default objective: CE of a 2-class model [0, f(x)] on class 0
    two = nn.Sequential(model, nn.ConstantPad1d((1, 0), 0.0))
    x_ce = A.pgd(
        two,
        x,
        eps,
        torch.zeros(5, dtype=torch.long),
        steps=5,
        random_start=random_start,
        generator=torch.Generator().manual_seed(0),
    )
    assert torch.allclose(x_ce, best, atol=1e-6)


def test_fgsm_is_one_step_of_eps_from_x():
    model, w = _linear()
    x, eps = _x(), 0.05
    objective = lambda z: model(z)[:, 0]
    expected = (x + eps * w.view(1, 1, 3, 4).sign()).clamp(0, 1)
    assert torch.allclose(A.fgsm(objective, x, eps), expected, atol=1e-7)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 3))
    y = torch.tensor([0, 1, 2, 0, 1])
    one = A.pgd(net, x, eps, y, steps=1, step_size=eps, random_start=False)
    assert torch.equal(A.fgsm(net, x, eps, y), one)
    xr = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(net(xr), y, reduction="sum"), xr)
    assert torch.allclose(one, (x + eps * g.sign()).clamp(0, 1))


def _net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 2), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.5), nn.Flatten(), nn.Linear(4 * 2 * 3, 4)
    )


@pytest.mark.parametrize("eps", [0.0, 0.03, 0.3])
def test_points_stay_in_the_ball_and_in_unit_range(eps):
    x = _x(8)
    x[0] = 0.0
    x[1] = 1.0  # corners of [0, 1]: clipping must bite
    y = torch.arange(8) % 4
    for keep in A.KEEP:
        x_adv = A.pgd(_net(), x, eps, y, steps=4, keep=keep, generator=torch.Generator().manual_seed(3))
        assert not x_adv.requires_grad
        assert (x_adv - x).abs().max() <= eps + 1e-6
        assert x_adv.min() >= 0 and x_adv.max() <= 1
    x_f = A.fgsm(_net(), x, eps, y)
    assert (x_f - x).abs().max() <= eps + 1e-6 and x_f.min() >= 0 and x_f.max() <= 1


def test_seeded_generator_reproduces_and_global_rng_is_untouched():
    x, y, net = _x(6), torch.arange(6) % 4, _net()
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = A.pgd(net, x, 0.1, y, steps=3, generator=torch.Generator().manual_seed(7))
    assert torch.equal(torch.get_rng_state(), state)
    b = A.pgd(net, x, 0.1, y, steps=3, generator=torch.Generator().manual_seed(7))
    c = A.pgd(net, x, 0.1, y, steps=3, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_modes_restored_no_parameter_grads_and_usable_under_no_grad():
    net = _net().train()
    net[3].eval()  # a submodule's own mode must come back as it was
    bn = net[1]
    before = (bn.running_mean.clone(), bn.num_batches_tracked.clone())
    x, y = _x(4), torch.arange(4)
    with torch.no_grad():
        x_adv = A.pgd(net, x, 0.1, y, steps=2, generator=torch.Generator().manual_seed(0))
    assert net.training and not net[3].training and net[1].training
    assert torch.equal(bn.running_mean, before[0]) and torch.equal(bn.num_batches_tracked, before[1])
    assert all(p.grad is None for p in net.parameters())
    assert (x_adv - x).abs().max() > 0
    # eval mode inside: dropout off, so the attack is deterministic given the start
    a = A.pgd(net, x, 0.1, y, steps=2, random_start=False)
    assert torch.equal(a, A.pgd(net, x, 0.1, y, steps=2, random_start=False))


def test_keep_best_returns_the_best_iterate_and_never_worse_than_last():
    net, x, y = _net(), _x(16, 2), torch.arange(16) % 4
    obj = A.CrossEntropy(net, y)
    kw = dict(steps=6, step_size=0.2, generator=torch.Generator().manual_seed(0))  # big steps: oscillation
    last = A.pgd_result(obj, x, 0.3, **kw)
    best = A.pgd_result(obj, x, 0.3, keep="best", **{**kw, "generator": torch.Generator().manual_seed(0)})
    assert (best.value >= last.value - 1e-6).all()
    with torch.no_grad(), kd.runtime.evaluating(net):
        assert torch.allclose(obj(best.x), best.value, atol=1e-5)
        assert torch.allclose(obj(last.x), last.value, atol=1e-5)


def test_track_records_any_iterate_and_the_first_hit():
    torch.manual_seed(0)
    teacher, student = _net(1).eval(), _net(2).eval()
    x = _x(32, 4)
    with torch.no_grad():
        c = teacher(x).argmax(1)
    track = A.Disagreement(teacher, student)
    r = A.pgd_result(A.Margin(student, c), x, 0.3, steps=5, track=track, generator=torch.Generator().manual_seed(0))
    assert r.hit is not None and r.hit.dtype == torch.bool and r.hit.any()
    with torch.no_grad():
        assert track(r.hit_x)[r.hit].all()  # the first hit really disagrees
        assert torch.equal(r.hit_x[~r.hit], x[~r.hit])
        assert (track(r.x) <= r.hit).all()  # the last point disagreeing is one of the iterates


def test_margin_and_gap_objectives():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    x, c = _x(4), torch.tensor([0, 1, 2, 0])
    z = net(x)
    m = A.Margin(net, c)(x)
    others = torch.stack([torch.cat([z[i, :k], z[i, k + 1 :]]).max() for i, k in enumerate(c)])
    assert torch.allclose(m, others - z[torch.arange(4), c])
    assert torch.equal(m > 0, z.argmax(1) != c)
    t = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    gap = A.ConfidenceGap(t, net, c, sign=1)(x)
    pt, ps = t(x).softmax(1)[torch.arange(4), c], z.softmax(1)[torch.arange(4), c]
    assert torch.allclose(gap, pt - ps) and torch.allclose(A.ConfidenceGap(t, net, c, sign=-1)(x), ps - pt)
    # PGD on the gap raises it (both signs), never lowers it below the start's value with keep="best"
    for sign in (1, -1):
        obj = A.ConfidenceGap(t, net, c, sign=sign)
        r = A.pgd_result(obj, x, 0.2, steps=5, random_start=False, keep="best")
        assert (r.value >= obj(x).detach() - 1e-7).all() and (r.value > obj(x).detach()).any()
    with pytest.raises(ValueError, match="sign"):
        A.ConfidenceGap(t, net, c, sign=2)


def test_bad_arguments_are_named():
    net, x = _net(), _x(2)
    with pytest.raises(ValueError, match="labels y"):
        A.pgd(net, x, 0.1)
    with pytest.raises(kd.UnknownNameError, match="last"):
        A.pgd(net, x, 0.1, torch.zeros(2, dtype=torch.long), keep="worst")
    with pytest.raises(ValueError, match="one value per sample"):
        A.pgd(lambda z: net(z), x, 0.1)
    with pytest.raises(ValueError, match="eps"):
        A.pgd(net, x, -0.1, torch.zeros(2, dtype=torch.long))
