"""The run store: every training run is a record keyed by a hash of its configuration.

Layout under the store root (``runs/`` in the project, or ``$KD_RUNS_ROOT``)::

    <root>/<key>/config.json      the full configuration (written first)
    <root>/<key>/checkpoint.pt    model + optimizer + RNG state after the last finished epoch
    <root>/<key>/model.pt         final weights            } written when training ends,
    <root>/<key>/artifacts.pt     participation counts etc. } record.json last: it marks
    <root>/<key>/record.json      history and timings      } the run finished
    <root>/<key>/eval-<name>-<hash>.json  one cached evaluation of the finished model
                                  (kdutils.evaluations: name, version and its settings hashed)
    <root>/_corrupt/<key>-<time>/ records that could not be read, set aside
    <root>/_locks/<key>.lock      held (``flock``) by the process training that run; never removed

Every file is written to a temporary name in the same folder and renamed into place,
so a crash leaves either the old file or the new one, never half of one. A write that fails
(no space left, a read-only store, permission denied) stops with one
:class:`~kdutils.errors.StorageError` line naming the cause, the path and ``KD_RUNS_ROOT``;
the finished runs already there are left as they were.

Two processes that want the same run (two notebooks sharing a store, two Jupyter tabs, two
notebooks of a GPU batch that both train the same teacher) do not both train it: training
holds the run's lock (:meth:`RunStore.claim`), and the second process waits for it, then
reuses the finished run. Without it both would train, the last one's files would win, and
what the first process had already evaluated or distilled from would belong to the other copy
(on a GPU the two copies differ). The lock is an advisory ``fcntl.flock``: the operating system
drops it when its process dies (``kill -9`` included), so an interrupted run still resumes.
Where ``fcntl`` is missing (Windows) or the file system has no ``flock``, training is not locked.
``force=True`` in two processes at once is not protected: the second discards and retrains the
run the first has just trained. Derived files (a teacher's persisted logits, data-selection
scores, cached evaluations) are written outside the lock, each atomically, from the same
finished weights.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn as nn

from ..core.errors import CorruptRecordError

try:  # POSIX; on Windows the store does not lock (see the module's docstring)
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

from ..core.io import (
    atomic_torch_save,
    atomic_write_json,
    canonical_json,
    default_runs_root,
    read_tensors,
    storage_error,
)

#: flock's errors on a file system that does not support it: the store then trains unlocked
_NO_FLOCK = {errno.ENOSYS, errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL}
_warned_no_flock: set[str] = set()


def _lock(fd: int, path: Path, root: Path, on_wait: Callable[[], None] | None) -> bool:
    """flock ``fd`` exclusively, waiting (after ``on_wait()``) if another process holds it; False
    where the file system cannot lock (warned once per store)."""
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError as exc:
        if exc.errno not in _NO_FLOCK:
            raise storage_error(exc, path) from exc
        _warn_no_flock(root, exc)
        return False
    return True


def _warn_no_flock(root: Path, exc: OSError) -> None:
    if str(root) not in _warned_no_flock:
        _warned_no_flock.add(str(root))
        warnings.warn(
            f"the run store {root} cannot lock runs ({exc.strerror}): two processes that want the same "
            f"run may both train it; keep notebooks that share runs in one process there",
            stacklevel=4,
        )


@dataclass
class Run:
    """A finished training run: its key, configuration, trained model and record."""

    key: str
    config: dict
    model: nn.Module
    record: dict
    artifacts: dict = field(default_factory=dict)
    reused: bool = False

    @property
    def history(self) -> list[dict]:
        return self.record["history"]

    @property
    def participation(self) -> torch.Tensor:
        """(N_train,) number of epochs each training sample took part in."""
        return self.artifacts["participation"]

    @property
    def teacher_forwards(self) -> torch.Tensor | None:
        """(N_train,) teacher forwards per training row made or read by this run (see
        :func:`kdutils.fit`); None for a run without a teacher or one stored before they were counted."""
        return self.artifacts.get("teacher_forwards")

    @property
    def sample_epochs(self) -> int:
        return int(self.participation.sum())

    @property
    def seconds_per_epoch(self) -> float:
        secs = [h["seconds"] for h in self.history]
        return sum(secs) / max(1, len(secs))

    def __repr__(self) -> str:
        m = self.config["method"]
        return f"Run({self.key}, {self.config['model']}, {m['name']}, seed={self.config['seed']}, reused={self.reused})"


class RunData(Protocol):
    """The narrow view of an experiment that evaluations, selections and data-selection scorers get
    (an :class:`~kdutils.experiment.Experiment` is one): its settings, split, device and run store,
    a run's logits on a split, and a teacher run's data-selection scores. They never see more, so
    they sit below the experiment layer (tests/test_layers.py)."""

    settings: Any
    split: Any
    device: torch.device
    store: RunStore

    def logits(self, run: Run, part: str = "test", *, persist: bool = False) -> torch.Tensor: ...

    def selection_scores(self, run: Run, scorer: str) -> torch.Tensor: ...


#: part of every run's identity: bump when training code changes what a run produces
CODE_VERSION = "1"


def config_key(config: dict) -> str:
    """A 16-hex-digit hash of the configuration (and the code version)."""
    blob = canonical_json({"config": config, "code_version": CODE_VERSION})
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class RunStore:
    """Finished runs, checkpoints of unfinished ones, and cached evaluations, by key."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else default_runs_root()

    def __repr__(self) -> str:
        return f"RunStore({str(self.root)!r})"

    def path(self, key: str) -> Path:
        return self.root / key

    # ---- reading, with corrupt records set aside
    def set_aside(self, key: str, reason: str) -> Path:
        """Move a run folder that cannot be trusted to ``_corrupt/`` and warn."""
        src = self.path(key)
        dst = self.root / "_corrupt" / f"{key}-{time.strftime('%Y%m%d-%H%M%S')}"
        try:
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src.exists():
                shutil.move(str(src), str(dst))
        except OSError as exc:  # a read-only or full store: one line, with the fix
            raise storage_error(exc, dst) from exc
        warnings.warn(f"run {key}: {reason}; set aside to {dst} and starting again", stacklevel=3)
        return dst

    def _read_json(self, path: Path) -> dict:
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise CorruptRecordError(f"{path}: {exc}") from exc

    def _read_torch(self, path: Path) -> Any:
        """A stored tensor file, read with ``weights_only=True``: tensors, state dicts and plain
        Python values only. A file that holds anything else (a pickle that would import or call
        code, e.g. one planted in a store shared between machines) is never executed: it fails
        here like a truncated file and its record is set aside as corrupt."""
        return read_tensors(path)

    def load_finished(self, key: str) -> dict | None:
        """The finished run (record, state_dict, artifacts), None if there is none.

        A record that exists but cannot be read is set aside (None is returned), so
        the caller retrains instead of silently using a broken model.
        """
        d = self.path(key)
        if not (d / "record.json").exists():
            return None
        try:
            record = self._read_json(d / "record.json")
            state = self._read_torch(d / "model.pt")
            artifacts = self._read_torch(d / "artifacts.pt") if (d / "artifacts.pt").exists() else {}
            if record.get("key") != key:
                raise CorruptRecordError(f"record.json names key {record.get('key')!r}")
        except CorruptRecordError as exc:
            self.set_aside(key, f"corrupt record ({exc})")
            return None
        return {"record": record, "state_dict": state, "artifacts": artifacts}

    def load_checkpoint(self, key: str) -> dict | None:
        p = self.path(key) / "checkpoint.pt"
        if not p.exists():
            return None
        try:
            return self._read_torch(p)
        except CorruptRecordError as exc:
            self.set_aside(key, f"corrupt checkpoint ({exc})")
            return None

    # ---- one trainer per run
    @contextlib.contextmanager
    def claim(self, key: str, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
        """Hold run ``key``'s lock for the block: one process trains a run at a time.

        Blocks while another process holds it, calling ``on_wait()`` once first (to say so).
        The caller re-checks :meth:`load_finished` inside the block: the other process has
        usually finished the run by then. The lock file lives in ``_locks/``, outside the run's
        folder, so :meth:`discard` cannot delete it from under its holder; lock files are never
        removed (empty files; removing one safely would race with its next user). Not
        re-entrant: a second ``claim`` of the same key in the same process waits forever. On a
        file system without ``flock`` (some network and FUSE mounts) it warns once and does not
        lock; on NFS, Linux emulates ``flock`` with POSIX locks (across nodes only with lockd).
        """
        if fcntl is None:  # pragma: no cover
            yield
            return
        path = self.root / "_locks" / f"{key}.lock"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)  # flock needs no write access
        except OSError as exc:
            raise storage_error(exc, path) from exc
        try:
            locked = _lock(fd, path, self.root, on_wait)
            try:
                yield
            finally:
                if locked:
                    fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    # ---- writing
    def begin(self, key: str, config: dict) -> None:
        atomic_write_json(config, self.path(key) / "config.json")

    def save_checkpoint(self, key: str, state: dict) -> None:
        atomic_torch_save(state, self.path(key) / "checkpoint.pt")

    def finish(self, key: str, record: dict, state_dict: dict, artifacts: dict) -> None:
        d = self.path(key)
        atomic_torch_save(state_dict, d / "model.pt")
        atomic_torch_save(artifacts, d / "artifacts.pt")
        atomic_write_json({**record, "key": key}, d / "record.json")  # last: marks the run finished
        (d / "checkpoint.pt").unlink(missing_ok=True)

    def discard(self, key: str) -> None:
        shutil.rmtree(self.path(key), ignore_errors=True)

    # ---- things derived from a finished run: cached evaluations, a teacher's logits
    def _load_derived(self, path: Path, read) -> Any:
        """Read a derived file; an unreadable one is deleted (it is recomputed), never trusted."""
        if not path.exists():
            return None
        try:
            return read(path)
        except CorruptRecordError as exc:
            warnings.warn(f"{exc}; deleting it, it will be recomputed")
            path.unlink(missing_ok=True)
            return None

    def load_eval(self, key: str, eval_key: str) -> dict | None:
        """A cached evaluation ``eval-<eval_key>.json`` (``<name>-<hash>``); None if absent or corrupt."""
        return self._load_derived(self.path(key) / f"eval-{eval_key}.json", self._read_json)

    def save_eval(self, key: str, eval_key: str, result: dict) -> None:
        atomic_write_json(result, self.path(key) / f"eval-{eval_key}.json")

    def load_tensor(self, key: str, name: str) -> torch.Tensor | None:
        return self._load_derived(self.path(key) / f"{name}.pt", self._read_torch)

    def save_tensor(self, key: str, name: str, tensor: torch.Tensor) -> None:
        atomic_torch_save(tensor, self.path(key) / f"{name}.pt")

    def keys(self) -> list[str]:
        if not self.root.exists():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("_"))
