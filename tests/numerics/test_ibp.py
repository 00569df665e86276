"""kdutils.ibp: bounds are sound (they contain the outputs at random and at PGD points of the box, for
every supported layer and for whole models), exact at eps = 0, monotone in eps, probabilities in
[0, 1], differentiable; unsupported layers are named; the IBP CNNs are boundable and of the
published sizes."""

import copy
import math

import pytest
import torch
import torch.nn as nn

import kdutils as kd
from kdutils import attacks as A
from kdutils import ibp
from kdutils.models import Normalize, PadTo

TOL = 1e-5


def _box(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    a, b = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
    return torch.min(a, b), torch.max(a, b)


def _inside(lo, hi, n, seed=1):
    """``n`` points of the box per sample: uniform, plus the two corners."""
    g = torch.Generator().manual_seed(seed)
    pts = [lo + (hi - lo) * torch.rand(lo.shape, generator=g) for _ in range(n)]
    return pts + [lo, hi]


def _bn(cls, c):
    bn = cls(c)
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(c, generator=g))
        bn.running_var.copy_(torch.rand(c, generator=g) + 0.5)
        bn.weight.copy_(torch.randn(c, generator=g))  # negative scales too
        bn.bias.copy_(torch.randn(c, generator=g))
    return bn.eval()


# every supported layer type on an input of a shape it accepts
LAYERS = {
    "Linear": (lambda: nn.Linear(6, 4), (3, 6)),
    "Conv2d": (lambda: nn.Conv2d(2, 3, 3, stride=2, padding=1), (3, 2, 5, 5)),
    "Conv2d_groups": (lambda: nn.Conv2d(4, 4, 2, groups=2, bias=False), (3, 4, 4, 4)),
    "Normalize": (lambda: Normalize([0.2, 0.6], [0.3, 0.1]), (3, 2, 4, 4)),
    "BatchNorm1d": (lambda: _bn(nn.BatchNorm1d, 6), (3, 6)),
    "BatchNorm2d": (lambda: _bn(nn.BatchNorm2d, 2), (3, 2, 4, 4)),
    "ReLU": (nn.ReLU, (3, 6)),
    "LeakyReLU": (lambda: nn.LeakyReLU(0.1), (3, 6)),
    "Sigmoid": (nn.Sigmoid, (3, 6)),
    "Tanh": (nn.Tanh, (3, 6)),
    "MaxPool2d": (lambda: nn.MaxPool2d(2), (3, 2, 4, 4)),
    "AvgPool2d": (lambda: nn.AvgPool2d(2, padding=1), (3, 2, 5, 5)),
    "AdaptiveAvgPool2d": (lambda: nn.AdaptiveAvgPool2d(2), (3, 2, 5, 5)),
    "AdaptiveMaxPool2d": (lambda: nn.AdaptiveMaxPool2d(1), (3, 2, 5, 5)),
    "Flatten": (nn.Flatten, (3, 2, 2, 2)),
    "Identity": (nn.Identity, (3, 6)),
    "PadTo": (lambda: PadTo(6, 4), (3, 1, 4, 4)),
    "Dropout": (lambda: nn.Dropout(0.5).eval(), (3, 6)),
    "Sequential": (lambda: nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Sequential(nn.Linear(5, 2))), (3, 6)),
}


def test_every_supported_layer_type_is_tested():
    tested = {type(make()) for make, _ in LAYERS.values()}
    assert tested == set(ibp.SUPPORTED_LAYERS)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_bounds_contain_every_point_of_the_box(name):
    make, shape = LAYERS[name]
    torch.manual_seed(0)
    layer = make()
    lo, hi = _box(shape)
    out = ibp.interval_bounds(layer, lo, hi)
    assert (out.lower <= out.upper + TOL).all()
    with torch.no_grad():
        for p in _inside(lo, hi, 50):
            y = layer(p)
            assert (y >= out.lower - TOL).all() and (y <= out.upper + TOL).all()
        c = ibp.interval_bounds(layer, lo, lo)  # a point box: the forward pass
        assert torch.allclose(c.lower, layer(lo), atol=TOL) and torch.allclose(c.upper, layer(lo), atol=TOL)


def test_affine_layer_bounds_are_exact():
    # one affine layer: the box is reached (corner of the input box per output unit)
    torch.manual_seed(0)
    lin = nn.Linear(5, 3)
    lo, hi = _box((1, 5))
    out = ibp.interval_bounds(lin, lo, hi)
    s = lin.weight.sign()
    with torch.no_grad():
        top = torch.where(s > 0, hi, lo)  # (3, 5): the maximising corner per output
        assert torch.allclose(lin(top).diagonal(), out.upper[0], atol=TOL)


