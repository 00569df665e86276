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
unless asked for, since its benefit there comes with mixed precision.
"""

from __future__ import annotations

import ctypes
import os
import platform

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
        _done = bool(libc.mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, trim_threshold))
    except (OSError, AttributeError):
        _done = False
    return _done


def set_memory_format(model: nn.Module, device: torch.device | str, channels_last: bool | None = None) -> bool:
    """Put ``model``'s weights in channels-last order (or back); returns whether it is channels-last.

    ``channels_last=None`` decides: on for a model with a 2-D convolution on the CPU, off
    otherwise. The choice is remembered on the model (``model.kd_channels_last``) so that
    :func:`kdutils.fit` and :func:`kdutils.metrics.predict_logits` lay out its inputs to match.
    """
    if channels_last is None:
        channels_last = torch.device(device).type == "cpu" and any(isinstance(m, nn.Conv2d) for m in model.modules())
    model.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    model.kd_channels_last = bool(channels_last)
    return bool(channels_last)


def match_memory_format(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``x`` in the layout :func:`set_memory_format` chose for ``model`` (4-D inputs only)."""
    if x.dim() == 4 and getattr(model, "kd_channels_last", False):
        return x.contiguous(memory_format=torch.channels_last)
    return x
