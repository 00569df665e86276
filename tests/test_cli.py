"""``python -m kdutils run``: a failing notebook ends the batch with one line, the others still run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.notebook  # starts Jupyter kernels (seconds each)


def _notebook(path: Path, cells: list[str]) -> None:
    """A tiny notebook: a parameters cell the batch fills in, then ``cells``."""
    params = 'profile = "quick"\noutput_dir = ""\nfigures_dir = ""'
    nb = {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": None,
                "metadata": {"tags": ["parameters"]},
                "outputs": [],
                "source": params,
            }
        ]
        + [{"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": c} for c in cells],
        "metadata": {
            "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path.write_text(json.dumps(nb, indent=1))


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "KD_RUNS_ROOT": str(tmp_path / "runs"), "MPLBACKEND": "Agg"}
    return subprocess.run(
        [sys.executable, "-m", "kdutils", "run", "--profile", "smoke", "--out", str(tmp_path / "out"), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


#: a notebook cell that writes a one-row results.csv where the batch asks (``output_dir``)
_WRITES_RESULTS = (
    "from pathlib import Path\n"
    "import os\n"
    "Path(output_dir).mkdir(parents=True, exist_ok=True)\n"
    "Path(output_dir, 'results.csv').write_text('notebook,profile,dataset,method,seed,metric,value\\n'\n"
    "    'x,smoke,digits,ce,0,accuracy,0.5\\n')\n"
    "Path(figures_dir).mkdir(parents=True, exist_ok=True)\n"
    "Path(figures_dir, 'f.png').write_bytes(b'png')\n"
    "print('kernel cwd', os.getcwd())"
)


def test_relative_out_and_figures_mean_the_callers_folder(tmp_path):
    """``--out x`` from a folder puts results under that folder's ``x``, not under ``notebooks/x``
    where the kernel runs; likewise ``--figures`` and ``-p output_dir=...``."""
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    _notebook(nbs / "00_writes.ipynb", [_WRITES_RESULTS])
    env = {**os.environ, "KD_RUNS_ROOT": str(tmp_path / "runs"), "MPLBACKEND": "Agg"}
    caller = tmp_path / "here"
    caller.mkdir()
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "kdutils",
            "run",
            "--profile",
            "smoke",
            "--notebooks",
            "../nbs",
            "--out",
            "x",
            "--figures",
            "figs",
        ],
        cwd=caller,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert (caller / "x" / "smoke" / "00_writes" / "results.csv").exists(), r.stdout
    assert (caller / "figs" / "00_writes" / "f.png").exists(), r.stdout
    assert "no results.csv" not in r.stdout and "50.0" in r.stdout  # the summary read it (in %)
    assert not (nbs / "x").exists() and not (nbs / "figs").exists()
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "kdutils",
            "run",
            "--profile",
            "smoke",
            "--notebooks",
            "../nbs",
            "--out",
            "x",
            "-p",
            "output_dir=mine",
        ],
        cwd=caller,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert (caller / "mine" / "results.csv").exists(), r.stdout + r.stderr
    assert not (nbs / "mine").exists()


def test_absolute_paths_of_parameters(tmp_path, monkeypatch):
    from kdutils.__main__ import absolute_paths

    monkeypatch.chdir(tmp_path)
    got = absolute_paths(
        {
            "output_dir": "o",
            "figures_dir": "/abs",
            "cache_dir": "c",
            "datasets": ["digits", "image_folder:imgs"],
            "dataset": "image_folder:~/p",
            "seeds": [0, 1],
            "output_dir2": "k",
        }
    )
    assert got["output_dir"] == str(tmp_path / "o") and got["figures_dir"] == "/abs"
    assert got["cache_dir"] == str(tmp_path / "c")
    assert got["datasets"] == ["digits", f"image_folder:{tmp_path / 'imgs'}"]
    assert got["dataset"] == "image_folder:" + str(Path("~/p").expanduser())
    assert got["seeds"] == [0, 1] and got["output_dir2"] == "k"


def test_a_notebook_that_writes_no_results_fails_the_batch(tmp_path):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    _notebook(nbs / "00_silent.ipynb", ["print('ran, wrote nothing')"])
    r = _run(tmp_path, "--notebooks", str(nbs))
    out = tmp_path / "out" / "smoke"
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stdout.strip().splitlines()[-1] == (
        f"FAILED 00_silent, after its last cell: it wrote no {out / '00_silent' / 'results.csv'} "
        f"(executed copy: {out / '00_silent.ipynb'})"
    ), r.stdout


def test_failing_notebook_ends_with_one_line_and_the_batch_goes_on(tmp_path):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    _notebook(nbs / "00_fails.ipynb", ["x = 1", "float('abc'[0])"])
    _notebook(nbs / "01_works.ipynb", [_WRITES_RESULTS])
    r = _run(tmp_path, "--notebooks", str(nbs))
    out = tmp_path / "out" / "smoke"
    lines = r.stdout.strip().splitlines()
    assert r.returncode == 1, r.stdout + r.stderr
    assert lines[-1] == (
        f"FAILED 00_fails, cell 3 (In [4]): ValueError: could not convert string to float: 'a' "
        f"(executed copy: {out / '00_fails.ipynb'})"
    ), r.stdout
    assert (out / "01_works.ipynb").exists() and "01_works: " in r.stdout  # the batch went on
    assert "Traceback" not in r.stdout + r.stderr
    assert "without encryption" not in r.stderr, r.stderr


def test_wrong_parameter_type_stops_in_the_setup_cell(tmp_path):
    r = _run(tmp_path, "--only", "00", "-p", "temperatures=abc")
    assert r.returncode == 1, r.stdout + r.stderr
    last = r.stdout.strip().splitlines()[-1]
    assert last.startswith(
        "FAILED 00_kd_baseline, cell 3 (In [3]): ParameterError: parameter temperatures = 'abc' (str): "
        "expected a non-empty list of positive numbers, e.g. [1.0, 2.0, 4.0] (executed copy: "
    ), last
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir()), "nothing should have trained"


def test_terminal_streams_training_and_the_set_aside_warning(tmp_path):
    """What the kernel trains and warns reaches the batch's terminal, then the failure line."""
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    setup = (
        "assert progress is False, progress  # the batch turns the notebooks' progress bars off\n"
        "import kdutils as kd\n"
        "c = kd.NotebookContext('00_streams', profile='smoke', seeds=1, output_dir=output_dir, "
        "figures_dir=figures_dir, overrides={'teacher_epochs': 1, 'epochs': 1})"
    )
    train = "run = c['digits'].student('ce', seed=0)"
    corrupt = "(c['digits'].store.path(run.key) / 'record.json').write_text('{not json')"
    _notebook(nbs / "00_streams.ipynb", [setup, train, corrupt, train, "raise RuntimeError('stop here')"])
    r = _run(tmp_path, "--notebooks", str(nbs))
    out = r.stdout
    lines = out.strip().splitlines()
    assert r.returncode == 1, out + r.stderr
    training = [ln for ln in lines if "training student" in ln]
    assert len(training) == 2, out  # trained, then retrained after the record was set aside
    assert any("epoch 1/1" in ln for ln in lines), out
    warned = [ln for ln in lines if ln.strip().startswith("WARNING UserWarning: run ") and "set aside to" in ln]
    assert len(warned) == 1 and "corrupt record" in warned[0], out
    at = [i for i, ln in enumerate(lines) if "training student" in ln]
    assert at[0] < lines.index(warned[0]) < at[1], out  # streamed as it happened, between the two
    assert lines[-1].startswith("FAILED 00_streams, cell 6 (In [7]): RuntimeError: stop here (executed copy: "), out
    runs = tmp_path / "runs"
    assert len(list((runs / "_corrupt").iterdir())) == 1  # the broken record kept aside, not lost


