"""The ground floor: project paths and atomic file I/O (imports only kdutils.errors).

Reading: :func:`read_tensors`, ``torch.load(weights_only=True)``: a ``.pt`` file kdutils reads is
tensors and plain values, never a pickle that runs code.

Every file kdutils writes (run records, checkpoints, dataset caches, evaluations, results,
figures) goes through :func:`atomic_torch_save` / :func:`atomic_write_json` /
:func:`atomic_write_bytes`: written to a temporary name in the same folder, flushed to disk,
then renamed into place, so a crash leaves either the old file or the new one, never half of
one. A write that fails for want of space or permission ends as one
:class:`~kdutils.errors.StorageError` line: the cause, the path, and where to write instead.

Paths: :func:`project_root` (the checkout holding ``kdutils``), :func:`data_root`
(``$KD_DATA_ROOT`` or ``data/``), :func:`default_runs_root` (``$KD_RUNS_ROOT`` or ``runs/``).
"""

from __future__ import annotations

import base64
import errno
import io
import json
import os
import pickle
import tempfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import CorruptRecordError, StorageError


def project_root() -> Path:
    """The checkout holding ``kdutils`` (where ``data/``, ``figures/``, ``runs/`` live)."""
    here = Path(__file__).resolve().parents[2]  # kdutils/core/io.py -> the folder holding kdutils/
    if (here / "pyproject.toml").exists():
        return here
    return Path.cwd()


def offline() -> bool:
    """``$KD_OFFLINE=1``: never try to download (tests set it)."""
    return os.environ.get("KD_OFFLINE", "") not in ("", "0")


def data_root() -> Path:
    """``$KD_DATA_ROOT`` if set, else ``<project>/data``."""
    env = os.environ.get("KD_DATA_ROOT")
    return Path(env).expanduser() if env else project_root() / "data"


def default_runs_root() -> Path:
    """``$KD_RUNS_ROOT`` if set, else ``<project>/runs``."""
    env = os.environ.get("KD_RUNS_ROOT")
    return Path(env).expanduser() if env else project_root() / "runs"


#: the profiles whose figures are committed (the README's gallery): quick in figures/<notebook>/,
#: full (converged students) in figures/<notebook>/full/
GALLERY = {"quick": "", "full": "full"}


def default_outputs() -> Path:
    """The folder a batch writes to when no ``--out`` is given: ``<project>/outputs``."""
    return project_root() / "outputs"


def default_output_dir(notebook: str, profile: str, outputs: Path | None = None) -> Path:
    """Where a notebook's ``results.csv`` goes when no folder is given: ``<outputs>/<profile>/<notebook>``
    (``outputs`` defaults to :func:`default_outputs`); the batch puts the executed copy beside it."""
    return (Path(outputs) if outputs is not None else default_outputs()) / profile / notebook


def default_figures_dir(notebook: str, profile: str, outputs: Path | None = None) -> Path:
    """Where a notebook's figures go when no folder is given.

    ``figures/<notebook>`` at ``quick`` and ``figures/<notebook>/full`` at ``full`` (the
    committed gallery), else ``<outputs>/<profile>/figures/<notebook>`` (``outputs`` defaults to
    ``<project>/outputs``), so a ``smoke`` or ``paper`` batch never touches the gallery.
    """
    if profile in GALLERY:
        folder = project_root() / "figures" / notebook
        return folder / GALLERY[profile] if GALLERY[profile] else folder
    return (Path(outputs) if outputs is not None else default_outputs()) / profile / "figures" / notebook


def default_results_dir(notebook: str, profile: str) -> Path:
    """The committed results of a notebook at a profile: ``results/<notebook>/<profile>`` (written
    when its figures go to the gallery; :meth:`kdutils.NotebookContext.save_results`)."""
    return project_root() / "results" / notebook / profile


def encode_predictions(pred) -> str:
    """The predicted class per test image as compact text: base64 of zlib of one byte per image
    (classes 0..255), or of two bytes behind a ``u16:`` prefix (up to 65,535 classes: ImageNet)."""
    a = np.asarray(pred)
    if a.ndim != 1 or (a.size and (a.min() < 0 or a.max() > 65535)):
        raise ValueError(f"predictions must be one class index in 0..65535 per image, got shape {a.shape}")
    wide = bool(a.size) and a.max() > 255
    raw = a.astype("<u2" if wide else np.uint8).tobytes()
    return ("u16:" if wide else "") + base64.b64encode(zlib.compress(raw, 9)).decode("ascii")


def decode_predictions(text: str) -> np.ndarray:
    """The inverse of :func:`encode_predictions`: an ``int64`` array, one class per image."""
    wide = text.startswith("u16:")
    raw = zlib.decompress(base64.b64decode(text[4:] if wide else text))
    return np.frombuffer(raw, dtype="<u2" if wide else np.uint8).astype(np.int64)


