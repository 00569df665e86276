"""The paper step benchmark runs (on the CPU, one step per kind) and covers every planned step."""

import importlib.util
import math
from pathlib import Path

from kdutils import costs

ROOT = Path(__file__).resolve().parent.parent


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_paper_step_benchmark_times_every_kind_of_notebook_00(tmp_path, capsys):
    bench = _load("bench_paper_steps")
    kinds = bench.main(["--notebooks", "00", "--steps", "1", "--warmup", "1", "--device", "cpu",
                        "--csv", str(tmp_path / "steps.csv")])  # fmt: skip
    assert "error" not in kinds or kinds["error"].isna().all(), kinds.get("error")
    assert all(math.isfinite(v) and v > 0 for v in kinds["s_per_step"])
    assert all(math.isfinite(v) and v > 0 for v in kinds["floor_s_per_step"])
    assert kinds["steps"].sum() == costs.estimate("00_kd_baseline")["steps"].sum()
    t = costs.measured_hours(costs.read_step_times(tmp_path / "steps.csv"), ["00_kd_baseline"]).iloc[0]
    assert t.steps_unmeasured == 0 and t.measured_h > 0
    assert "00_kd_baseline" in capsys.readouterr().out