def test_a_notebook_without_the_context_streams_its_warnings_too(tmp_path):
    """Warnings reach the batch's terminal whichever API a notebook uses (a bare Experiment here,
    as a user's own notebook would): importing kdutils under a batch installs the hook."""
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    setup = (
        "import kdutils as kd\n"
        "exp = kd.Experiment(kd.configure('smoke', teacher_epochs=1, epochs=1, progress=False, device='cpu'))"
    )
    train = "run = exp.student('ce', seed=0)"
    corrupt = "(exp.store.path(run.key) / 'record.json').write_text('{not json')"
    _notebook(nbs / "00_bare.ipynb", [setup, train, corrupt, train, _WRITES_RESULTS])
    r = _run(tmp_path, "--notebooks", str(nbs))
    assert r.returncode == 0, r.stdout + r.stderr
    warned = [ln for ln in r.stdout.splitlines() if ln.strip().startswith("WARNING UserWarning: run ")]
    assert len(warned) == 1 and "corrupt record" in warned[0] and "set aside to" in warned[0], r.stdout


def test_a_parameter_no_chosen_notebook_has_stops_the_batch_before_it_runs(tmp_path):
    r = _run(tmp_path, "--only", "01", "-p", "dataset='mnist'")
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.strip() == (
        "error: unknown parameter 'dataset' for 01_cckd; valid choices: ablations, datasets, device, figures_dir, "
        "force, output_dir, overrides, profile, progress, seeds (did you mean 'datasets'? 01_cckd takes it)"
    ), r.stderr
    assert "==" not in r.stdout and not (tmp_path / "out").exists()  # no notebook started


def test_parameters_go_to_the_notebooks_that_have_them(tmp_path):
    from kdutils.__main__ import route_parameters
    from kdutils.errors import UnknownNameError

    nbs = ROOT / "notebooks"
    chosen = [nbs / "00_kd_baseline.ipynb", nbs / "02_cmkd.ipynb"]
    routed = route_parameters({"temperatures": [1.0], "max_pairs": 1, "seeds": 2}, chosen)
    assert routed == {"00_kd_baseline": {"temperatures": [1.0], "seeds": 2}, "02_cmkd": {"max_pairs": 1, "seeds": 2}}
    with pytest.raises(
        UnknownNameError,
        match="unknown parameter 'temperature' for 00_kd_baseline, 02_cmkd; .*did you "
        "mean 'temperatures'\\? 00_kd_baseline takes it",
    ):
        route_parameters({"temperature": [1.0]}, chosen)


def test_site_without_its_extra_or_with_a_missing_folder_says_what_to_do(monkeypatch, capsys, tmp_path):
    from kdutils.__main__ import main

    assert main(["site", "--out", str(tmp_path / "s"), "--executed", str(tmp_path / "nowhere")]) == 2
    assert "no folder" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "nbconvert", None)  # as if the site extra were not installed
    assert main(["site", "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert "site' extra" in err and "pip install -e '.[site]'" in err and "Traceback" not in err