def encode_values(values) -> str:
    """Per-image values in [0, 1] that are not 0/1 (a confidence gap) as compact text: ``f32:`` and
    base64 of zlib of one little-endian float32 per image; :func:`decode_record` reads it back."""
    a = np.asarray(values, dtype="<f4")
    if a.ndim != 1:
        raise ValueError(f"values must be one number per image, got shape {a.shape}")
    return "f32:" + base64.b64encode(zlib.compress(a.tobytes(), 9)).decode("ascii")


def decode_record(text: str) -> np.ndarray:
    """A per-image record as numbers: :func:`encode_values`' text as ``float64`` (from float32), anything
    else as :func:`decode_predictions` (0/1 records and classes, ``int64``)."""
    if text.startswith("f32:"):
        return np.frombuffer(zlib.decompress(base64.b64decode(text[4:])), dtype="<f4").astype(np.float64)
    return decode_predictions(text)


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_json_default)


def _json_default(o: Any) -> Any:
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


_UMASK = os.umask(0o022)  # read once (setting it is the only way to read it), then put back
os.umask(_UMASK)


def _atomic_write(path: Path, data: bytes | memoryview) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    An ``OSError`` on the way (the folder cannot be created, no space left, read-only file
    system, permission denied) ends as one :class:`~kdutils.errors.StorageError` naming the
    cause, the path and the fix; the old file, if any, is left as it was.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        if hasattr(os, "fchmod"):  # mkstemp makes 0600; a written file gets the usual mode (umask)
            os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise storage_error(exc, path) from exc
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


_NO_SPACE = (errno.ENOSPC, getattr(errno, "EDQUOT", -1))
_CAUSES = {errno.EROFS: "read-only file system", errno.EACCES: "permission denied", errno.EPERM: "permission denied"}


def storage_error(exc: OSError, path: Path) -> StorageError:
    """The one-line :class:`StorageError` for an ``OSError`` raised while writing ``path``:
    ``cannot write <path>: <cause>; <fix>``."""
    if isinstance(exc, StorageError):
        return exc
    code = exc.errno
    if code in _NO_SPACE:
        msg = f"no space left on the device; free some space there, or {_elsewhere(path, 'with room')}"
    elif code in _CAUSES:
        msg = f"{_CAUSES[code]}; {_elsewhere(path, 'you can write to')}"
    elif code in (errno.ENOTDIR, errno.EEXIST):  # a folder of the path is a regular file
        file = next((p for p in [path, *path.parents] if p.is_file()), None)
        what = f"{file} is a file, not a folder" if file is not None else "a part of the path is a file, not a folder"
        msg = f"{what}; {_elsewhere(path, 'you can write to')}"
    else:
        msg = f"{exc.strerror or exc} (errno {code})"
    return StorageError(f"cannot write {path}: {msg}", errno=code, path=str(path))


def _elsewhere(path: Path, which: str) -> str:
    """Where to write instead: the environment variable that moves the folder ``path`` is in."""

    def under(root: Path) -> bool:
        try:
            path.resolve().relative_to(root.resolve())
            return True
        except (ValueError, OSError):
            return False

    if under(default_runs_root()):
        return f"point KD_RUNS_ROOT at a folder {which} (the run store, now {default_runs_root()})"
    if under(data_root()):
        return f"point KD_DATA_ROOT at a folder {which} (the dataset root, now {data_root()})"
    return (
        f"write to a folder {which}: KD_RUNS_ROOT moves the run store, KD_DATA_ROOT the dataset root, "
        "output_dir / figures_dir (or --out / --figures) the results and figures"
    )


def atomic_write_bytes(data: bytes, path: Path) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`_atomic_write`)."""
    _atomic_write(path, data)


def atomic_torch_save(obj: Any, path: Path) -> None:
    # serialised in memory first: torch's own writer turns a failed write (a full disk) into a
    # RuntimeError without the errno; written here, the OSError keeps it
    buf = io.BytesIO()
    torch.save(obj, buf)
    _atomic_write(path, buf.getbuffer())


def read_tensors(path: Path) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU; any failure (a truncated file, a pickle
    that names a global outside torch's allow-list) is a :class:`CorruptRecordError`. The one way
    kdutils reads the ``.pt`` files it wrote (run store, dataset cache)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, a pickle that is not plain data, ...
        msg = " ".join(str(exc).split())
        if isinstance(exc, pickle.UnpicklingError) or "weights_only" in msg.lower() or "Weights only" in msg:
            msg = f"not plain tensors and values, so not loaded (a pickle that could run code is never executed): {msg[:300]}"
        raise CorruptRecordError(f"{path}: {type(exc).__name__}: {msg}") from exc


def atomic_write_json(obj: Any, path: Path) -> None:
    _atomic_write(path, json.dumps(obj, indent=1, sort_keys=True, default=_json_default).encode())
