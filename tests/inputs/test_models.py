"""Every registered model: [0, 1] input of the sizes it is meant for -> (B, classes) logits."""

import pytest
import torch

import kdutils as kd
from kdutils.models import Normalize

# (name, in_channels, input size) a model is used with; ResNets are for 32x32
CASES = [(n, 1, 28) for n in ("mlp", "lenet5", "lenet5_half", "lenet5_x2", "alexnet", "alexnet_half")]
CASES += [(n, 3, 32) for n in ("lenet5", "alexnet", "alexnet_half", "resnet8", "resnet20", "resnet8x4")]
CASES += [(n, 1, 8) for n in ("lenet5_half", "lenet5", "lenet5_x2")]  # the smoke profile's digits
# the IBP-literature CNNs of faithful.md (sizes and bounds: tests/numerics/test_ibp.py)
CASES += [(n, c, s) for n in ("ibp_small", "ibp_medium", "ibp_large") for c, s in ((1, 28), (3, 32), (1, 8))]


def test_registry_has_the_required_models():
    assert set(kd.model_names()) >= {
        "mlp",
        "lenet5",
        "lenet5_half",
        "alexnet",
        "alexnet_half",
        "resnet20",
        "resnet8x4",
        "resnet32x4",
    }


@pytest.mark.parametrize("name, c, size", CASES)
def test_shapes_and_normalisation_inside(name, c, size):
    torch.manual_seed(0)
    m = kd.create_model(name, num_classes=7, in_channels=c, input_size=size, mean=[0.2] * c, std=[0.3] * c).eval()
    assert isinstance(m[0], Normalize)
    out = m(torch.rand(2, c, size, size))
    assert out.shape == (2, 7) and torch.isfinite(out).all()
    assert torch.allclose(m[0].mean.flatten(), torch.full((c,), 0.2))


def test_half_models_are_smaller():
    for big, half in (("lenet5", "lenet5_half"), ("alexnet", "alexnet_half"), ("resnet32x4", "resnet8x4")):
        assert kd.count_parameters(kd.create_model(half, 10, 3, input_size=32)) < kd.count_parameters(
            kd.create_model(big, 10, 3, input_size=32)
        )


def test_lenet5_size_matches_the_classic_count():
    # LeNet-5 (6-16-120-84, 10 classes, 1 channel): 61,706 parameters
    assert kd.count_parameters(kd.create_model("lenet5", 10, 1, input_size=28)) == 61706


def test_lenet5_x2_doubles_every_width():
    # conv 12-32-240 (5x5), FC 168, 10 classes, 1 channel:
    # (25 + 1) * 12 + (12 * 25 + 1) * 32 + (32 * 25 + 1) * 240 + (240 + 1) * 168 + (168 + 1) * 10 = 244,362
    assert kd.count_parameters(kd.create_model("lenet5_x2", 10, 1, input_size=28)) == 244362
    widths = [m.out_channels for m in kd.create_model("lenet5_x2", 10, 1).modules() if isinstance(m, torch.nn.Conv2d)]
    assert widths == [12, 32, 240]


def test_mean_std_length_is_checked():
    with pytest.raises(ValueError, match="one per channel"):
        kd.create_model("mlp", 10, 3, input_size=8, mean=[0.5], std=[0.5])
