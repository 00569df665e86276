"""Datasets as in-memory uint8 tensors, a fixed validation split, on-device batches.

Every dataset is loaded once from its usual on-disk layout into four tensors
(``train_x`` uint8 N x C x H x W, ``train_y`` int64, ``test_x``, ``test_y``) and cached
under ``<data root>/cache/<name>.pt``; later loads read the cache (well under a second
for MNIST). Batches are drawn by index from tensors that already sit on the target
device and are augmented there (random crop by padding + offset, horizontal flip), so
the hot path has no per-sample Python ``Dataset.__getitem__``.

The data root is ``data/`` in the project, or the folder named by ``$KD_DATA_ROOT``.
Where a dataset is missing, torchvision's download is tried unless ``$KD_OFFLINE=1``.

Registered names (see :data:`DATASETS`):

==============  =============================================================  =========
name            layout read under the data root                                 offline
==============  =============================================================  =========
digits          scikit-learn's bundled 8x8 digits (1797 images)                 always
mnist           ``MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]``  if there
fashion_mnist   ``FashionMNIST/raw/...`` (same file names as MNIST)             if there
cifar10         ``cifar-10-batches-py/`` (torchvision) or ``cifar10/{train,test}/<class>/*``  if there
cifar100        ``cifar-100-python/`` (torchvision)                             if there
image_folder    ``image_folder:<path>`` with ``<path>/{train,test}/<class>/*.png|jpg``  always
==============  =============================================================  =========
"""

from __future__ import annotations

import dataclasses
import gzip
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from ..core.errors import DatasetMissingError, KDError
from ..core.io import atomic_torch_save, data_root, offline, project_root, read_tensors  # noqa: F401  (project_root: re-exported)
from ..core.registry import Registry

DATASETS: Registry[Callable[[Path], "ImageData"]] = Registry("dataset")

#: bump when a loader's output changes, so stale caches are rebuilt
CACHE_VERSION = 1


