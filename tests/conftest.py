"""Shared test set-up: quiet progress bars, a private data root and run store per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ["KD_OFFLINE"] = "1"  # tests never download
os.environ.setdefault("KD_EXECUTOR", "serial")  # in-process unless a test names an executor


@pytest.fixture(scope="session", autouse=True)
def _isolated_roots(tmp_path_factory):
    """Runs go to a temporary store; the data root stays the project's (digits needs none)."""
    runs = tmp_path_factory.mktemp("runs")
    old = os.environ.get("KD_RUNS_ROOT")
    os.environ["KD_RUNS_ROOT"] = str(runs)
    yield
    if old is None:
        os.environ.pop("KD_RUNS_ROOT", None)
    else:
        os.environ["KD_RUNS_ROOT"] = old


@pytest.fixture(autouse=True)
def _one_thread():
    """Bit-reproducible CPU numbers do not depend on it, but small ops run faster on one thread."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def digits_split():
    import kdutils as kd

    return kd.make_split(kd.load_dataset("digits"), val_fraction=0.1)


@pytest.fixture
def store(tmp_path):
    import kdutils as kd

    return kd.RunStore(tmp_path / "runs")


def project_root() -> Path:
    return Path(__file__).resolve().parent.parent