def _models():
    torch.manual_seed(0)
    yield "mlp", kd.create_model("mlp", 5, 1, input_size=8, hidden=16, mean=[0.3], std=[0.2])
    yield "lenet5_half", kd.create_model("lenet5_half", 5, 1, input_size=8)  # PadTo, max-pool
    yield "alexnet_half", kd.create_model("alexnet_half", 5, 3, input_size=16)  # BatchNorm, adaptive pool
    yield "ibp_small", kd.create_model("ibp_small", 5, 1, input_size=8)
    yield "ibp_medium", kd.create_model("ibp_medium", 5, 1, input_size=8)


def _trained_bn(model, x):
    """Give BatchNorm layers non-trivial running statistics, then eval mode."""
    model.train()
    with torch.no_grad():
        model(x)
    return model.eval()


@pytest.mark.parametrize("name, model", list(_models()), ids=[n for n, _ in _models()])
def test_model_bounds_contain_random_and_pgd_points(name, model):
    c = model[0].mean.numel()
    size = 16 if name == "alexnet_half" else 8
    x = torch.rand(4, c, size, size, generator=torch.Generator().manual_seed(2))
    model = _trained_bn(model, x)
    y = torch.tensor([0, 1, 2, 3])
    eps = 0.05
    z = ibp.logit_bounds(model, x, eps)
    p = ibp.probability_bounds(model, x, eps, y)
    m = ibp.margin_bounds(model, x, eps, y)
    box = ibp.input_box(x, eps)
    points = _inside(box.lower, box.upper, 20)
    g = torch.Generator().manual_seed(0)
    for k in range(5):  # PGD pushing each logit up and down, and on the CE of each label
        up = lambda v, k=k: model(v)[:, k]
        points += [A.pgd(up, x, eps, steps=5, generator=g), A.pgd(lambda v, u=up: -u(v), x, eps, steps=5, generator=g)]
    points.append(A.pgd(model, x, eps, y, steps=5, generator=g))
    with torch.no_grad():
        for pt in points:
            out = model(pt)
            assert (out >= z.lower - TOL).all() and (out <= z.upper + TOL).all()
            prob = out.softmax(1)[torch.arange(4), y]
            assert (prob >= p.lower - TOL).all() and (prob <= p.upper + TOL).all()
            diff = out[torch.arange(4), y][:, None] - out
            assert (diff >= m.lower - TOL).all() and (diff <= m.upper + TOL).all()
    assert not model.training


@pytest.mark.parametrize("name, model", list(_models())[:4], ids=[n for n, _ in _models()][:4])
def test_eps_zero_is_the_forward_pass_and_bounds_widen_with_eps(name, model):
    c = model[0].mean.numel()
    size = 16 if name == "alexnet_half" else 8
    x = torch.rand(3, c, size, size, generator=torch.Generator().manual_seed(3))
    model = _trained_bn(model, x)
    y = torch.tensor([0, 1, 2])
    with torch.no_grad():
        out = model(x)
    z0 = ibp.logit_bounds(model, x, 0.0)
    assert torch.allclose(z0.lower, out, atol=TOL) and torch.allclose(z0.upper, out, atol=TOL)
    p0 = ibp.probability_bounds(model, x, 0.0, y)
    prob = out.softmax(1)[torch.arange(3), y]
    assert torch.allclose(p0.lower, prob, atol=TOL) and torch.allclose(p0.upper, prob, atol=TOL)
    prev_z, prev_p, prev_m = z0, p0, ibp.margin_bounds(model, x, 0.0, y)
    for eps in (0.01, 0.05, 0.2, 0.5, 1.0):
        z, p, m = (
            ibp.logit_bounds(model, x, eps),
            ibp.probability_bounds(model, x, eps, y),
            ibp.margin_bounds(model, x, eps, y),
        )
        for new, old in ((z, prev_z), (p, prev_p), (m, prev_m)):
            assert (new.lower <= old.lower + TOL).all() and (new.upper >= old.upper - TOL).all()
        assert (p.lower >= 0).all() and (p.upper <= 1).all() and (p.lower <= p.upper + TOL).all()
        prev_z, prev_p, prev_m = z, p, m


