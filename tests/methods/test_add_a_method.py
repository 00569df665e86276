"""Adding a method is one file: a copy of the package gets ``kdutils/methods/toy_kd.py`` and
nothing else, and the new method is in the registry, in the cost plan, in notebook 06's
leaderboard (its rows and its plan) and trains at smoke.

The file is the README's "Adding a method" example (kept equal by the test below).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: the whole method: a pure loss, its class, what a step costs beyond the trained pass
TOY = '''\
"""A toy method: KD whose student also sees one extra clean forward per step (for the cost plan)."""

from dataclasses import dataclass

from ..numerics import losses
from .base import TRAIN_FACTOR, Batch, Method, Terms, register_method


def toy_loss(z_s, z_t, y, tau: float = 2.0):
    """``l_i = CE(y_i, z_S) + tau^2 KL(p_T || p_S)`` per sample (Hinton et al. 2015, unit weights).

    Usage: ``toy_loss(student_logits, teacher_logits, labels).mean()``."""
    return losses.cross_entropy(z_s, y) + losses.kd_kl(z_s, z_t, tau)


@register_method("toy_kd")
@dataclass
class ToyKD(Method):
    tau: float = 2.0

    def passes(self) -> tuple[float, float]:
        return TRAIN_FACTOR, 0.0  # one more trained forward of the student per step

    def __call__(self, b: Batch) -> Terms:
        return Terms(per_sample=toy_loss(b.logits, b.teacher_logits, b.y, self.tau))
'''

CHECK = """
import kdutils as kd
from kdutils import costs
assert "toy_kd" in kd.method_names(), kd.method_names()
toy = costs.run_flops("lenet5_half", "toy_kd", 2, "mnist", "lenet5")
plain = costs.run_flops("lenet5_half", "kd", 2, "mnist", "lenet5")
assert toy > plain, (toy, plain)
exp = kd.Experiment(kd.configure("smoke", teacher_epochs=1, epochs=1, progress=False, device="cpu"))
run = exp.student("toy_kd", seed=0, teacher=exp.teacher())
assert not run.reused and len(run.history) == 1 and run.config["method"] == {"name": "toy_kd", "tau": 2.0}
# notebook 06 lists it as a row of its own, with its defaults, and plans its runs: no edit there
from kdutils.papers import comparison
assert "toy_kd" in comparison.arms(), list(comparison.arms())
st = kd.configure("smoke")
assert {r.label for r in comparison.plan(st)} >= {"toy_kd"}
assert "toy_kd" in set(comparison.entries_frame().label)
print("toy_kd ok", round(toy / plain, 3))
"""


def test_a_method_is_one_file(tmp_path):
    pkg = tmp_path / "src" / "kdutils"
    shutil.copytree(ROOT / "kdutils", pkg, ignore=shutil.ignore_patterns("__pycache__"))
    (pkg / "methods" / "toy_kd.py").write_text(TOY)
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "src"), "KD_RUNS_ROOT": str(tmp_path / "runs")}
    r = subprocess.run(
        [sys.executable, "-c", CHECK], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "toy_kd ok" in r.stdout


def test_the_readme_shows_that_file():
    readme = (ROOT / "README.md").read_text()
    assert f"```python\n{TOY}```" in readme, "the README's method file is not TOY"
