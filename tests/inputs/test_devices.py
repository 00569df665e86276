"""Devices: an unknown name or a device this machine lacks names the accepted names and what
torch sees here (issue 10)."""

from __future__ import annotations

import pytest
import torch

import kdutils as kd
from kdutils import experiment


@pytest.fixture
def cpu_only(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setattr(experiment, "_mps", lambda: False)


@pytest.fixture
def one_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "Some GPU")
    monkeypatch.setattr(experiment, "_mps", lambda: False)


def test_cuda_without_a_gpu_says_what_there_is(cpu_only):
    with pytest.raises(
        kd.DeviceError,
        match=r"^device 'cuda' is not available: torch .* sees no CUDA GPU.*; "
        r"this machine has: cpu; use device='auto' or one of those$",
    ):
        kd.resolve_device("cuda")
    with pytest.raises(kd.DeviceError, match=r"device 'mps' is not available: torch sees no Apple MPS device"):
        kd.resolve_device("mps")
    assert kd.resolve_device("auto") == torch.device("cpu") and kd.resolve_device(" CPU ") == torch.device("cpu")


def test_unknown_device_names_the_accepted_ones(cpu_only):
    for bad in ("gpu", "cuda:x", "", 0, None):
        with pytest.raises(
            kd.DeviceError,
            match=r"^unknown device .*; accepted: auto, cpu, cuda, cuda:N, mps; "
            r"this machine has: cpu$",
        ):
            kd.resolve_device(bad)
    assert issubclass(kd.DeviceError, kd.KDError)


def test_a_gpu_index_beyond_the_machine(one_gpu):
    assert kd.visible_devices() == ["cpu", "cuda:0 (Some GPU)"]
    with pytest.raises(
        kd.DeviceError,
        match=r"device 'cuda:1' is not available: this machine has 1 CUDA GPU "
        r"\(cuda:0\); this machine has: cpu, cuda:0 \(Some GPU\)",
    ):
        kd.resolve_device("cuda:1")
    assert kd.resolve_device("cuda:0") == torch.device("cuda:0")


def test_an_experiment_on_a_missing_device_stops_before_loading(cpu_only):
    with pytest.raises(kd.DeviceError, match="device 'cuda' is not available"):
        kd.Experiment(kd.configure("smoke", device="cuda", progress=False))


def test_progress_bar_outside_a_notebook_is_the_text_bar():
    import tqdm

    from kdutils.runtime import progress_bar

    bar = progress_bar(total=3, disable=True)
    assert type(bar) is tqdm.std.tqdm
    bar.close()


class _Handle:
    def __init__(self):
        self.shown = []

    def update(self, data, raw=False):
        assert raw and set(data) == {"text/plain"}
        self.shown.append(data["text/plain"])


@pytest.mark.parametrize("leave", [False, True])
def test_a_notebook_bar_is_one_line_updated_in_place_and_emptied_when_it_closes(leave):
    """Issue 33: a saved notebook keeps no dead progress bar. In a kernel the bar writes to one
    display output (no widget, no carriage returns); a leave=False bar empties it when done, even
    with a nested bar beside it (tqdm's cursor moves are dropped)."""
    from tqdm import tqdm

    from kdutils.inputs.runtime import _DisplayLine

    outer, inner = _Handle(), _Handle()
    with tqdm(range(3), desc="KD s0", file=_DisplayLine(outer), leave=leave, mininterval=0) as bar:
        for _ in bar:
            with tqdm(range(2), desc="epoch", file=_DisplayLine(inner), leave=False, mininterval=0) as b:
                for _ in b:
                    pass
    assert all("\r" not in t and "\x1b" not in t and "\n" not in t for t in outer.shown + inner.shown)
    assert outer.shown[0].startswith("KD s0:") and "0/3" in outer.shown[0]
    assert any("3/3" in t for t in outer.shown)
    if leave:
        assert "3/3" in outer.shown[-1]
    else:
        assert outer.shown[-1] == "" and "3/3" in outer.shown[-2]
    assert inner.shown[-1] == ""
    assert "\u2588" in "".join(outer.shown)  # unicode blocks: the file says utf-8
