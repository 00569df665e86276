"""The paper step benchmark runs (on the CPU, one step per kind) and covers every planned step."""

import importlib.util
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kdutils import costs
from kdutils.testing import make_fake_mnist

ROOT = Path(__file__).resolve().parent.parent


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_paper_step_benchmark_times_every_kind_of_notebook_00(tmp_path, capsys):
    bench = _load("bench_paper_steps")
    kinds = bench.main(
        ["--notebooks", "00", "--steps", "1", "--warmup", "1", "--device", "cpu", "--csv", str(tmp_path / "steps.csv")]
    )
    assert "error" not in kinds or kinds["error"].isna().all(), kinds.get("error")
    assert all(math.isfinite(v) and v > 0 for v in kinds["s_per_step"])
    assert all(math.isfinite(v) and v > 0 for v in kinds["floor_s_per_step"])
    assert kinds["steps"].sum() == costs.estimate("00_kd_baseline")["steps"].sum()
    t = costs.measured_hours(costs.read_step_times(tmp_path / "steps.csv"), ["00_kd_baseline"]).iloc[0]
    assert t.steps_unmeasured == 0 and t.measured_h > 0
    assert "00_kd_baseline" in capsys.readouterr().out


# ---------------------------------------------------------------- every benchmark runs, at a tiny size
#: each script in benchmarks/ with the arguments of a run of seconds, and a line its output must have;
#: bench_paper_steps runs in-process above. A new benchmark without an entry fails the coverage test.
TINY = {
    "bench_group.py": (["--students", "2", "--epochs", "1", "--dataset", "digits"], "pool / serial speed-up:"),
    "bench_kd_epoch.py": (
        ["--data-root", "{mnist}", "--train-images", "256", "--repeats", "1"],
        "kdutils overhead above the compute floor:",
    ),
    "gpu_determinism.py": (["--device", "cpu", "--steps", "1"], "lenet5_half <- lenet5, KD_DETERMINISTIC=1"),
    "paper_cost.py": ([], "Estimated, not measured."),
    # a smoke run of every notebook takes minutes: the tiny run clones and lists them
    "bench_smoke.py": (["--plan"], "would measure at smoke: 00_kd_baseline, 01_cckd"),
    "bench_paper_steps.py": None,
}


def test_every_benchmark_has_a_tiny_run():
    assert sorted(p.name for p in (ROOT / "benchmarks").glob("*.py")) == sorted(TINY)


@pytest.mark.parametrize("script", [k for k, v in TINY.items() if v is not None])
def test_benchmark_runs_at_a_tiny_size(script, tmp_path):
    args, expected = TINY[script]
    mnist = make_fake_mnist(tmp_path / "data", train=300, test=60)
    args = [a.format(mnist=mnist) for a in args]
    env = {**os.environ, "KD_DATA_ROOT": str(mnist), "KD_RUNS_ROOT": str(tmp_path / "runs")}
    r = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert expected in r.stdout, r.stdout[-3000:]
    assert "FAILED" not in r.stdout and "Traceback" not in r.stderr, r.stdout[-3000:] + r.stderr[-3000:]
