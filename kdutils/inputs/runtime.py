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

On CUDA kdutils keeps PyTorch's numerics defaults (:func:`cuda_numerics` reads them): fp32
convolutions run in TF32 (``torch.backends.cudnn.allow_tf32`` is True), fp32 matrix products do
not (``torch.get_float32_matmul_precision()`` is ``"highest"``), cuDNN picks its algorithms by
heuristics (``cudnn.benchmark`` False) and may pick nondeterministic ones, so a fixed seed does
*not* guarantee the same numbers twice on a GPU. ``KD_DETERMINISTIC=1`` asks for the flags of
PyTorch's reproducibility notes (https://pytorch.org/docs/stable/notes/randomness.html), set by
:func:`set_cuda_determinism` when a run reaches a CUDA device (:func:`prepare_device`); they cost
speed (cuDNN's choice of algorithms is narrowed, uninitialised memory is filled), by how much is
not measured here. Nothing of this touches the CPU, whose numbers are deterministic already.
"""

from __future__ import annotations

import ctypes
import os
import platform
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

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


#: the cuBLAS workspace setting under which its matrix products are reproducible (NVIDIA's cuBLAS
#: guide, "Results reproducibility"; PyTorch's reproducibility notes); ":16:8" is the other valid one
CUBLAS_DETERMINISTIC = ":4096:8"


def deterministic_requested() -> bool:
    """Whether ``$KD_DETERMINISTIC`` asks for deterministic CUDA kernels (``1``, ``true``, ``yes``, ``on``)."""
    return os.environ.get("KD_DETERMINISTIC", "").strip().lower() in ("1", "true", "yes", "on")


def cpu_model() -> str | None:
    """The CPU's model name (Linux: ``/proc/cpuinfo``; elsewhere :func:`platform.processor`), or None."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip() or None
    except OSError:
        pass
    return platform.processor() or None


def cpu_numerics() -> dict[str, Any]:
    """What decides a CPU's numbers in this process, read (never changed): the CPU's model, the
    vector instruction set torch's kernels use (AVX2, AVX512, ...) and the intra-op thread count. A
    fixed seed repeats its numbers on the same kind of CPU at the same thread count only: another
    CPU or another thread count sums in another order (docs/results-notes.md, "Another machine, other digits").
    Recorded by :func:`kdutils.environment` and with every run trained on the CPU (not in its key)."""
    return {
        "cpu": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_threads": torch.get_num_threads(),
    }


def cuda_numerics() -> dict[str, Any]:
    """The settings that decide CUDA's numbers in this process, read (never changed): TF32 for
    convolutions and for matrix products, cuDNN's autotuner and deterministic switch, PyTorch's
    deterministic-algorithms mode and cuBLAS's workspace setting. Recorded by
    :func:`kdutils.environment` where a GPU is present."""
    return {
        "cudnn_allow_tf32": bool(torch.backends.cudnn.allow_tf32),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
        "deterministic_algorithms": bool(torch.are_deterministic_algorithms_enabled()),
        "deterministic_warn_only": bool(torch.is_deterministic_algorithms_warn_only_enabled()),
        "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    }


def set_cuda_determinism(enabled: bool = True, *, warn_only: bool = True) -> dict[str, Any]:
    """Set (or clear) the flags of PyTorch's reproducibility notes; returns :func:`cuda_numerics`.

    ``enabled``: ``CUBLAS_WORKSPACE_CONFIG`` = :data:`CUBLAS_DETERMINISTIC` unless already set
    (cuBLAS reads it when its first handle is made: set it before the first CUDA product, e.g. in
    the environment), ``torch.backends.cudnn.deterministic = True``, ``cudnn.benchmark = False``,
    ``torch.use_deterministic_algorithms(True, warn_only=warn_only)``. ``warn_only`` (default):
    an operation with no deterministic CUDA kernel warns instead of failing; in kdutils' models that
    is the backward of ``nn.AdaptiveAvgPool2d`` to a size other than 1 (AlexNet's 4x4; a 1x1
    global pool is a mean and deterministic), listed in ``torch.use_deterministic_algorithms``'s
    documentation. ``enabled=False`` restores PyTorch's defaults (the environment variable stays).
    TF32 is left alone: it changes precision, not run-to-run reproducibility.
    """
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_DETERMINISTIC)
    torch.backends.cudnn.deterministic = bool(enabled)
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(bool(enabled), warn_only=warn_only)
    return cuda_numerics()


def prepare_device(device: torch.device | str) -> None:
    """What a device needs before a run's first kernel: on CUDA, :func:`set_cuda_determinism` when
    :func:`deterministic_requested`; nothing otherwise (PyTorch's defaults stay, and on the CPU
    and MPS no flag is touched). Called by :class:`kdutils.Experiment` and :func:`kdutils.fit`."""
    if torch.device(device).type == "cuda" and deterministic_requested():
        set_cuda_determinism(True)


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


class _DisplayLine:
    """The file a notebook's progress bar writes to: one ``text/plain`` output that each write
    replaces (an IPython display handle), so a bar is one line that updates in place, with no widget
    and no stream of carriage returns; when the bar closes with ``leave=False`` the line is emptied,
    so a saved notebook keeps no dead bar (issue 33). ``handle``: anything with ``update(data, raw=True)``."""

    _ESCAPES = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
    encoding = "utf-8"  # tqdm then draws the smooth unicode bar

    def __init__(self, handle: Any = None):
        if handle is None:
            from IPython.display import display

            handle = display({"text/plain": ""}, raw=True, display_id=True)
        self.handle, self.text = handle, ""

    def write(self, s: str) -> None:
        lines = [ln.strip() for ln in re.split(r"[\r\n]", self._ESCAPES.sub("", s))]
        if not any(lines) and "\r" not in s:  # a bare newline between writes: nothing to show
            return
        text = next((ln for ln in reversed(lines) if ln), "")  # the latest state; blank once cleared
        if text != self.text:
            self.text = text
            self.handle.update({"text/plain": text}, raw=True)

    def flush(self) -> None:
        pass


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with the notebook stack
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def progress_bar(*args, **kw):
    """A tqdm progress bar that leaves nothing behind: in a Jupyter kernel a text line that updates
    in place (:class:`_DisplayLine`, emptied when a ``leave=False`` bar closes, so a saved notebook
    holds no widget and no dead bar), elsewhere tqdm's text bar on stderr. Disabled bars (tests, a
    papermill batch) write nothing."""
    from tqdm import tqdm

    if not kw.get("disable") and "file" not in kw and _in_notebook():
        kw["file"] = _DisplayLine()
    return tqdm(*args, **kw)
