"""Models behind ``create_model(name, num_classes, in_channels, ...)``.

Every model takes images in [0, 1] and normalises inside (its first layer is
:class:`Normalize`), so attack budgets are always in pixel space and foolbox gets
``bounds=(0, 1)``. Every model is an ``nn.Sequential``-friendly stack of standard
layers (no custom autograd), so the same model serves training, attacks and interval
bound propagation.

Shapes: input ``(B, in_channels, H, W)`` float in [0, 1] -> logits ``(B, num_classes)``.

================  ==========================================================  ========
name              architecture                                                source
================  ==========================================================  ========
mlp               flatten, FC hidden-hidden (ReLU), FC classes                 ours
lenet5            pad to 32, conv 6-16-120 (5x5, ReLU, max-pool), FC 84        LeNet-5 (LeCun 1998) with ReLU [ours]
lenet5_half       the same with every width halved: conv 3-8-60, FC 42         cckd.md [ours sizes]
lenet5_x2         the same with every width doubled: conv 12-32-240, FC 168     cmkd.md stronger teacher [ours sizes]
alexnet           conv 48-128-192-192-128 + BN, FC 512-256 (32x32 input)       data-free KD literature [ours sizes]
alexnet_half      every width halved: conv 24-64-96-96-64, FC 256-128          cckd.md [ours sizes]
resnetN           CIFAR ResNet (He 2016), widths 16-32-64, N in 8/14/20/32/44/56/110   CRD benchmark
resnet8x4/32x4    CIFAR ResNet with widths 64-128-256 (stem 32)                 CRD benchmark
wrn_D_k           Wide ResNet, pre-activation blocks, widths 16k-32k-64k;      CRD benchmark
                  D-k in 16-1, 16-2, 40-1, 40-2
vggN              VGG with BN, N in 8/11/13/16/19, 5 conv stages 64-512,        CRD benchmark
                  global average pool, one FC (32x32 input)
ibp_small         conv 16 (4x4, s2) - 32 (4x4, s1), valid padding, FC 100      Gowal et al. 2018 (IBP)
ibp_medium        conv 32 (3x3) - 32 (4x4, s2) - 64 (3x3) - 64 (4x4, s2),      Gowal et al. 2018 (IBP)
                  valid padding, FC 512-512
ibp_large         conv 64-64-128 (s2)-128-128 (3x3, same padding), FC 512      Gowal et al. 2018 (IBP)
================  ==========================================================  ========
"""

from __future__ import annotations

import inspect
import math
from typing import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..core.errors import UnknownNameError
from ..core.registry import Registry

MODELS: Registry[Callable[..., nn.Module]] = Registry("model")


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel; mean and std are buffers (saved with the model)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class PadTo(nn.Module):
    """Zero-pad a square input symmetrically up to ``size`` (LeNet-5 expects 32x32)."""

    def __init__(self, size: int, input_size: int):
        super().__init__()
        total = max(0, size - input_size)
        self.pad = (total // 2, total - total // 2, total // 2, total - total // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, self.pad) if any(self.pad) else x


def create_model(
    name: str,
    num_classes: int = 10,
    in_channels: int = 1,
    *,
    input_size: int = 28,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    **kwargs,
) -> nn.Module:
    """Build a registered model whose first layer normalises [0, 1] input.

    ``mean``/``std`` default to 0.5 per channel; pass the training split's
    statistics (``Split.mean``, ``Split.std``). Extra ``kwargs`` go to the
    architecture (e.g. ``hidden`` for ``mlp``); an unknown one names the valid ones.
    """
    factory = MODELS.get(name)
    accepted = [
        p for p in inspect.signature(factory).parameters if p not in ("num_classes", "in_channels", "input_size")
    ]
    for k in kwargs:
        if k not in accepted:
            raise UnknownNameError(f"parameter of model {name!r}", k, accepted or ["(none)"])
    body = factory(num_classes=num_classes, in_channels=in_channels, input_size=input_size, **kwargs)
    mean = tuple(mean) if mean is not None else (0.5,) * in_channels
    std = tuple(std) if std is not None else (0.5,) * in_channels
    if len(mean) != in_channels or len(std) != in_channels:
        raise ValueError(f"mean/std need {in_channels} values (one per channel), got {len(mean)}/{len(std)}")
    model = nn.Sequential(Normalize(mean, std), body)
    model.kd_name = name  # type: ignore[attr-defined]
    return model


def model_names() -> list[str]:
    return MODELS.names()


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# ---------------------------------------------------------------- small nets


@MODELS.register("mlp")
def mlp(num_classes: int, in_channels: int, input_size: int, hidden: int = 256) -> nn.Module:
    """``(B, C, H, W) -> (B, classes)``: flatten, two ReLU layers of ``hidden`` units."""
    d = in_channels * input_size * input_size
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(d, hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, num_classes),
    )


