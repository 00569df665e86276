"""Datasets: registry, IDX reading, image folders, the validation split, missing data errors."""

import numpy as np
import pytest
import torch

import kdutils as kd
from kdutils.testing import make_fake_mnist


def _fake_mnist(root, folder="MNIST", n=40):
    make_fake_mnist(root, train=n, test=n // 2, folder=folder)


def test_registry_lists_the_design_datasets():
    assert set(kd.dataset_names()) >= {"digits", "mnist", "fashion_mnist", "cifar10", "cifar100"}


def test_digits_offline():
    d = kd.load_dataset("digits")
    assert d.train_x.dtype == torch.uint8 and d.train_x.shape[1:] == (1, 8, 8)
    assert len(d.train_y) + len(d.test_y) == 1797 and d.num_classes == 10
    assert int(d.train_x.max()) == 255


def test_mnist_layout_is_read_and_cached(tmp_path):
    _fake_mnist(tmp_path)
    d = kd.load_dataset("mnist", tmp_path)
    assert d.train_x.shape == (40, 1, 28, 28) and d.test_x.shape == (20, 1, 28, 28)
    assert (tmp_path / "cache" / "mnist.pt").exists()
    d2 = kd.load_dataset("mnist", tmp_path)
    assert torch.equal(d.train_x, d2.train_x) and torch.equal(d.test_y, d2.test_y)


def test_broken_cache_is_rebuilt(tmp_path):
    _fake_mnist(tmp_path)
    kd.load_dataset("mnist", tmp_path)
    (tmp_path / "cache" / "mnist.pt").write_bytes(b"junk")
    with pytest.warns(UserWarning, match="rebuilding"):
        d = kd.load_dataset("mnist", tmp_path)
    assert d.train_x.shape[0] == 40


@pytest.mark.parametrize("name, folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_missing_dataset_says_where_to_put_files(tmp_path, name, folder):
    with pytest.raises(kd.DatasetMissingError, match=rf"{folder}/raw.*train-images-idx3-ubyte"):
        kd.load_dataset(name, tmp_path)


@pytest.mark.parametrize("name, tv", [("cifar10", "cifar-10-batches-py"), ("cifar100", "cifar-100-python")])
def test_missing_cifar_names_both_layouts(tmp_path, name, tv):
    with pytest.raises(kd.DatasetMissingError, match=rf"{tv}.*{name}/\{{train,test\}}"):
        kd.load_dataset(name, tmp_path)


def test_image_folder(tmp_path):
    from PIL import Image

    for part, n in (("train", 3), ("test", 2)):
        for c in ("cat", "ant"):
            (tmp_path / part / c).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(np.full((5, 5, 3), i * 40, np.uint8)).save(tmp_path / part / c / f"{i}.png")
    d = kd.load_dataset(f"image_folder:{tmp_path}")
    assert d.classes == ["ant", "cat"] and d.train_x.shape == (6, 3, 5, 5) and d.test_y.tolist() == [0, 0, 1, 1]


def test_split_is_disjoint_stratified_and_fixed():
    d = kd.load_dataset("digits")
    s = kd.make_split(d, val_fraction=0.2)
    n = len(d.train_y)
    assert len(s.train_y) + len(s.val_y) == n
    # the validation rows are the complement of train_index in the full training set
    val_rows = sorted(set(range(n)) - set(s.train_index.tolist()))
    assert torch.equal(d.train_x[val_rows], s.val_x)
    per_class = torch.bincount(d.train_y, minlength=10)
    in_val = torch.bincount(s.val_y, minlength=10)
    assert ((in_val - 0.2 * per_class).abs() <= 0.5).all()  # stratified: every class gives 20 %, rounded
    assert torch.equal(kd.make_split(d, val_fraction=0.2).train_index, s.train_index)  # no dependence on any run seed


def test_train_subset_is_balanced():
    s = kd.make_split(kd.load_dataset("digits"), val_fraction=0.1, train_subset=200, test_subset=100)
    assert len(s.train_y) == 200 and len(s.test_y) == 100
    assert torch.bincount(s.train_y, minlength=10).tolist() == [20] * 10


def test_batches_cover_every_sample_once_per_epoch():
    x = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1)
    y = torch.arange(10)
    b = kd.data.Batches(x, y, batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(1))
    seen = torch.cat([idx for idx, _, _ in b])
    assert sorted(seen.tolist()) == list(range(10)) and len(b) == 3
    for idx, xb, yb in b:
        assert torch.equal(yb, idx) and torch.allclose(xb.flatten() * 255, idx.float())


def test_val_subset_is_balanced_held_out_and_leaves_training_alone():
    d = kd.load_dataset("digits")
    full = kd.make_split(d, val_fraction=0.2)
    s = kd.make_split(d, val_fraction=0.2, val_subset=100)
    assert len(s.val_y) == 100 and torch.bincount(s.val_y, minlength=10).tolist() == [10] * 10
    assert torch.equal(s.train_index, full.train_index)  # the training part does not move
    # the smaller validation set is drawn from the full one (still held out from training)
    full_rows = {tuple(r.flatten().tolist()) for r in full.val_x}
    assert all(tuple(r.flatten().tolist()) in full_rows for r in s.val_x)
    assert torch.equal(kd.make_split(d, val_fraction=0.2, val_subset=100).val_x, s.val_x)  # fixed seed


def test_a_copy_with_only_the_split_rows_gives_the_same_split():
    """``only_split_rows`` (how .ci/gpu-data carries the full profile's CIFAR-10 subset): every image
    the split does not take is zero, and the split drawn from the copy is the original's, pixel for pixel."""
    from kdutils.data import only_split_rows, split_rows

    d = kd.load_dataset("digits")
    kw = dict(val_fraction=0.2, train_subset=300, val_subset=100, test_subset=150)
    ref, got = kd.make_split(d, **kw), kd.make_split(only_split_rows(d, **kw), **kw)
    for f in ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y", "train_index"):
        assert torch.equal(getattr(got, f), getattr(ref, f)), f
    assert got.mean == ref.mean and got.std == ref.std
    train, val, test = split_rows(d, **kw)
    assert torch.equal(train, ref.train_index) and len(val) == 100 and len(test) == 150
    copy = only_split_rows(d, **kw)
    others = torch.ones(len(d.train_y), dtype=torch.bool)
    others[torch.cat([train, val])] = False
    assert others.sum() == len(d.train_y) - 400 and copy.train_x[others].eq(0).all()  # the rest is zero
    assert copy.test_x.flatten(1).ne(0).any(1).sum() <= 150 and torch.equal(copy.train_y, d.train_y)
    # a smaller split of the same kind takes kept rows only (stratified takes nest): allowed
    small = dict(val_fraction=0.2, train_subset=100, val_subset=50, test_subset=60)
    assert torch.equal(kd.make_split(copy, **small).train_x, kd.make_split(d, **small).train_x)
    # any split needing other rows would train on zero images: refused, naming the copy
    for other in (
        dict(val_fraction=0.2),
        dict(val_fraction=0.1, train_subset=300, val_subset=100, test_subset=150),
        dict(kw, test_subset=None),
    ):
        with pytest.raises(kd.DatasetMissingError, match="a copy holding only the rows"):
            kd.make_split(copy, **other)


def test_a_split_that_would_hold_out_nothing_says_so(tmp_path):
    """5 images per class at val_fraction 0.1 hold out round(0.5) = 0 per class: a clear error
    instead of an empty validation split that fails later (found by the paper dry run, notebook 05)."""
    from kdutils.testing import make_fake_cifar100

    data = kd.load_dataset("cifar100", make_fake_cifar100(tmp_path, per_class=5, test_per_class=1), cache=False)
    with pytest.raises(ValueError, match="val_fraction 0.1 holds out no validation image"):
        kd.make_split(data, val_fraction=0.1)
    assert len(kd.make_split(data, val_fraction=0.0).val_y) == 0  # no hold-out asked for: fine
    assert len(kd.make_split(data, val_fraction=0.2).val_y) == 100  # one per class


def test_random_image_data_is_seeded_and_shaped():
    """kdutils.testing.random_image_data (the benchmarks' stand-in data): the shape asked for, uint8
    pixels, every class, the same tensors for the same seed and others for another."""
    from kdutils.testing import random_image_data

    a = random_image_data((3, 5, 4), 7, 20, test_rows=6)
    assert a.train_x.shape == (20, 3, 5, 4) and a.test_x.shape == (6, 3, 5, 4) and a.train_x.dtype == torch.uint8
    assert a.num_classes == 7 and set(a.train_y.tolist()) == set(range(7))
    b = random_image_data((3, 5, 4), 7, 20, test_rows=6)
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)
    assert not torch.equal(a.train_x, random_image_data((3, 5, 4), 7, 20, test_rows=6, seed=1).train_x)
    assert kd.make_split(a, val_fraction=0.0).input_size == 4