def test_margins_are_tighter_than_logit_intervals_and_certify_consistently():
    model = kd.create_model("ibp_small", 4, 1, input_size=8)
    x = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(4))
    y = torch.arange(6) % 4
    eps = 0.02
    z, m = ibp.logit_bounds(model, x, eps), ibp.margin_bounds(model, x, eps, y)
    naive = z.lower[torch.arange(6), y][:, None] - z.upper
    off = torch.ones_like(naive, dtype=torch.bool).scatter_(1, y[:, None], False)
    assert (m.lower[off] >= naive[off] - TOL).all()
    assert (m.lower[~off] == 0).all() and (m.upper[~off] == 0).all()
    p_m, p_z = ibp.probability_bounds(model, x, eps, y), ibp.probability_bounds(model, x, eps, y, margins=False)
    assert (p_m.lower >= p_z.lower - TOL).all() and (p_m.upper <= p_z.upper + TOL).all()
    # eps = 0: certified exactly where the prediction is the label; clean accuracy
    with torch.no_grad():
        pred = model(x).argmax(1)
    assert torch.equal(ibp.certified(model, x, 0.0, pred), torch.ones(6, dtype=torch.bool))
    assert ibp.certified_accuracy(model, x, y, 0.0, batch_size=4) == pytest.approx(float((pred == y).float().mean()))
    assert ibp.certified_accuracy(model, x, pred, 1.0) <= ibp.certified_accuracy(model, x, pred, eps)
    # uint8 images are scaled by 1/255
    xu = (x * 255).round().to(torch.uint8)
    share = float(ibp.certified(model, xu / 255.0, eps, pred).float().mean())
    assert ibp.certified_accuracy(model, xu, pred, eps) == pytest.approx(share)


def test_bounds_are_differentiable_for_ibp_training():
    model = kd.create_model("ibp_small", 4, 1, input_size=8)
    x = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(6))
    y = torch.arange(5) % 4
    wc = ibp.worst_case_logits(model, x, 0.1, y)
    assert (wc[torch.arange(5), y] == 0).all()
    loss = torch.nn.functional.cross_entropy(wc, y) + ibp.probability_bounds(model, x, 0.1, y).lower.sum()
    loss.backward()
    for name, prm in model.named_parameters():
        assert prm.grad is not None and torch.isfinite(prm.grad).all() and prm.grad.abs().sum() > 0, name
    # the robust loss bounds the loss at every point of the box
    with torch.no_grad():
        x_adv = A.pgd(model, x, 0.1, y, steps=5, generator=torch.Generator().manual_seed(0))
        ce = torch.nn.functional.cross_entropy(model(x_adv), y, reduction="none")
        assert (ce <= torch.nn.functional.cross_entropy(wc, y, reduction="none") + TOL).all()


def test_unsupported_layers_are_named():
    class Residual(nn.Module):
        def forward(self, x):
            return x + x

    with pytest.raises(ibp.UnsupportedLayerError, match=r"Residual.*supported layers: Sequential, Linear, Conv2d"):
        ibp.logit_bounds(nn.Sequential(nn.Flatten(), Residual()), torch.rand(1, 4), 0.1)
    with pytest.raises(ibp.UnsupportedLayerError, match="CifarResNet"):
        ibp.check_supported(kd.create_model("resnet8", 10, 3, input_size=32)[1])
    bn = nn.BatchNorm1d(4).train()
    with pytest.raises(ibp.UnsupportedLayerError, match="train mode"):
        ibp.interval_bounds(bn, torch.zeros(2, 4), torch.ones(2, 4))
    ibp.logit_bounds(nn.Sequential(bn, nn.Linear(4, 2)), torch.rand(2, 4), 0.1)  # eval inside: fine
    assert bn.training
    with pytest.raises(ValueError, match="eps"):
        ibp.input_box(torch.rand(1, 4), -0.1)


IBP_PARAMS_MNIST = {"ibp_small": 329_606, "ibp_medium": 893_418, "ibp_large": 13_257_290}


