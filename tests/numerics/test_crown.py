"""kdutils.crown: CROWN's bounds are sound (they contain the margins at dense random points, the
corners and PGD points of the box), never looser than IBP's (and strictly tighter on a network
where IBP is loose), exact on one affine layer, equal to the margin at eps = 0; unsupported layers
are named."""

import pytest
import torch
import torch.nn as nn

import kdutils as kd
from kdutils import ibp
from kdutils.models import Normalize, PadTo
from kdutils.numerics import crown


def _net(seed: int, conv: bool) -> nn.Module:
    torch.manual_seed(seed)
    if conv:
        return nn.Sequential(
            Normalize([0.4], [0.3]), PadTo(8, 6), nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(4, 6, 3), nn.ReLU(), nn.Flatten(), nn.Linear(24, 16), nn.ReLU(), nn.Dropout(0.5),
            nn.Linear(16, 5),
        ).eval()  # fmt: skip
    return nn.Sequential(
        nn.Flatten(), nn.Linear(36, 20), nn.ReLU(), nn.BatchNorm1d(20).eval(), nn.Linear(20, 20), nn.ReLU(),
        nn.Identity(), nn.Linear(20, 5),
    ).eval()  # fmt: skip


def _margins(model, x, c):
    z = model(x)
    return z.gather(1, c[:, None]) - z


@pytest.mark.parametrize("conv", [False, True])
@pytest.mark.parametrize("eps", [0.02, 0.1])
def test_sound_under_dense_sampling_and_at_pgd_points(conv, eps):
    model = _net(0, conv)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(6, 1, 6, 6, generator=g)
    c = torch.tensor([0, 1, 2, 3, 4, 0])
    m = crown.crown_margin_bounds(model, x, eps, c)
    lo_box, hi_box = ibp.input_box(x, eps)
    with torch.no_grad():
        for _ in range(300):  # uniform points, and the box's vertices region via signs
            pts = [lo_box + (hi_box - lo_box) * torch.rand(x.shape, generator=g)]
            pts.append(torch.where(torch.rand(x.shape, generator=g) < 0.5, lo_box, hi_box))
            for p in pts:
                z = _margins(model, p, c)
                assert (z >= m.lower - 1e-5).all() and (z <= m.upper + 1e-5).all()
    for j in range(5):  # PGD on each margin z_c - z_j, from below
        x_adv = x.clone().requires_grad_(True)
        for _ in range(30):
            obj = _margins(model, x_adv, c)[:, j].sum()
            (grad,) = torch.autograd.grad(obj, x_adv)
            with torch.no_grad():
                x_adv = torch.min(torch.max(x_adv - eps / 10 * grad.sign(), lo_box), hi_box)
            x_adv.requires_grad_(True)
        with torch.no_grad():
            assert (_margins(model, x_adv, c)[:, j] >= m.lower[:, j] - 1e-5).all()


@pytest.mark.parametrize("conv", [False, True])
def test_never_looser_than_ibp_and_tighter_somewhere(conv):
    model = _net(2, conv)
    x = torch.rand(16, 1, 6, 6, generator=torch.Generator().manual_seed(3))
    c = torch.arange(16) % 5
    m = crown.crown_margin_bounds(model, x, 0.05, c)
    i = ibp.margin_bounds(model, x, 0.05, c)
    assert (m.lower >= i.lower - 1e-6).all() and (m.upper <= i.upper + 1e-6).all()
    # without the intersection, CROWN alone still beats IBP on most margins of these networks
    raw = crown.linear_bounds(model, x, 0.05, torch.nn.functional.one_hot(c, 5)[:, None, :] - torch.eye(5)[None])
    off = torch.nn.functional.one_hot(c, 5) == 0
    assert (raw.lower > i.lower + 1e-6)[off].float().mean() > 0.5


def test_exact_on_one_affine_layer():
    torch.manual_seed(4)
    lin = nn.Sequential(nn.Flatten(), nn.Linear(8, 3))
    x = torch.rand(5, 1, 2, 4)
    spec = torch.randn(5, 2, 3)
    b = crown.linear_bounds(lin, x, 0.1, spec)
    lo, hi = ibp.input_box(x, 0.1)
    coef = torch.einsum("bkc,ci->bki", spec, lin[1].weight)  # the linear map from the input
    for k in range(2):  # the minimising and maximising corners attain the bounds exactly
        a = coef[:, k].view_as(x)
        x_min, x_max = torch.where(a >= 0, lo, hi), torch.where(a >= 0, hi, lo)
        with torch.no_grad():
            v_min = (spec[:, k] * lin(x_min)).sum(1)
            v_max = (spec[:, k] * lin(x_max)).sum(1)
        assert torch.allclose(b.lower[:, k], v_min, atol=1e-5) and torch.allclose(b.upper[:, k], v_max, atol=1e-5)


def test_zero_radius_is_the_forward_pass():
    model = _net(5, True)
    x = torch.rand(4, 1, 6, 6)
    c = torch.tensor([1, 2, 3, 4])
    m = crown.crown_margin_bounds(model, x, 0.0, c)
    with torch.no_grad():
        z = _margins(model, x, c)
    assert torch.allclose(m.lower, z, atol=1e-5) and torch.allclose(m.upper, z, atol=1e-5)


def test_full_crown_and_crown_ibp_are_both_sound_and_full_is_tighter():
    model = _net(6, True)
    x = torch.rand(8, 1, 6, 6)
    c = torch.arange(8) % 5
    full = crown.crown_margin_bounds(model, x, 0.05, c, max_work=2**40)
    cheap = crown.crown_margin_bounds(model, x, 0.05, c, max_work=0)  # IBP pre-activation bounds
    assert (full.lower >= cheap.lower - 1e-6).all()


def test_the_ibp_cnns_are_bounded_and_unsupported_layers_named():
    model = kd.create_model("ibp_small", num_classes=10, in_channels=1, input_size=28).eval()
    x = torch.rand(2, 1, 28, 28)
    m = crown.crown_margin_bounds(model, x, 0.01, torch.tensor([3, 7]))
    assert m.lower.shape == (2, 10) and torch.isfinite(m.lower).all()
    with pytest.raises(ibp.UnsupportedLayerError, match="CROWN"):
        crown.crown_margin_bounds(nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.Sigmoid()), torch.rand(1, 4), 0.1,
                                  torch.tensor([0]))  # fmt: skip


def test_sound_against_the_extremes_of_two_input_networks_on_a_fine_grid():
    """Wide boxes, many unstable ReLUs: on a 201 x 201 grid of a 2-D box the sampled extremes are
    close to the true ones, so a wrong relaxation (a lower line used as an upper one) shows."""
    g = torch.linspace(0, 1, 201)
    pts = torch.cartesian_prod(g, g)
    for seed in range(20):
        torch.manual_seed(seed)
        net = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
        m = crown.crown_margin_bounds(net, torch.full((1, 2), 0.5), 0.5, torch.tensor([0]), clip=None)
        with torch.no_grad():
            z = net(pts)
        margins = z[:, :1] - z
        assert (margins.min(0).values >= m.lower[0] - 1e-5).all(), seed
        assert (margins.max(0).values <= m.upper[0] + 1e-5).all(), seed
