"""Test helpers that belong to the package, so that notebook tests and users' own tests can share them.

:func:`make_fake_cifar100` writes a CIFAR-100-shaped dataset (100 fine classes of small generated
images) in torchvision's python layout, ``<root>/cifar-100-python/{train,test,meta}``, the exact
files ``kdutils.data`` reads for ``cifar100``; with ``KD_DATA_ROOT=<root>`` (or
``load_dataset("cifar100", root)``) the ``paper`` profile's dataset, its CRD pairs and recipes run
offline without the 160 MB download.

:func:`make_fake_mnist` writes MNIST's four gzipped IDX files (random 28x28 images) under
``<root>/<folder>/raw/``, the layout both ``kdutils.data`` and torchvision's ``MNIST`` read.

:func:`random_image_data` builds an :class:`~kdutils.data.ImageData` of random uint8 images of any
shape in memory: the benchmarks time steps on it where only the shapes matter.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

__all__ = ["make_fake_cifar100", "make_fake_mnist", "random_image_data", "CIFAR100_CLASSES"]

#: 100 fine class names of the generated set (``class_00`` ... ``class_99``; the real names do not matter)
CIFAR100_CLASSES = [f"class_{i:02d}" for i in range(100)]


def make_fake_cifar100(root: str | Path, *, per_class: int = 5, test_per_class: int = 2, seed: int = 0) -> Path:
    """Write a CIFAR-100-shaped dataset under ``root`` and return ``root``.

    ``<root>/cifar-100-python/`` gets ``train`` (``per_class`` images per class), ``test``
    (``test_per_class``) and ``meta``, pickled as torchvision's CIFAR-100: ``data`` uint8
    (N, 3072) in channel-major order (3 x 32 x 32), ``fine_labels`` and ``coarse_labels`` (lists of
    ints), ``filenames``; ``meta`` holds ``fine_label_names`` and ``coarse_label_names``. Every
    class has its own mean colour plus noise, so a model can tell some classes apart.
    """
    if per_class < 1 or test_per_class < 1:
        raise ValueError(f"per_class and test_per_class must be >= 1, got {per_class}, {test_per_class}")
    root = Path(root)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    colours = rng.integers(32, 224, size=(100, 3, 1, 1))

    def part(name: str, n: int) -> None:
        labels = np.repeat(np.arange(100), n)
        noise = rng.integers(-32, 33, size=(len(labels), 3, 32, 32))
        x = np.clip(colours[labels] + noise, 0, 255).astype(np.uint8).reshape(len(labels), 3072)
        blob = {
            "filenames": [f"{name}_{i:05d}.png" for i in range(len(labels))],
            "batch_label": f"fake {name} batch",
            "fine_labels": labels.tolist(),
            "coarse_labels": (labels // 5).tolist(),
            "data": x,
        }
        with open(folder / name, "wb") as f:
            pickle.dump(blob, f)

    part("train", per_class)
    part("test", test_per_class)
    with open(folder / "meta", "wb") as f:
        pickle.dump(
            {"fine_label_names": CIFAR100_CLASSES, "coarse_label_names": [f"super_{i:02d}" for i in range(20)]}, f
        )
    return root


def make_fake_mnist(root: str | Path, *, train: int = 40, test: int = 20, folder: str = "MNIST", seed: int = 0) -> Path:
    """Write ``train`` / ``test`` random 28x28 uint8 images (labels ``i % 10``) as MNIST's gzipped IDX
    files into ``<root>/<folder>/raw/`` (``folder="FashionMNIST"`` for Fashion-MNIST); returns ``root``."""
    import gzip
    import struct

    root = Path(root)
    raw = root / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)

    def write(name: str, arr: np.ndarray) -> None:
        arr = np.asarray(arr, dtype=np.uint8)
        header = struct.pack(">HBB", 0, 0x08, arr.ndim) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
        with gzip.open(raw / name, "wb") as f:
            f.write(header + arr.tobytes())

    for split, m in (("train", train), ("t10k", test)):
        write(f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (m, 28, 28)))
        write(f"{split}-labels-idx1-ubyte.gz", np.arange(m) % 10)
    return root


def random_image_data(
    shape: tuple[int, int, int], classes: int, rows: int, *, test_rows: int = 64, seed: int = 0, name: str = "random"
):
    """An :class:`~kdutils.data.ImageData` of ``rows`` training and ``test_rows`` test images of
    ``shape`` (C, H, W): uint8 pixels uniform in [0, 255] from a generator seeded with ``seed``,
    labels ``i % classes`` (every class present once ``rows >= classes``). Same arguments, same
    tensors."""
    import torch

    from .inputs.data import ImageData

    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (rows + test_rows, *shape), generator=g, dtype=torch.uint8)
    y = torch.arange(rows + test_rows) % classes
    return ImageData(name, x[:rows], y[:rows], x[rows:], y[rows:], [str(i) for i in range(classes)])
