"""One formatter for the package, its tests and the benchmarks: the configuration in pyproject.toml ([tool.ruff])."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _ruff() -> list[str] | None:
    try:
        import ruff  # noqa: F401
    except ImportError:
        return [shutil.which("ruff")] if shutil.which("ruff") else None
    return [sys.executable, "-m", "ruff"]


@pytest.mark.parametrize("args", [["format", "--check"], ["check"]], ids=["format", "lint"])
def test_package_tests_and_benchmarks_follow_the_one_formatter_config(args):
    ruff = _ruff()
    if ruff is None:
        pytest.skip("ruff is not installed (pip install -e '.[test]' brings it)")
    r = subprocess.run([*ruff, *args, "kdutils", "tests", "benchmarks"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, f"ruff {' '.join(args)} kdutils tests benchmarks:\n{r.stdout}{r.stderr}"


def test_the_formatter_is_not_switched_off_line_by_line():
    """The formatter's output is accepted (issue 37: 220 ``# fmt: skip`` markers hid hand layout); a
    few may stay where a table reads better aligned, fewer than 20 in all."""
    marker = "# fmt" + ": skip"
    n = sum(p.read_text().count(marker) for d in ("kdutils", "tests", "benchmarks") for p in (ROOT / d).rglob("*.py"))
    assert n < 20, f"{n} {marker} markers"


def test_the_training_loop_stays_short():
    """``fit`` is the one loop every method shares: its pieces (teacher logits, epoch sums, resume,
    checkpoint) live in their own functions and classes; the loop itself stays readable in one screen."""
    import ast

    tree = ast.parse((ROOT / "kdutils" / "training" / "train.py").read_text())
    fit = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "fit")
    assert fit.end_lineno - fit.lineno + 1 <= 120
