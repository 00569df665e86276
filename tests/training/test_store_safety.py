"""A run store (or a dataset cache) that someone else can write to never runs their code.

Every ``.pt`` file kdutils reads is loaded with ``torch.load(weights_only=True)``: tensors, state
dicts and plain values. A file holding a pickle that would call a function on load (``__reduce__``)
is treated as a corrupt record: set aside, reported, retrained; the function is never called.
"""

import io
import os

import pytest
import torch
from test_store import _Interrupt, _settings

import kdutils as kd
from kdutils.errors import CorruptRecordError
from kdutils.io import read_tensors


def _touch(path):  # what the planted pickle would do on load: leave a trace
    open(path, "w").close()


class _Planted:
    """Unpickling this calls ``_touch(marker)``: a stand-in for a pickle that runs a shell command."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (_touch, (self.marker,))


def _plant(path, marker):
    torch.save({"model": _Planted(marker)}, path)


def test_read_tensors_refuses_a_pickle_that_calls_code(tmp_path):
    marker = tmp_path / "ran"
    _plant(tmp_path / "x.pt", marker)
    with pytest.raises(CorruptRecordError, match="never executed"):
        read_tensors(tmp_path / "x.pt")
    assert not marker.exists()
    # a plain state dict, RNG states and numbers load as they were written
    state = {"w": torch.arange(3.0), "rng": (3, tuple(range(5)), None), "epoch": 2, "history": [{"loss": 0.5}]}
    torch.save(state, tmp_path / "ok.pt")
    back = read_tensors(tmp_path / "ok.pt")
    assert torch.equal(back["w"], state["w"]) and back["rng"] == state["rng"] and back["history"] == state["history"]


@pytest.mark.parametrize("name", ["model.pt", "artifacts.pt"])
def test_a_planted_pickle_in_a_finished_run_is_set_aside_not_run(store, tmp_path, name):
    exp = kd.Experiment(_settings(), store)
    first = exp.student("ce", seed=0)
    marker = tmp_path / "ran"
    _plant(store.path(first.key) / name, marker)
    with pytest.warns(UserWarning, match="corrupt record .*never executed"):
        again = kd.Experiment(_settings(), store).student("ce", seed=0)
    assert not marker.exists()
    assert not again.reused  # retrained, from the seed: the same numbers as the first time
    for a, b in zip(first.model.state_dict().values(), again.model.state_dict().values()):
        assert torch.equal(a, b)
    aside = list((store.root / "_corrupt").iterdir())
    assert len(aside) == 1 and aside[0].name.startswith(first.key) and (aside[0] / name).exists()


def test_a_planted_checkpoint_is_set_aside_not_run(tmp_path):
    s = _settings()
    with pytest.raises(KeyboardInterrupt):
        kd.Experiment(s, _Interrupt(tmp_path / "runs")).student("ce", seed=0)
    store = kd.RunStore(tmp_path / "runs")
    key = store.keys()[0]
    marker = tmp_path / "ran"
    _plant(store.path(key) / "checkpoint.pt", marker)
    with pytest.warns(UserWarning, match="corrupt checkpoint"):
        run = kd.Experiment(s, store).student("ce", seed=0)
    assert not marker.exists()
    assert run.record["resumed_from_epoch"] == 0


def test_a_real_checkpoint_loads_as_plain_data(tmp_path):
    """What ``fit`` checkpoints (model, optimizer, schedule, every RNG state, method state) passes
    the weights-only loader, so resuming never needs the unsafe one."""
    s = _settings()
    with pytest.raises(KeyboardInterrupt):
        kd.Experiment(s, _Interrupt(tmp_path)).student("ce", seed=0)
    store = kd.RunStore(tmp_path)
    ckpt = read_tensors(store.path(store.keys()[0]) / "checkpoint.pt")
    assert ckpt["epoch"] == 1 and isinstance(ckpt["rng"]["numpy"]["keys"], torch.Tensor)


def test_the_numpy_generator_round_trips_through_a_checkpoint():
    import numpy as np

    from kdutils.train import rng_state, set_rng_state

    np.random.seed(7)
    np.random.normal()  # leaves a cached Gaussian in the state
    buf = io.BytesIO()
    torch.save(rng_state(torch.device("cpu")), buf)
    expected = np.random.random(4)
    buf.seek(0)
    set_rng_state(torch.load(buf, weights_only=True), torch.device("cpu"))
    assert np.array_equal(np.random.random(4), expected)


def test_a_planted_dataset_cache_is_rebuilt_not_run(tmp_path):
    marker = tmp_path / "ran"
    digits = kd.load_dataset("digits")
    (tmp_path / "cache").mkdir()
    _plant(tmp_path / "cache" / "mnist.pt", marker)
    # the cache file is read first; a loader that cannot find MNIST then says where to put it
    with pytest.warns(UserWarning, match="dataset cache .* unreadable"):
        with pytest.raises(kd.DatasetMissingError):
            kd.load_dataset("mnist", root=tmp_path)
    assert not marker.exists()
    assert digits.num_classes == 10
    assert os.listdir(tmp_path / "cache") == ["mnist.pt"]
