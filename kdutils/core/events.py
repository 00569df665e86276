"""What a notebook is doing, streamed to the terminal of ``python -m kdutils run``.

A batch executes each notebook in a Jupyter kernel; what the kernel prints lands in the
executed copy, not in the terminal. So the batch sets ``KD_EVENTS`` to a file, the kernel
inherits it, and kdutils appends one line per event there:

* a run starts training (or resumes from a checkpoint), and each of its epochs ends;
* a warning is shown (a corrupt record set aside, a dataset cache rebuilt, ...).

The batch reads the file as it grows and prints each line (:func:`follow`). Without
``KD_EVENTS`` (JupyterLab, the tests, a script) :func:`emit` does nothing. Lines are appended
with one ``write`` each, so two kernels can share a file without mixing their lines.
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path

__all__ = ["ENV", "emit", "enabled", "install_warning_hook", "follow"]

#: the environment variable naming the events file
ENV = "KD_EVENTS"


def enabled() -> bool:
    return bool(os.environ.get(ENV))


def emit(text: str) -> None:
    """Append one line to the events file, if the batch asked for one; never raises."""
    path = os.environ.get(ENV)
    if not path:
        return
    line = (" ".join(str(text).split()) + "\n").encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
    except OSError:  # progress reporting must never stop a run
        pass


_installed = False


def install_warning_hook() -> None:
    """Also send every warning shown in this process to the events file (once per process)."""
    global _installed
    if _installed or not enabled():
        return
    shown = warnings.showwarning

    def showwarning(message, category, filename, lineno, file=None, line=None):
        emit(f"WARNING {category.__name__}: {message}")
        shown(message, category, filename, lineno, file, line)

    warnings.showwarning = showwarning
    _installed = True


class follow:
    """Print each line appended to ``path`` while the ``with`` block runs (a background thread).

    ``out(line)`` receives each complete line without its newline; the lines written before the
    block ends are all delivered when it exits.
    """

    def __init__(self, path: Path, out: Callable[[str], None], interval: float = 0.2):
        self.path, self.out, self.interval = Path(path), out, interval
        self._stop = threading.Event()
        self._pos = 0
        self._rest = b""
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _read(self) -> None:
        try:
            with open(self.path, "rb") as f:
                f.seek(self._pos)
                data = f.read()
        except FileNotFoundError:
            return
        self._pos += len(data)
        *lines, self._rest = (self._rest + data).split(b"\n")
        for raw in lines:
            self.out(raw.decode(errors="replace"))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._read()

    def __enter__(self) -> follow:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        time.sleep(0)  # the kernel's last writes are on disk: one more read delivers them
        self._read()