def _lenet(num_classes: int, in_channels: int, input_size: int, w: tuple[int, int, int, int]) -> nn.Module:
    c1, c2, c3, f = w
    return nn.Sequential(
        PadTo(32, input_size),  # 28x28 -> 32x32 as in LeNet-5; 8x8 digits are centred in 32x32
        nn.Conv2d(in_channels, c1, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),  # 28 -> 14
        nn.Conv2d(c1, c2, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),  # 10 -> 5
        nn.Conv2d(c2, c3, 5),
        nn.ReLU(),  # 1x1
        nn.Flatten(),
        nn.Linear(c3, f),
        nn.ReLU(),
        nn.Linear(f, num_classes),
    )


@MODELS.register("lenet5")
def lenet5(num_classes: int, in_channels: int, input_size: int) -> nn.Module:
    """LeNet-5: conv 6-16-120 (5x5), FC 84; ``(B, C, <=32, <=32) -> (B, classes)``."""
    return _lenet(num_classes, in_channels, input_size, (6, 16, 120, 84))


@MODELS.register("lenet5_half")
def lenet5_half(num_classes: int, in_channels: int, input_size: int) -> nn.Module:
    """LeNet-5-Half: conv 3-8-60 (5x5), FC 42."""
    return _lenet(num_classes, in_channels, input_size, (3, 8, 60, 42))


@MODELS.register("lenet5_x2")
def lenet5_x2(num_classes: int, in_channels: int, input_size: int) -> nn.Module:
    """LeNet-5 with every width doubled: conv 12-32-240 (5x5), FC 168 (244,362 parameters for 10
    classes and one channel, 4x LeNet-5's): the strongest teacher of notebook 02's stronger-teacher
    series on the small datasets [ours]."""
    return _lenet(num_classes, in_channels, input_size, (12, 32, 240, 168))


def _alexnet(num_classes: int, in_channels: int, w: tuple[int, ...], fc: tuple[int, int]) -> nn.Module:
    c1, c2, c3, c4, c5 = w

    def block(i: int, o: int, k: int) -> list[nn.Module]:
        return [nn.Conv2d(i, o, k, padding=k // 2, bias=False), nn.BatchNorm2d(o), nn.ReLU()]

    return nn.Sequential(
        *block(in_channels, c1, 5),
        nn.MaxPool2d(2),  # 32 -> 16
        *block(c1, c2, 5),
        nn.MaxPool2d(2),  # 16 -> 8
        *block(c2, c3, 3),
        *block(c3, c4, 3),
        *block(c4, c5, 3),
        nn.MaxPool2d(2),  # 8 -> 4
        nn.AdaptiveAvgPool2d(4),  # any input size -> 4x4
        nn.Flatten(),
        nn.Linear(c5 * 16, fc[0]),
        nn.ReLU(),
        nn.Linear(fc[0], fc[1]),
        nn.ReLU(),
        nn.Linear(fc[1], num_classes),
    )


@MODELS.register("alexnet")
def alexnet(num_classes: int, in_channels: int, input_size: int) -> nn.Module:
    """AlexNet for 32x32: conv 48-128-192-192-128 with BN, FC 512-256."""
    return _alexnet(num_classes, in_channels, (48, 128, 192, 192, 128), (512, 256))


@MODELS.register("alexnet_half")
def alexnet_half(num_classes: int, in_channels: int, input_size: int) -> nn.Module:
    """AlexNet-Half: conv 24-64-96-96-64 with BN, FC 256-128."""
    return _alexnet(num_classes, in_channels, (24, 64, 96, 96, 64), (256, 128))


# ---------------------------------------------------------------- CIFAR ResNets


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


def _stages(block: type, widths: tuple[int, ...], n: int) -> tuple[nn.Sequential, int]:
    """The residual stages of a CIFAR ResNet / WRN: ``n`` blocks per width in ``widths[1:]``, the
    first block of every stage after the first with stride 2. Returns (stages, output channels)."""
    layers, cin = [], widths[0]
    for stage, cout in enumerate(widths[1:]):
        for i in range(n):
            layers.append(block(cin, cout, 2 if (stage > 0 and i == 0) else 1))
            cin = cout
    return nn.Sequential(*layers), cin


class CifarResNet(nn.Module):
    """ResNet for 32x32 inputs: stem conv, 3 stages of ``(depth - 2) / 6`` basic blocks.

    ``widths = (stem, stage1, stage2, stage3)``; ``(B, C, 32, 32) -> (B, classes)``.
    """

    def __init__(self, depth: int, widths: Sequence[int], num_classes: int, in_channels: int):
        super().__init__()
        if (depth - 2) % 6 != 0:
            raise ValueError(f"CIFAR ResNet depth must be 6n + 2, got {depth}")
        n = (depth - 2) // 6
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU()
        )
        self.layers, cin = _stages(BasicBlock, widths, n)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.layers(self.stem(x)))


