"""The ground floor: project paths and atomic file I/O (imports nothing else from kdutils).

Every file kdutils writes (run records, checkpoints, dataset caches, evaluations) goes
through :func:`atomic_torch_save` / :func:`atomic_write_json`: written to a temporary name
in the same folder, flushed to disk, then renamed into place, so a crash leaves either the
old file or the new one, never half of one.

Paths: :func:`project_root` (the checkout holding ``kdutils``), :func:`data_root`
(``$KD_DATA_ROOT`` or ``data/``), :func:`default_runs_root` (``$KD_RUNS_ROOT`` or ``runs/``).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch


def project_root() -> Path:
    """The checkout holding ``kdutils`` (where ``data/``, ``figures/``, ``runs/`` live)."""
    here = Path(__file__).resolve().parent.parent
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


def _atomic_write(path: Path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_torch_save(obj: Any, path: Path) -> None:
    _atomic_write(path, lambda f: torch.save(obj, f))


def atomic_write_json(obj: Any, path: Path) -> None:
    _atomic_write(path, lambda f: f.write(json.dumps(obj, indent=1, sort_keys=True, default=_json_default).encode()))
