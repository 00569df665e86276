"""Process-level settings that make small-model CPU training faster.

:func:`tune_cpu_allocator` raises glibc malloc's mmap and trim thresholds (``mallopt``), so the
memory a training step frees is kept for the next step instead of being handed back to the
operating system and faulted in again. On this project's 2-core machines that took a LeNet-5-Half
MNIST epoch from 6.0 s to 4.2 s (page faults per step from ~2,500 to ~0; see
``benchmarks/README.md``). The cost: the process keeps its peak heap instead of shrinking after it,
as PyTorch's CUDA caching allocator does on the GPU.

Applied once per process by :func:`kdutils.fit` on Linux with glibc; ``KD_MALLOC_TUNE=0`` turns
it off. Nothing happens elsewhere (macOS, Windows, musl).

:func:`set_memory_format` stores a convolutional model's weights (and :func:`fit` its batches) in
channels-last (NHWC) order on the CPU, where oneDNN's convolutions are faster that way. Measured on
this project's 2-core machine, per image, train step / forward: LeNet-5 0.097 -> 0.076 /
0.034 -> 0.026 ms, AlexNet 4.05 -> 3.50 / 1.40 -> 1.10 ms, AlexNet-Half 1.22 -> 1.04 / 0.46 -> 0.32 ms.
It changes the order of floating-point sums, not the computation; on CUDA (fp32) it is left off
unless asked for, since its benefit there comes with mixed precision. :func:`wants_channels_last`
takes that decision once; :func:`place` applies it wherever a model arrives on a device.

:func:`evaluating` runs a model in eval mode for a block and restores each submodule's mode:
the helper methods use for forward passes that must not update BatchNorm statistics.
"""

from __future__ import annotations

import ctypes
import os
import platform
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn as nn

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_done: bool | None = None


def tune_cpu_allocator(mmap_threshold: int = 32 << 20, trim_threshold: int = 1 << 30) -> bool:
    """Raise glibc's mmap/trim thresholds once; returns whether the setting is in force."""
    global _done
    if _done is not None:
        return _done
    _done = False
    if os.environ.get("KD_MALLOC_TUNE", "1") in ("0", "false", "no") or platform.system() != "Linux":
        return False
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        _done = bool(libc.mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(
            libc.mallopt(_M_TRIM_THRESHOLD, trim_threshold)
        )
    except (OSError, AttributeError):
        _done = False
    return _done


def wants_channels_last(model: nn.Module, device: torch.device | str, channels_last: bool | None = None) -> bool:
    """The one memory-format decision: ``channels_last`` if given, else on for a model with a 2-D
    convolution on the CPU and off elsewhere (on CUDA in fp32 its benefit is small)."""
    if channels_last is not None:
        return bool(channels_last)
    return torch.device(device).type == "cpu" and any(isinstance(m, nn.Conv2d) for m in model.modules())


def place(model: nn.Module, device: torch.device | str, channels_last: bool | None = None) -> nn.Module:
    """Move ``model`` to ``device`` in the memory format :func:`wants_channels_last` picks.

    Called wherever a model arrives on its device (``fit`` for the student and the teacher,
    ``Experiment`` for a stored model). Nothing is attached to the model: the layout of its
    inputs is read back from its weights (:func:`is_channels_last`).
    """
    fmt = torch.channels_last if wants_channels_last(model, device, channels_last) else torch.contiguous_format
    return model.to(device=torch.device(device), memory_format=fmt)


def set_memory_format(model: nn.Module, device: torch.device | str, channels_last: bool | None = None) -> bool:
    """Put ``model``'s weights in channels-last order (or back) for ``device`` without moving it;
    returns whether the format chosen is channels-last."""
    cl = wants_channels_last(model, device, channels_last)
    model.to(memory_format=torch.channels_last if cl else torch.contiguous_format)
    return cl


def is_channels_last(model: nn.Module) -> bool:
    """Whether ``model``'s convolution weights are stored channels-last (NHWC).

    Read from the weights themselves: a 4-D weight that is channels-last contiguous and not
    plain contiguous. (A weight with one input channel or a 1x1 kernel is both, and says
    nothing; a model whose every convolution is like that runs the same either way.)
    """
    for prm in model.parameters():
        if prm.dim() == 4 and prm.is_contiguous(memory_format=torch.channels_last) and not prm.is_contiguous():
            return True
    return False


def match_memory_format(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``x`` in the layout of ``model``'s weights (4-D inputs only)."""
    if x.dim() == 4 and is_channels_last(model):
        return x.contiguous(memory_format=torch.channels_last)
    return x


@contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """Run ``model`` in eval mode inside the block, then restore every submodule's own mode.

    For methods that need a forward pass that must not touch BatchNorm statistics or dropout
    (an attack's inner steps, a bound computation, a teacher on the fly)::

        with evaluating(b.student):
            x_adv = attack(b.student, b.x, b.y)

    Gradients are unaffected: wrap in ``torch.no_grad()`` as well when none are needed.
    """
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, was_training in modes:
            m.training = was_training


def progress_bar(*args, **kw):
    """A tqdm progress bar: the notebook widget where ipywidgets is installed (the ``lab`` extra),
    else the text bar, so that a kernel without ipywidgets shows a bar instead of tqdm.auto's
    "IProgress not found" warning (every batch run of ``make reproduce`` with the test extra printed it)."""
    import importlib.util

    if importlib.util.find_spec("ipywidgets") is not None:
        from tqdm.auto import tqdm
    else:
        from tqdm import tqdm
    return tqdm(*args, **kw)