@pytest.mark.parametrize("name", sorted(IBP_PARAMS_MNIST))
def test_ibp_cnns_have_the_published_layers_and_are_boundable(name):
    # small: 16*1*16+16 + 32*16*16+32 + (32*10*10)*100+100 + 100*10+10 = 329,606;
    # medium: conv 320 + 16,416 + 18,496 + 65,600, FC (64*4*4)*512+512 + 512*512+512 + 5,130 = 893,418;
    # large: conv 640 + 36,928 + 73,856 + 2 * 147,584, FC (128*14*14)*512+512 + 5,130 = 13,257,290
    m = kd.create_model(name, 10, 1, input_size=28)
    assert kd.count_parameters(m) == IBP_PARAMS_MNIST[name]
    ibp.check_supported(m)
    assert all(type(x) is not PadTo for x in m[1])  # no padding at 28x28
    for c, size in ((1, 28), (3, 32), (1, 8)):
        m = kd.create_model(name, 7, c, input_size=size)
        x = torch.rand(2, c, size, size, generator=torch.Generator().manual_seed(0))
        z = ibp.logit_bounds(m, x, 0.0)
        with torch.no_grad():
            out = m(x)
        assert (
            out.shape == (2, 7) and torch.allclose(z.lower, out, atol=1e-4) and torch.allclose(z.upper, out, atol=1e-4)
        )
    convs = [(x.out_channels, x.kernel_size[0], x.stride[0]) for x in m.modules() if isinstance(x, nn.Conv2d)]
    expected = {
        "ibp_small": [(16, 4, 2), (32, 4, 1)],
        "ibp_medium": [(32, 3, 1), (32, 4, 2), (64, 3, 1), (64, 4, 2)],
        "ibp_large": [(64, 3, 1), (64, 3, 1), (128, 3, 2), (128, 3, 1), (128, 3, 1)],
    }
    assert convs == expected[name]


def test_log_probability_bounds_are_the_log_of_the_bounds_and_keep_their_gradient():
    model = kd.create_model("ibp_small", 4, 1, input_size=8)
    x = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(7))
    y = torch.arange(6) % 4
    for eps in (0.0, 0.05, 0.5):
        p, lp = ibp.probability_bounds(model, x, eps, y), ibp.probability_bounds(model, x, eps, y, log=True)
        torch.testing.assert_close(lp.lower.exp(), p.lower, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(lp.upper.exp(), p.upper, rtol=1e-5, atol=1e-7)
        assert (lp.upper <= 0).all() and (lp.lower <= lp.upper + TOL).all()
    # a wide ball saturates LB p[c] near 0: its gradient vanishes, the log bound's does not
    last = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.weight.mul_(30.0)
    grads = {}
    for log in (False, True):
        model.zero_grad()
        ibp.probability_bounds(model, x, 1.0, y, log=log).lower.sum().backward()
        grads[log] = sum(float(prm.grad.abs().sum()) for prm in model.parameters())
    assert float(ibp.probability_bounds(model, x, 1.0, y).lower.detach().max()) < 1e-6
    assert grads[False] < 1e-4 * grads[True]


def test_ibp_models_start_with_the_ibp_initialisation_and_tight_bounds():
    """Shi et al. 2021's initialisation keeps interval widths from exploding with depth (with
    PyTorch's default, ibp_medium trained by IBP collapsed to a constant in its first epoch)."""
    from kdutils.models import MODEL_INIT

    torch.manual_seed(0)
    net = kd.create_model("ibp_medium", 10, 1, input_size=28)
    layers = [m for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    for m in layers[:-1]:
        target = math.sqrt(2 * math.pi) / m.weight[0].numel()
        assert float(m.weight.detach().std()) == pytest.approx(target, rel=0.1)
    assert float(layers[-1].weight.detach().abs().max()) <= 1 / math.sqrt(layers[-1].in_features)  # PyTorch's default
    default = copy.deepcopy(net)
    for m in [m for m in default.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]:
        m.reset_parameters()
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    width = {k: ibp.logit_bounds(n, x, 0.01) for k, n in (("ibp", net), ("default", default))}
    width = {k: float((b.upper - b.lower).detach().mean()) for k, b in width.items()}
    assert width["default"] > 10 * width["ibp"], width
    assert set(MODEL_INIT) == {"ibp_small", "ibp_medium", "ibp_large"}


def test_the_initialisation_enters_the_run_key_of_ibp_models_only():
    exp = kd.Experiment(kd.configure("smoke", progress=False), kd.RunStore("/nonexistent-store"))
    r = kd.Recipe(epochs=1)
    _, cfg, *_ = exp._plan("ce", 0, "ibp_small", r, None, None, None, None)
    assert cfg["model_init"].startswith("ibp")
    _, cfg, *_ = exp._plan("ce", 0, "lenet5_half", r, None, None, None, None)
    assert "model_init" not in cfg
