"""Every notebook at the smoke profile: papermill, assertions on its results.csv, then nbval.

The nbval pass re-executes the executed notebook against an empty run store, so every run is
trained again and the cells marked ``# NBVAL_CHECK_OUTPUT`` must print the same numbers:
that is the CPU reproducibility check.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import kdutils as kd

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))

#: per notebook: the figures it must write and what its results must show
EXPECT = {
    "00_kd_baseline": {
        "figures": [
            "sample_images",
            "teacher_curves",
            "accuracy_by_method",
            "student_curves",
            "temperature_sweep",
            "robustness",
            "reliability",
        ],  # fmt: skip
        "methods": ["teacher", "student alone", "KD"],
    },
    "01_cckd": {
        "figures": [
            f"{f}_digits"
            for f in ("accuracy", "sr_usage", "retention", "robustness", "robust_margin", "reliability", "ablations")
        ],  # fmt: skip
        "methods": [
            "teacher",
            "student alone",
            "KD",
            "CCKD-L",
            "CCKD-T",
            "CCKD-T+SR",
            "CCKD-L+SR",
            "KD+SR",
            "CCKD-T+SR, delta = p_S[y]",
            "CCKD-T+SR, delta at tau = 1",
            "CCKD-L, lambda at tau = 1",
            "CCKD-T, lambda at tau = 1",
            "CCKD-L, kd_scale = 1",
        ],  # fmt: skip
    },
    "02_cmkd": {
        "figures": [
            f"{f}_digits"
            for f in ("accuracy", "ablations", "rank_agreement", "stronger_teacher", "robustness", "reliability")
        ],  # fmt: skip
        "methods": [
            "teacher",
            "student alone",
            "KD",
            "DIST",
            "CMKD",
            "CMKD, Pearson only",
            "CMKD, Spearman only",
            "CMKD, constant weights",
            "CMKD, reversed weights",
            "CMKD, no intra-class term",
            "KD+CMKD",
            "CCKD-L",
            "CCKD-L+CMKD",
            *(f"{m} | teacher {t}" for m in ("KD", "DIST", "CMKD") for t in ("lenet5_half", "lenet5", "lenet5_x2")),
        ],  # fmt: skip
    },
    "04_faithful": {
        "figures": [
            f"{f}_digits"
            for f in ("confidence_slice", "gap_distributions", "faithful_share", "robustness", "reliability")
        ],  # fmt: skip
        "methods": ["teacher", "KD", "ARD", "RSLAD", "faithful (IBP)", "faithful (PGD)"],
        "metrics": [
            "certified@0.05",
            "pgd_robust@0.05",
            "disagreement_rate",
            "gap_mean",
            "certified_gap_mean",
            "certified_faithful@0.1",
            "gap_faithful@0.1",
            "certified_agreement",
        ],  # fmt: skip
    },
    "03_self_regulated": {
        "figures": [
            f"{f}_digits"
            for f in ("significance_hist", "most_significant", "least_significant", "accuracy_vs_samples", "pruning")
        ],  # fmt: skip
        "methods": [
            "teacher normal",
            "teacher SR (schedule)",
            "student alone",
            "KD (normal teacher)",
            "KD (SR teacher)",
            "significance-based",
            "regulated",
            "hybrid",
            *(f"KD minus {how} {k:g}" for how in ("least significant", "random") for k in (0.1, 0.3, 0.5)),
        ],  # fmt: skip
        "teacher": "teacher normal",
    },
    "05_label_revision": {
        "figures": [
            f"{f}_digits"
            for f in (
                "accuracy",
                "revised_targets",
                "teacher_wrong_accuracy",
                "keep_ratio",
                "dropped_influence",
                "dropped_confidence",
                "dropped_correct",
                "robustness",
                "reliability",
            )
        ],  # fmt: skip
        "methods": [
            "teacher",
            "student alone",
            "KD",
            "KD+LR",
            "KD+DS",
            "KD+LR+DS",
            "DIST",
            "DIST+LR",
            "KD+LR, kl form",
            *(
                f"KD+LR+DS | {sc}, keep {k:g}"
                for sc in ("influence", "confidence", "correct")
                for k in (0.5, 0.7, 0.9)
                if (sc, k) != ("influence", 0.7)
            ),
        ],  # fmt: skip
    },
}


def _execute(nb: Path, tmp: Path) -> tuple[Path, Path, Path]:
    import papermill as pm

    out, res, fig = tmp / nb.name, tmp / "results", tmp / "figures"
    pm.execute_notebook(
        str(nb), str(out), cwd=str(nb.parent), kernel_name="python3", progress_bar=False,
        parameters={"profile": "smoke", "output_dir": str(res), "figures_dir": str(fig), "progress": False},
    )  # fmt: skip
    return out, res, fig


def test_every_notebook_has_expectations():
    assert NOTEBOOKS, "no notebooks found"
    assert {nb.stem for nb in NOTEBOOKS} <= set(EXPECT), "add the new notebook to EXPECT"


@pytest.mark.notebook
@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def test_notebook_smoke_then_nbval(nb, tmp_path):
    # the session's run store (conftest): the smoke batch below reuses these runs
    out, res, fig = _execute(nb, tmp_path)
    expect = EXPECT[nb.stem]

    df = kd.read_results(res / "results.csv")
    assert set(df["notebook"]) == {nb.stem} and set(df["profile"]) == {"smoke"} and set(df["dataset"]) == {"digits"}
    acc = df[df.metric == "accuracy"]
    for m in expect["methods"]:
        assert m in set(acc.method), f"{m} missing from results.csv"
    assert acc.value.between(0, 1).all()
    teacher = expect.get("teacher", "teacher")
    students = acc[acc.method.isin([m for m in expect["methods"] if not m.startswith("teacher")])]
    assert (students.groupby("method").seed.nunique() == 2).all(), "smoke runs two seeds per method"
    assert float(acc[acc.method == teacher].value.iloc[0]) > 0.5, "smoke teacher should be far above chance (0.1)"
    assert students.value.mean() > 0.2, "smoke students should be above chance (0.1)"
    for metric in expect.get("metrics", []):
        assert metric in set(df.metric), f"{metric} missing from results.csv"
    for name in expect["figures"]:
        p = fig / f"{name}.png"
        assert p.exists() and p.stat().st_size > 1000, f"figure {p} missing"

    env = {**os.environ, "KD_RUNS_ROOT": str(tmp_path / "runs_again"), "MPLBACKEND": "Agg"}
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-p", "no:cacheprovider", "-q", str(out)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert r.returncode == 0, f"nbval re-execution differs or fails:\n{r.stdout[-4000:]}\n{r.stderr[-2000:]}"
    assert any((tmp_path / "runs_again").iterdir()), "the re-execution should have retrained into the fresh store"


@pytest.mark.notebook
def test_smoke_batch_leaves_a_clone_clean(tmp_path):
    """`python -m kdutils run --profile smoke` in a fresh clone: every notebook runs, its figures
    go under outputs/smoke/figures/ (ignored), and `git status` stays clean (issue 10)."""
    if subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True).returncode != 0:
        pytest.skip("not a git checkout")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    # the clone's own kdutils in this process and in every kernel; runs shared with the tests above
    env = {**os.environ, "PYTHONPATH": str(clone), "MPLBACKEND": "Agg"}
    r = subprocess.run(
        [sys.executable, "-m", "kdutils", "run", "--profile", "smoke"], cwd=clone, env=env,
        capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"], cwd=clone, capture_output=True, text=True, check=True
    ).stdout
    assert status == "", f"a smoke batch changed the clone:\n{status}"
    for nb in NOTEBOOKS:
        figures = list((clone / "outputs" / "smoke" / "figures" / nb.stem).glob("*.png"))
        assert figures, f"{nb.stem}: no smoke figures under outputs/smoke/figures/"
        assert (clone / "outputs" / "smoke" / nb.name).exists()
