"""Does one seed give the same weights twice on this device, with and without ``KD_DETERMINISTIC=1``,
and what do the determinism flags cost per step?

Usage::

    python benchmarks/gpu_determinism.py [--device auto] [--steps 20]

Two KD runs of the paper profiles' shapes, each trained four times from one seed through
:func:`kdutils.fit` on random images (two epochs of ``--steps`` steps):

* ``resnet8x4 <- resnet32x4``, CIFAR-100's shape, SGD, batch 64, crop + flip, the teacher per batch
  (notebooks 02 and 05 at ``paper``);
* ``lenet5_half <- lenet5``, Fashion-MNIST's shape, Adam, batch 128, cached teacher logits
  (notebooks 00, 01, 03).

Twice with PyTorch's default flags, then twice with ``KD_DETERMINISTIC=1`` (cuDNN deterministic,
no benchmark, deterministic algorithms: :func:`kdutils.runtime.set_cuda_determinism`). Printed per
pair and mode: the largest absolute difference between the two runs' weights (0 means
bit-identical), and seconds per step of the second epoch. On the CPU both modes are deterministic
(the flags touch CUDA only). A measurement: exits 0.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import kdutils as kd  # noqa: E402
from kdutils import runtime  # noqa: E402
from kdutils.data import make_split  # noqa: E402
from kdutils.testing import random_image_data  # noqa: E402

PAIRS = [
    (
        "resnet8x4",
        "resnet32x4",
        (3, 32, 32),
        100,
        kd.Recipe(
            epochs=2,
            batch_size=64,
            optimizer="sgd",
            lr=0.05,
            momentum=0.9,
            weight_decay=5e-4,
            augment=True,
            crop_padding=4,
            flip=True,
            drop_last=True,
        ),
    ),
    ("lenet5_half", "lenet5", (1, 28, 28), 10, kd.Recipe(epochs=2, batch_size=128, optimizer="adam", lr=1e-3)),
]


def _split(shape, classes, rows):
    return make_split(random_image_data(shape, classes, rows), val_subset=64)


def _net(name, split, seed, device):
    torch.manual_seed(seed)
    return kd.create_model(name, split.num_classes, split.in_channels, input_size=split.input_size).to(device)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args(argv)
    device = kd.resolve_device(args.device)
    print(
        f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}), "
        f"torch {torch.__version__}, {args.steps} steps per epoch, 2 epochs"
    )
    for student, teacher, shape, classes, recipe in PAIRS:
        split = _split(shape, classes, max(recipe.batch_size * args.steps + 64, 12 * classes))
        r = recipe.replace(max_steps_per_epoch=args.steps)
        t_net = _net(teacher, split, 1, device).eval()
        for mode in ("default", "KD_DETERMINISTIC=1"):
            if mode == "default":
                os.environ.pop("KD_DETERMINISTIC", None)
                runtime.set_cuda_determinism(False)
            else:
                os.environ["KD_DETERMINISTIC"] = "1"
            weights, seconds = [], []
            for _ in range(2):
                net = _net(student, split, 0, device)
                res = kd.fit(
                    net, split, kd.create_method("kd"), r, teacher=t_net, device=device, seed=3, progress=False
                )
                weights.append({k: v.detach().float().cpu() for k, v in net.state_dict().items()})
                seconds.append(res.history[1]["seconds"] / args.steps)
            diff = max(float((weights[0][k] - weights[1][k]).abs().max()) for k in weights[0])
            print(
                f"  {student} <- {teacher}, {mode:18s}: max |w1 - w2| = {diff:.3g}"
                f"{' (bit-identical)' if diff == 0 else ''}; {min(seconds) * 1e3:.2f} ms/step"
            )
        os.environ.pop("KD_DETERMINISTIC", None)
        runtime.set_cuda_determinism(False)


if __name__ == "__main__":
    main()
