"""Shared test set-up: quiet progress bars, one run store per test session, tests spread over the cores.

The suite runs under pytest-xdist (``-n auto`` in pyproject.toml: one worker per core, at most 8;
``-n 0`` runs it in one process). Parallelism is across tests, as it is across runs in kdutils:
every worker, kernel and subprocess gets one intra-op thread, so two workers on two cores do not
fight over threads (DESIGN.md's performance facts). The workers share one run store, so a
notebook test reuses the runs another worker already trained; the store's writes are atomic.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ["KD_OFFLINE"] = "1"  # tests never download
os.environ.setdefault("KD_EXECUTOR", "serial")  # in-process unless a test names an executor
# kernels, CLI subprocesses and pool workers start with one intra-op thread (torch reads it at start)
os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_xdist_auto_num_workers(config):
    """``-n auto``: one worker per core this process may use, at most 8 (the notebook tests are the
    long ones, and there are few of them)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        cores = os.cpu_count() or 1
    return max(1, min(cores, 8))


def pytest_collection_modifyitems(config, items):
    """The long tests (papermill) first, so that the workers start them early and the short ones
    fill the gaps (with ``--dist worksteal``)."""
    items.sort(key=lambda item: item.get_closest_marker("notebook") is None)


@pytest.fixture(scope="session", autouse=True)
def _isolated_roots(tmp_path_factory):
    """Runs go to a temporary store, one per session (shared by the xdist workers); the data root
    stays the project's (digits needs none)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):  # basetemp is <session>/popen-gwN: share <session>/runs
        runs = tmp_path_factory.getbasetemp().parent / "runs"
        runs.mkdir(exist_ok=True)
    else:
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
