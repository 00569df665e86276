"""Process-level settings that make small-model CPU training faster.

:func:`tune_cpu_allocator` raises glibc malloc's mmap and trim thresholds (``mallopt``), so the
memory a training step frees is kept for the next step instead of being handed back to the
operating system and faulted in again. On this project's 2-core machines that took a LeNet-5-Half
MNIST epoch from 6.0 s to 4.2 s (page faults per step from ~2,500 to ~0; see
``benchmarks/README.md``). The cost: the process keeps its peak heap instead of shrinking after it,
as PyTorch's CUDA caching allocator does on the GPU.

Applied once per process by :func:`kdutils.fit` on Linux with glibc; ``KD_MALLOC_TUNE=0`` turns
it off. Nothing happens elsewhere (macOS, Windows, musl).
"""

from __future__ import annotations

import ctypes
import os
import platform

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