def _register_resnet(name: str, depth: int, widths: tuple[int, ...]) -> None:
    def factory(num_classes: int, in_channels: int, input_size: int) -> nn.Module:
        return CifarResNet(depth, widths, num_classes, in_channels)

    factory.__doc__ = f"CIFAR ResNet-{depth}, widths {widths}."
    MODELS.register(name)(factory)


for _d in (8, 14, 20, 32, 44, 56, 110):
    _register_resnet(f"resnet{_d}", _d, (16, 16, 32, 64))
_register_resnet("resnet8x4", 8, (32, 64, 128, 256))
_register_resnet("resnet32x4", 32, (32, 64, 128, 256))


# ---------------------------------------------------------------- Wide ResNets and VGG (CRD benchmark)
# The architectures of the CRD/RepDistiller CIFAR-100 benchmark (Tian et al., ICLR 2020; used by DIST
# and CMKD); parameter counts match its published ones (tests/inputs/test_cmkd_models.py). Initialisation is
# PyTorch's default, as for the ResNets above, not the benchmark code's He / N(0, 0.01) init [ours].


class WideBlock(nn.Module):
    """Pre-activation basic block of a Wide ResNet: BN-ReLU-conv3x3-BN-ReLU-conv3x3 plus the
    shortcut (identity when the width is kept, else a 1x1 conv on the pre-activated input)."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut = None if cin == cout else nn.Conv2d(cin, cout, 1, stride, 0, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = F.relu(self.bn1(x))
        out = self.conv2(F.relu(self.bn2(self.conv1(pre))))
        return out + (x if self.shortcut is None else self.shortcut(pre))


class WideResNet(nn.Module):
    """WRN-depth-k (Zagoruyko and Komodakis 2016) as in the CRD/RepDistiller benchmark: stem conv 16,
    3 stages of ``(depth - 4) / 6`` :class:`WideBlock` of widths 16k, 32k, 64k (strides 1, 2, 2),
    BN-ReLU, global average pool, FC. ``(B, C, 32, 32) -> (B, classes)`` (feature maps 32, 16, 8).
    """

    def __init__(self, depth: int, widen: int, num_classes: int, in_channels: int):
        super().__init__()
        if (depth - 4) % 6 != 0:
            raise ValueError(f"Wide ResNet depth must be 6n + 4, got {depth}")
        n = (depth - 4) // 6
        widths = (16, 16 * widen, 32 * widen, 64 * widen)
        self.stem = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        self.layers, cin = _stages(WideBlock, widths, n)
        self.head = nn.Sequential(
            nn.BatchNorm2d(cin), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.layers(self.stem(x)))


def _register_wrn(depth: int, widen: int) -> None:
    def factory(num_classes: int, in_channels: int, input_size: int) -> nn.Module:
        return WideResNet(depth, widen, num_classes, in_channels)

    factory.__doc__ = (
        f"WRN-{depth}-{widen} (CRD benchmark): stem 16, {(depth - 4) // 6} blocks per stage of widths "
        f"{16 * widen}-{32 * widen}-{64 * widen} on feature maps 32, 16, 8; ``(B, C, 32, 32) -> (B, classes)``."
    )
    MODELS.register(f"wrn_{depth}_{widen}")(factory)


for _d, _k in ((16, 1), (16, 2), (40, 1), (40, 2)):
    _register_wrn(_d, _k)

#: VGG stages (conv widths per stage) of the CRD/RepDistiller benchmark's CIFAR VGGs
VGG_STAGES: dict[str, tuple[tuple[int, ...], ...]] = {
    "vgg8": ((64,), (128,), (256,), (512,), (512,)),
    "vgg11": ((64,), (128,), (256, 256), (512, 512), (512, 512)),
    "vgg13": ((64, 64), (128, 128), (256, 256), (512, 512), (512, 512)),
    "vgg16": ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512)),
    "vgg19": ((64, 64), (128, 128), (256, 256, 256, 256), (512, 512, 512, 512), (512, 512, 512, 512)),
}


def _vgg(stages: tuple[tuple[int, ...], ...], num_classes: int, in_channels: int, input_size: int) -> nn.Module:
    layers: list[nn.Module] = []
    cin = in_channels
    for s, widths in enumerate(stages):
        for w in widths:
            layers += [nn.Conv2d(cin, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU()]
            cin = w
        if s < 3 or (s == 3 and input_size >= 64):  # 32 -> 16 -> 8 -> 4 (a fourth pool for 64x64 input)
            layers.append(nn.MaxPool2d(2))
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes)]
    return nn.Sequential(*layers)


def _register_vgg(name: str) -> None:
    def factory(num_classes: int, in_channels: int, input_size: int) -> nn.Module:
        return _vgg(VGG_STAGES[name], num_classes, in_channels, input_size)

    factory.__doc__ = (
        f"{name} with BN (CRD benchmark's {name}_bn): 5 stages of conv3x3 (bias)-BN-ReLU, widths "
        f"{VGG_STAGES[name]}, 2x2 max-pool after stages 1-3 (feature maps 32, 16, 8, 4, 4; a fourth pool for "
        "64x64 input), global average pool, one FC 512 -> classes (CRD's classifier). "
        "``(B, C, 32, 32) -> (B, classes)``."
    )
    MODELS.register(name)(factory)


for _name in VGG_STAGES:
    _register_vgg(_name)


# ---------------------------------------------------------------- IBP-literature CNNs (faithful.md)
# The small, medium and large CNNs of Gowal et al. 2018 ("On the effectiveness of interval bound
# propagation...", Table 1) [public]: layer specifications as in DeepMind's
# interval-bound-propagation repository (examples/train.py: "VALID" padding for small and medium,
# "SAME" for large) and the PyTorch translation of the CROWN-IBP repository (Zhang et al. 2020,
# model_defs.py: IBP_large with padding 1 on every 3x3 conv, so 28 -> 28 -> 28 -> 14 -> 14 -> 14).
# A 3x3 stride-2 "SAME" conv pads (0, 1) in TensorFlow and (1, 1) here: same output size, the
# window shifted by one pixel [ours]. Plain nn.Sequential of Conv2d / ReLU / Flatten / Linear, so
# kdutils.ibp bounds them. Inputs smaller than a model's valid-padding minimum (the 8x8 digits of
# the smoke profile) are zero-padded to that minimum first (PadTo) [ours].


def _conv_out(size: int, k: int, s: int, p: int = 0) -> int:
    return (size + 2 * p - k) // s + 1


#: models whose weights are not PyTorch's default initialisation: name -> the initialisation,
#: which enters a run's key (``model_init``; absent for every other model, so their keys stay)
MODEL_INIT: dict[str, str] = {}


def ibp_init_(net: nn.Module) -> nn.Module:
    """IBP initialisation [public: Shi et al. 2021, *Fast Certified Robust Training with Short
    Warmup*, NeurIPS]: every Conv2d / Linear weight but the last layer's drawn from
    N(0, sigma^2), sigma = sqrt(2 pi) / fan_in, biases kept. With PyTorch's default initialisation
    an interval's width grows by about 0.5 sqrt(fan_in) per layer, so IBP bounds explode with
    depth; measured here on MNIST (quick, eps 0.1): ``ibp_medium`` trained with IBP collapsed to
    a constant within its first epoch (worst-case CE 45 at eps 0.009), and reached 90.5 % clean,
    65.4 % certified accuracy with this initialisation. Draws from torch's global generator
    (seeded by the run). Returns ``net``."""
    layers = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        for m in layers[:-1]:
            m.weight.normal_(0.0, math.sqrt(2 * math.pi) / m.weight[0].numel())
    return net


def _ibp_net(
    num_classes: int,
    in_channels: int,
    input_size: int,
    convs: Sequence[tuple[int, int, int, int]],
    fcs: Sequence[int],
    min_size: int,
) -> nn.Module:
    """``convs``: (out channels, kernel, stride, padding) per conv, each followed by ReLU; then
    flatten, FC ``fcs`` (ReLU) and the classifier."""
    layers: list[nn.Module] = []
    size = input_size
    if size < min_size:
        layers.append(PadTo(min_size, size))
        size = min_size
    cin = in_channels
    for cout, k, stride, pad in convs:
        layers += [nn.Conv2d(cin, cout, k, stride, pad), nn.ReLU()]
        cin, size = cout, _conv_out(size, k, stride, pad)
    layers.append(nn.Flatten())
    d = cin * size * size
    for f in fcs:
        layers += [nn.Linear(d, f), nn.ReLU()]
        d = f
    layers.append(nn.Linear(d, num_classes))
    return ibp_init_(nn.Sequential(*layers))


MODEL_INIT.update({name: "ibp (Shi et al. 2021)" for name in ("ibp_small", "ibp_medium", "ibp_large")})


@MODELS.register("ibp_small")
def ibp_small(num_classes: int, in_channels: int, input_size: int) -> nn.Module:
    """IBP "small" (Gowal et al. 2018): conv 16 (4x4, s2), conv 32 (4x4, s1), valid padding, FC 100.
    ``(B, C, H, H) -> (B, classes)``; 28x28: 13x13 -> 10x10, 329,606 parameters (10 classes, 1 channel)."""
    return _ibp_net(num_classes, in_channels, input_size, [(16, 4, 2, 0), (32, 4, 1, 0)], [100], min_size=10)


@MODELS.register("ibp_medium")
def ibp_medium(num_classes: int, in_channels: int, input_size: int) -> nn.Module:
    """IBP "medium" (Gowal et al. 2018): conv 32 (3x3), 32 (4x4, s2), 64 (3x3), 64 (4x4, s2), valid
    padding, FC 512-512. ``(B, C, H, H) -> (B, classes)``; 28x28: 26 -> 12 -> 10 -> 4."""
    convs = [(32, 3, 1, 0), (32, 4, 2, 0), (64, 3, 1, 0), (64, 4, 2, 0)]
    return _ibp_net(num_classes, in_channels, input_size, convs, [512, 512], min_size=16)


@MODELS.register("ibp_large")
def ibp_large(num_classes: int, in_channels: int, input_size: int) -> nn.Module:
    """IBP "large" (Gowal et al. 2018; CROWN-IBP's IBP_large): conv 64-64-128 (s2)-128-128, 3x3 with
    padding 1, FC 512. ``(B, C, H, H) -> (B, classes)``; 28x28: 28 -> 28 -> 14 -> 14 -> 14."""
    convs = [(64, 3, 1, 1), (64, 3, 1, 1), (128, 3, 2, 1), (128, 3, 1, 1), (128, 3, 1, 1)]
    return _ibp_net(num_classes, in_channels, input_size, convs, [512], min_size=1)