@dataclass
class ImageData:
    """A whole dataset in memory: uint8 images (N, C, H, W) in [0, 255] and int64 labels."""

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: list[str]
    note: str = ""  # e.g. "JPEG re-encoding of CIFAR-10"
    #: set by :func:`only_split_rows`: the split arguments whose rows this copy keeps (the rest is zero)
    only_rows: dict | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def in_channels(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def input_size(self) -> int:
        return int(self.train_x.shape[-1])

    def __post_init__(self) -> None:
        for t in (self.train_x, self.test_x):
            if t.dtype != torch.uint8 or t.dim() != 4:
                raise ValueError(f"{self.name}: images must be uint8 (N, C, H, W), got {t.dtype} {tuple(t.shape)}")


@dataclass
class Split:
    """Train / validation / test tensors of one dataset, ready for training.

    ``train_index`` maps each training row to its row in the full training set, so
    participation counts can be traced back to images. The validation split is drawn
    with a fixed seed that does not depend on the run's seed: every run (teacher or
    student, every notebook) selects models on the same held-out images and never on
    the test set.
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    train_index: torch.Tensor
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    note: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def in_channels(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def input_size(self) -> int:
        return int(self.train_x.shape[-1])

    def subset(self, rows: torch.Tensor) -> "Split":
        """The same split with only ``rows`` of the training part (validation and test unchanged)."""
        rows = torch.as_tensor(rows, dtype=torch.long)
        return dataclasses.replace(
            self, train_x=self.train_x[rows], train_y=self.train_y[rows], train_index=self.train_index[rows]
        )

    def describe(self) -> dict:
        return {
            "dataset": self.name,
            "train": len(self.train_y),
            "val": len(self.val_y),
            "test": len(self.test_y),
            "classes": self.num_classes,
            "shape": tuple(self.train_x.shape[1:]),
            "note": self.note,
        }


# ---------------------------------------------------------------- loading + cache


#: the names the figures and tables show for the datasets [ours]
DISPLAY_NAMES = {
    "mnist": "MNIST",
    "fashion_mnist": "Fashion-MNIST",
    "cifar10": "CIFAR-10",
    "cifar100": "CIFAR-100",
    "imagenet": "ImageNet",
    "digits": "digits (8x8, scikit-learn)",
}


def display_name(name: str) -> str:
    """A dataset's name for people: ``fashion_mnist`` -> ``Fashion-MNIST``; an image folder by its folder name."""
    if name in DISPLAY_NAMES:
        return DISPLAY_NAMES[name]
    if name.startswith("image_folder:"):
        return "images in " + Path(name.split(":", 1)[1]).name
    return name


def dataset_stem(name: str) -> str:
    """A stable file stem for a dataset (figure names, ``[a-z0-9_-]+``): a registered name as it is;
    ``image_folder:PATH`` as ``folder_<last part of PATH, lower-cased, other characters as '-'>``
    (``image_folder:/data/My Pets`` -> ``folder_my-pets``)."""
    import re

    if isinstance(name, str) and name.startswith("image_folder:"):
        base = Path(name.split(":", 1)[1].rstrip("/\\")).expanduser().name.lower()
        return "folder_" + (re.sub(r"[^a-z0-9_-]+", "-", base).strip("-") or "root")
    return name


def dataset_names() -> list[str]:
    return DATASETS.names()


def load_dataset(name: str, root: str | Path | None = None, *, cache: bool = True) -> ImageData:
    """Load a registered dataset (or ``image_folder:<path>``) as uint8 tensors.

    The first load reads the original files and writes ``<root>/cache/<name>.pt``;
    later loads read that file. A dataset missing offline raises
    :class:`DatasetMissingError` saying which files to put where.
    """
    root = Path(root) if root is not None else data_root()
    if isinstance(name, str) and name.startswith("image_folder:"):
        folder = Path(name.split(":", 1)[1]).expanduser()
        return _load_image_folder(folder, name=name)
    loader = DATASETS.get(name)
    cache_file = root / "cache" / f"{name}.pt"
    if cache and cache_file.exists():
        try:
            blob = read_tensors(cache_file)  # tensors and plain values only: a cache file never runs code
            if blob.get("version") == CACHE_VERSION:
                return ImageData(**blob["data"])
        except Exception as exc:  # a broken cache is rebuilt, not trusted
            import warnings

            warnings.warn(f"dataset cache {cache_file} is unreadable ({exc}); rebuilding it")
    data = loader(root)
    if cache and name != "digits":
        atomic_torch_save({"version": CACHE_VERSION, "data": data.__dict__}, cache_file)
    return data


@DATASETS.register("digits")
def _load_digits(root: Path) -> ImageData:
    """scikit-learn's 8x8 digits (bundled, offline): 1797 images, a fixed 75/25 train/test split."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy(np.round(d.images * (255.0 / 16.0)).astype(np.uint8)).unsqueeze(1)
    y = torch.from_numpy(d.target.astype(np.int64))
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    n_test = len(y) // 4
    te, tr = perm[:n_test], perm[n_test:]
    return ImageData("digits", x[tr], y[tr], x[te], y[te], [str(i) for i in range(10)])


def _read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (MNIST format), gzipped or not."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08:
        raise KDError(f"{path} is not a uint8 IDX file")
    shape = struct.unpack(">" + "I" * ndim, raw[4 : 4 + 4 * ndim])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _find(raw: Path, stem: str) -> Path | None:
    for cand in (raw / stem, raw / f"{stem}.gz"):
        if cand.exists():
            return cand
    return None


def _mnist_like(root: Path, folder: str, name: str, tv_class: str, classes: list[str]) -> ImageData:
    raw = root / folder / "raw"
    stems = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    found = [_find(raw, s) for s in stems]
    if any(f is None for f in found) and not offline():
        try:  # a machine with a network: torchvision downloads into the same layout
            import torchvision.datasets as tvd

            getattr(tvd, tv_class)(str(root), train=True, download=True)
            found = [_find(raw, s) for s in stems]
        except Exception:
            pass
    if any(f is None for f in found):
        missing = [s for s, f in zip(stems, found) if f is None]
        raise DatasetMissingError(
            f"{name} is not on disk and cannot be downloaded (offline?). Put the four IDX files "
            f"(gzipped or not) into {raw}/ : missing {', '.join(missing)}. "
            f"Or set KD_DATA_ROOT to a folder that has {folder}/raw/."
        )
    tx, ty, sx, sy = (_read_idx(p) for p in found)
    t = lambda a: torch.from_numpy(a.copy())  # noqa: E731
    return ImageData(name, t(tx).unsqueeze(1), t(ty).long(), t(sx).unsqueeze(1), t(sy).long(), classes)


@DATASETS.register("mnist")
def _load_mnist(root: Path) -> ImageData:
    return _mnist_like(root, "MNIST", "mnist", "MNIST", [str(i) for i in range(10)])


@DATASETS.register("fashion_mnist")
def _load_fashion(root: Path) -> ImageData:
    classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    return _mnist_like(root, "FashionMNIST", "fashion_mnist", "FashionMNIST", classes)


#: torchvision's CIFAR python layouts: (train files, test files, meta file, label key, class-name key)
_CIFAR_PICKLES = {
    "CIFAR10": ([f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "batches.meta", "labels", "label_names"),
    "CIFAR100": (["train"], ["test"], "meta", "fine_labels", "fine_label_names"),
}


def _load_torchvision_cifar(root: Path, cls_name: str, name: str) -> ImageData:
    """torchvision's python layout (``cifar-10-batches-py/``, ``cifar-100-python/``), read directly.

    The same tensors as ``torchvision.datasets.CIFAR10/100`` give, without their MD5 check of
    the files, so a generated folder of the same format (:func:`kdutils.testing.make_fake_cifar100`)
    loads as the real one does; a malformed file is reported with its path.
    """
    import pickle

    folder = root / {"CIFAR10": "cifar-10-batches-py", "CIFAR100": "cifar-100-python"}[cls_name]
    train_files, test_files, meta_file, label_key, names_key = _CIFAR_PICKLES[cls_name]

    def read(path: Path) -> dict:
        try:
            with open(path, "rb") as f:
                return pickle.load(f, encoding="latin1")
        except (OSError, pickle.UnpicklingError, EOFError, ValueError) as exc:
            raise DatasetMissingError(
                f"{name}: cannot read {path} ({exc}); put torchvision's {folder.name}/ there again"
            ) from None

    def part(files: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        blobs = [read(folder / f) for f in files]
        try:
            x = np.concatenate([np.asarray(b["data"], dtype=np.uint8) for b in blobs]).reshape(-1, 3, 32, 32)
            y = np.concatenate([np.asarray(b[label_key], dtype=np.int64) for b in blobs])
        except (KeyError, ValueError) as exc:
            raise DatasetMissingError(f"{name}: {folder} is not torchvision's CIFAR layout ({exc!r})") from None
        return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y)

    tx, ty = part(train_files)
    sx, sy = part(test_files)
    classes = list(read(folder / meta_file)[names_key])
    return ImageData(name, tx, ty, sx, sy, classes)


def _cifar(root: Path, name: str, tv_folder: str, cls_name: str) -> ImageData:
    if (root / tv_folder).exists():
        return _load_torchvision_cifar(root, cls_name, name)
    folder = root / name
    if (folder / "train").is_dir() and (folder / "test").is_dir():
        data = _load_image_folder(folder, name=name)
        if any(p.suffix.lower() in (".jpg", ".jpeg") for p in (folder / "train").rglob("*") if p.is_file()):
            data.note = f"JPEG copy of {name.upper()} (not pixel-exact; accuracies run below the original's)"
        return data
    try:
        if offline():
            raise DatasetMissingError("offline")
        import torchvision.datasets as tvd

        getattr(tvd, cls_name)(str(root), train=True, download=True)
        getattr(tvd, cls_name)(str(root), train=False, download=True)
        return _load_torchvision_cifar(root, cls_name, name)
    except Exception:
        raise DatasetMissingError(
            f"{name} is not on disk and cannot be downloaded (offline?). Put torchvision's "
            f"{tv_folder}/ into {root}/, or an image folder {folder}/{{train,test}}/<class>/*.png|jpg. "
            f"Or set KD_DATA_ROOT to a folder that has one of them."
        ) from None


@DATASETS.register("cifar10")
def _load_cifar10(root: Path) -> ImageData:
    return _cifar(root, "cifar10", "cifar-10-batches-py", "CIFAR10")


@DATASETS.register("cifar100")
def _load_cifar100(root: Path) -> ImageData:
    return _cifar(root, "cifar100", "cifar-100-python", "CIFAR100")


_IMG_EXT = (".png", ".jpg", ".jpeg", ".bmp")


def _load_image_folder(folder: Path, name: str) -> ImageData:
    """``folder/{train,test}/<class>/*.png|jpg``: classes sorted by name (as ImageFolder)."""
    from PIL import Image

    if not (folder / "train").is_dir() or not (folder / "test").is_dir():
        raise DatasetMissingError(f"image folder {folder} must contain train/<class>/ and test/<class>/ folders")
    classes = sorted(p.name for p in (folder / "train").iterdir() if p.is_dir())
    if not classes:
        raise DatasetMissingError(f"image folder {folder}/train has no class folders")

    def read(part: str) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = [], []
        for label, c in enumerate(classes):
            files = sorted(p for p in (folder / part / c).iterdir() if p.suffix.lower() in _IMG_EXT)
            for p in files:
                with Image.open(p) as im:
                    xs.append(np.asarray(im.convert("RGB") if im.mode not in ("L", "RGB") else im))
                ys.append(label)
        if not xs:
            raise DatasetMissingError(f"image folder {folder}/{part} holds no images ({', '.join(_IMG_EXT)})")
        x = np.stack(xs)
        x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)
        return torch.from_numpy(np.ascontiguousarray(x)), torch.tensor(ys, dtype=torch.long)

    tx, ty = read("train")
    sx, sy = read("test")
    return ImageData(name, tx, ty, sx, sy, classes)


# ---------------------------------------------------------------- split


def make_split(
    data: ImageData,
    *,
    val_fraction: float = 0.1,
    train_subset: int | None = None,
    test_subset: int | None = None,
    val_subset: int | None = None,
    split_seed: int = 0,
) -> Split:
    """Hold out a validation split (fixed seed, stratified) and optionally subsample.

    ``train_subset`` keeps that many training images (stratified, also with the fixed
    seed), so a ``quick`` run on a CPU sees a smaller but balanced set;
    ``test_subset`` does the same for the test set and ``val_subset`` for the
    validation split (a smaller held-out set is cheaper to score after every epoch).
    Normalisation statistics (per channel mean and std in [0, 1]) come from the
    training part only.
    """
    train_idx, val_idx, keep = split_rows(
        data,
        val_fraction=val_fraction,
        train_subset=train_subset,
        test_subset=test_subset,
        val_subset=val_subset,
        split_seed=split_seed,
    )
    if data.only_rows is not None:
        _check_kept(data, train_idx, val_idx, keep)
    test_x, test_y = data.test_x, data.test_y
    if keep is not None:
        test_x, test_y = test_x[keep], test_y[keep]
    tx = data.train_x[train_idx]
    xf = tx.float().div_(255.0)
    mean = tuple(float(v) for v in xf.mean(dim=(0, 2, 3)))
    std = tuple(float(v) for v in xf.std(dim=(0, 2, 3)).clamp_min(1e-3))
    return Split(
        name=data.name,
        train_x=tx,
        train_y=data.train_y[train_idx],
        val_x=data.train_x[val_idx],
        val_y=data.train_y[val_idx],
        test_x=test_x,
        test_y=test_y,
        train_index=train_idx,
        classes=list(data.classes),
        mean=mean,
        std=std,
        note=data.note,
    )


def split_rows(
    data: ImageData,
    *,
    val_fraction: float = 0.1,
    train_subset: int | None = None,
    test_subset: int | None = None,
    val_subset: int | None = None,
    split_seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The rows :func:`make_split` takes: (training rows, validation rows, test rows or None for all).

    Training and validation rows index ``data.train_x`` (sorted); the test rows index
    ``data.test_x``. Only the labels and the sizes are read, never the images.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    g = torch.Generator().manual_seed(split_seed)
    n = len(data.train_y)
    perm = torch.randperm(n, generator=g)
    # stratified: take every class's first val_fraction share in permuted order
    y_perm = data.train_y[perm]
    val_mask = torch.zeros(n, dtype=torch.bool)
    for c in range(data.num_classes):
        pos = (y_perm == c).nonzero().flatten()
        val_mask[pos[: int(round(len(pos) * val_fraction))]] = True
    val_idx, train_idx = perm[val_mask], perm[~val_mask]
    if val_fraction > 0 and len(val_idx) == 0:  # e.g. 5 images per class: round(0.5) is 0
        raise ValueError(
            f"val_fraction {val_fraction} holds out no validation image of {data.name!r} ({n} training images, "
            f"{data.num_classes} classes): give it at least {int(1 / val_fraction) + 1} images per class"
        )
    if train_subset is not None and train_subset < len(train_idx):
        train_idx = _stratified_take(train_idx, data.train_y, train_subset, data.num_classes)
    if val_subset is not None and val_subset < len(val_idx):
        val_idx = _stratified_take(val_idx, data.train_y, val_subset, data.num_classes)
    keep = None
    if test_subset is not None and test_subset < len(data.test_y):
        order = torch.randperm(len(data.test_y), generator=g)
        keep = _stratified_take(order, data.test_y, test_subset, data.num_classes).sort().values
    return train_idx.sort().values, val_idx.sort().values, keep


def only_split_rows(data: ImageData, **split_kwargs) -> ImageData:
    """A copy of ``data`` whose images are zero except the rows :func:`make_split` takes with
    these arguments: same shapes and labels, so the split draws the same rows and gets the same
    images (and normalisation statistics), while the zero rows compress to almost nothing.

    For carrying a subset profile's data where the whole dataset does not fit (the full
    profile's 10k-image CIFAR-10 subset to a GPU machine: ``.ci/gpu-data``); a model trained
    on it is the one trained on ``data``. Any other split of it is meaningless.
    """
    if data.only_rows is not None:
        raise ValueError(f"{data.name} is already a copy with only the rows of the split {data.only_rows}")
    train, val, test = split_rows(data, **split_kwargs)
    rows = torch.cat([train, val])
    tx, sx = torch.zeros_like(data.train_x), torch.zeros_like(data.test_x)
    tx[rows] = data.train_x[rows]
    test = torch.arange(len(data.test_y)) if test is None else test
    sx[test] = data.test_x[test]
    return dataclasses.replace(data, train_x=tx, test_x=sx, only_rows=dict(split_kwargs))


def _check_kept(data: ImageData, train: torch.Tensor, val: torch.Tensor, test: torch.Tensor | None) -> None:
    """A split of an :func:`only_split_rows` copy must take only rows the copy kept: any other
    row is a zero image with a real label, which would train and score silently wrong."""
    k_train, k_val, k_test = split_rows(data, **data.only_rows)
    kept = torch.cat([k_train, k_val])
    ok = bool(torch.isin(torch.cat([train, val]), kept).all())
    if k_test is not None:
        ok = ok and test is not None and bool(torch.isin(test, k_test).all())
    if not ok:
        raise DatasetMissingError(
            f"this {data.name} is a copy holding only the rows of the split {data.only_rows} (every other image is "
            f"zero; .ci/gpu-data writes such copies for one profile), and this split needs others: use the "
            f"profile it was made for, or the whole dataset (delete the cache file and point KD_DATA_ROOT at it)"
        )


def _stratified_take(order: torch.Tensor, y: torch.Tensor, k: int, num_classes: int) -> torch.Tensor:
    """Take ``k`` indices from ``order`` (already shuffled), as balanced over classes as possible."""
    labels = y[order]
    per_class = [order[labels == c] for c in range(num_classes)]
    quota = [k // num_classes + (1 if c < k % num_classes else 0) for c in range(num_classes)]
    taken = [p[:q] for p, q in zip(per_class, quota)]
    short = k - sum(len(t) for t in taken)
    if short > 0:  # rare classes: fill from the rest in order
        used = torch.cat(taken)
        rest = order[~torch.isin(order, used)]
        taken.append(rest[:short])
    return torch.cat(taken)


# ---------------------------------------------------------------- batches


@dataclass(frozen=True)
class Augment:
    """On-device augmentation: random crop after zero padding, horizontal flip."""

    crop_padding: int = 4
    flip: bool = True

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        b, c, h, w = x.shape
        p = self.crop_padding
        if p > 0:
            # offsets drawn on the CPU generator (same numbers on every device), applied on x's device
            dy = torch.randint(0, 2 * p + 1, (b,), generator=g).to(x.device)
            dx = torch.randint(0, 2 * p + 1, (b,), generator=g).to(x.device)
            padded = F.pad(x, (p, p, p, p))
            rows = (dy[:, None] + torch.arange(h, device=x.device))[:, :, None]  # b, h, 1
            cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, :]  # b, 1, w
            bi = torch.arange(b, device=x.device)[:, None, None]
            x = padded.permute(0, 2, 3, 1)[bi, rows, cols].permute(0, 3, 1, 2)
        if self.flip:
            flip = (torch.rand(b, generator=g) < 0.5).to(x.device)
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
        return x.contiguous()


@dataclass
class Batches:
    """Yield ``(idx, x, y)`` batches from uint8 tensors held on ``device``.

    ``x`` is float32 in [0, 1] (models normalise inside); ``idx`` indexes the rows of
    the tensors given, on the CPU, so per-sample bookkeeping (participation counts,
    precomputed teacher logits) uses it directly. Order and augmentation come from
    ``generator`` (a CPU ``torch.Generator``), so a seed fixes every batch.
    """

    x: torch.Tensor
    y: torch.Tensor
    batch_size: int
    shuffle: bool = False
    drop_last: bool = False
    augment: Augment | None = None
    device: torch.device | str = "cpu"
    generator: torch.Generator | None = None
    #: at most this many batches per pass (None: all); the order is still drawn over every row
    max_batches: int | None = None
    _x_dev: torch.Tensor = field(init=False, repr=False)
    _y_dev: torch.Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._x_dev = self.x.to(self.device)
        self._y_dev = self.y.to(self.device)
        if self.generator is None:
            self.generator = torch.Generator().manual_seed(0)

    def __len__(self) -> int:
        n = len(self.y)
        full = n // self.batch_size if self.drop_last else -(-n // self.batch_size)
        return full if self.max_batches is None else min(full, self.max_batches)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        n = len(self.y)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        for i in range(len(self)):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            dev_idx = idx.to(self.device)
            xb = self._x_dev[dev_idx].float().div_(255.0)
            if self.augment is not None:
                xb = self.augment(xb, self.generator)
            yield idx, xb, self._y_dev[dev_idx]
