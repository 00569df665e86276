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

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))

#: per notebook: the figures it must write and what its results must show
EXPECT = {
    "00_kd_baseline": {
        "figures": [f"{f}_digits" for f in kd.papers.paper("00_kd_baseline").FIGURES],
        "methods": ["teacher", "student alone", "KD"],
    },
    "01_cckd": {
        "figures": [
            f"{f}_digits"
            for f in ("accuracy", "sr_usage", "retention", "robustness", "robust_margin", "reliability", "ablations")
        ],
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
        ],
    },
    "02_cmkd": {
        "figures": [
            f"{f}_digits"
            for f in ("accuracy", "ablations", "rank_agreement", "stronger_teacher", "robustness", "reliability")
        ],
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
            "CMKD, difficulty at tau",
            "KD+CMKD",
            "CCKD-L",
            "CCKD-L+CMKD",
            *(f"{m} | teacher {t}" for m in ("KD", "DIST", "CMKD") for t in ("lenet5_half", "lenet5", "lenet5_x2")),
        ],
        "one_seed": [
            "CMKD, Pearson only",
            "CMKD, Spearman only",
            "CMKD, constant weights",
            "CMKD, reversed weights",
            "CMKD, no intra-class term",
            "CMKD, difficulty at tau",
            "CCKD-L",
            "CCKD-L+CMKD",
        ],
    },
    "04_faithful": {
        "figures": [
            f"{f}_digits"
            for f in ("confidence_slice", "gap_distributions", "faithful_share", "robustness", "reliability")
        ],
        "methods": [
            "teacher",
            "KD",
            "ARD",
            "RSLAD",
            "IBP (no teacher)",
            "faithful (IBP)",
            "faithful (IBP, log term) [post hoc]",
            "faithful (PGD)",
        ],
        "metrics": [
            "certified@0.05",
            "crown_certified@0.05",
            "pgd_robust@0.05",
            "disagreement_rate",
            "disagreement_rate_teacher_correct",
            "gap_mean",
            "gap_mean_tc",
            "certified_gap_mean",
            "certified_faithful@0.1",
            "certified_gap_faithful_tc@0.1",
            "crown_gap_faithful_tc@0.1",
            "gap_faithful@0.1",
            "gap_faithful_tc@0.1",
            "certified_agreement",
            "crown_agreement_tc",
        ],
    },
    "03_self_regulated": {
        "figures": [
            f"{f}_digits"
            for f in ("significance_hist", "most_significant", "least_significant", "accuracy_vs_samples", "pruning")
        ],
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
        ],
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
        ],
        "methods": [
            "teacher",
            "student alone",
            "KD",
            "KD+LR",
            "KD+DS",
            "KD+LR+DS",
            "DIST",
            "DIST+LR",
            "RLD loss (MSE form)",
            "RLD loss (MSE form, batch mean)",
            *(
                f"KD+LR+DS | {sc}, keep {k:g}"
                for sc in ("influence", "confidence", "correct")
                for k in (0.5, 0.7, 0.9)
                if (sc, k) != ("influence", 0.7)
            ),
        ],
    },
    "06_comparison": {
        "figures": [f"{f}_digits" for f in kd.papers.paper("06_comparison").FIGURES],
        "methods": ["teacher", *kd.papers.paper("06_comparison").arms()],
        "metrics": ["train_tflop", "train_seconds", "rank_spearman_mean", "mu_s_train", "certified@0.05"],
    },
}


#: notebooks whose nbval pass re-executes on the same run store (reading every run back) instead of a
#: fresh one: 06 trains no method of its own (every row is a method of notebooks 00-05, whose nbval
#: passes retrain them from scratch), so its pass checks that its tables, verdicts and figures come
#: out the same from the stored runs, and the suite saves the minute a second training would take
NBVAL_SAME_STORE = {"06_comparison"}

#: the dataset each notebook runs at ``paper`` when none is named (its paper's benchmark)
PAPER_DATASET = {
    "00_kd_baseline": "fashion_mnist",
    "01_cckd": "fashion_mnist",
    "02_cmkd": "cifar100",
    "03_self_regulated": "fashion_mnist",
    "04_faithful": "cifar10",
    "05_label_revision": "cifar100",
    "06_comparison": "fashion_mnist",
}

#: notebook parameters of the dry-run test that cut the CIFAR-100 notebooks' grids, not their code
#: paths: on 2 CPU cores every run of the real CRD networks (ResNet-32x4 teaching per batch) takes
#: 5-10 s, and 02 trains 9 teachers and about 90 students at paper (7 min here). Every section runs;
#: the five pairs and the other models are built and stepped in tests/inputs/test_cmkd_models.py.
PAPER_DRY_RUN_PARAMETERS = {
    # 2 pairs, 2 teachers of the curve, the CCKD-L pair on one seed; the ablations (the same code as at
    # smoke, on the same models) off
    "02_cmkd": {"max_pairs": 2, "series_teachers": 2, "ablations": False, "ablation_seeds": 1},
    "05_label_revision": {"keep_sweep": [0.5], "sweep_seeds": 1},  # the sweep: 3 scorers x 1 keep ratio x 1 seed
}
#: one batch per epoch (the dry run's default is two): still two epochs, so the step schedule decays;
#: half the dry run's validation and test images; batches of 16 (the papers' 64 or 128 change no code
#: path: a batch of 16 still has rows of several classes for the batch terms, and every teacher-wrong
#: or empty-group case is tested on its own), so the CIFAR-100 networks' steps cost a quarter
PAPER_DRY_RUN_OVERRIDES = {
    "dry_run": True,
    "max_steps_per_epoch": 1,
    "val_subset": 32,
    "test_subset": 64,
    "batch_size": 16,
}


def _execute(nb: Path, tmp: Path, profile: str = "smoke", **parameters) -> tuple[Path, Path, Path]:
    import papermill as pm

    out, res, fig = tmp / nb.name, tmp / "results", tmp / "figures"
    pm.execute_notebook(
        str(nb),
        str(out),
        cwd=str(nb.parent),
        kernel_name="python3",
        progress_bar=False,
        parameters={
            "profile": profile,
            "output_dir": str(res),
            "figures_dir": str(fig),
            "progress": False,
            **parameters,
        },
    )
    return out, res, fig


def _paper_data_root(tmp: Path) -> Path:
    """A data root for the paper dry run: the project's datasets (linked, with their caches) and a
    generated CIFAR-100-shaped folder (kdutils.testing.make_fake_cifar100), since CIFAR-100
    cannot be downloaded here. Its cache stays in this folder, never in the project's."""
    from kdutils.testing import make_fake_cifar100

    src, root = kd.data_root(), tmp / "data"
    (root / "cache").mkdir(parents=True)
    for entry in src.iterdir() if src.exists() else []:
        if entry.name != "cache":
            (root / entry.name).symlink_to(entry.resolve())
    for name in ("mnist", "fashion_mnist", "cifar10"):
        if (src / "cache" / f"{name}.pt").exists():
            (root / "cache" / f"{name}.pt").symlink_to((src / "cache" / f"{name}.pt").resolve())
    make_fake_cifar100(root, per_class=12, test_per_class=2)  # 12: one per class held out for validation
    return root


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
    per_method = students.groupby("method").seed.nunique()
    one = [m for m in expect.get("one_seed", []) if m in per_method]
    assert (per_method.drop(one) == 2).all(), "smoke runs two seeds per method"
    assert (per_method[one] == 1).all(), "the ablations train on one seed at smoke (kdutils.pairs.ABLATION_SEEDS)"
    assert float(acc[acc.method == teacher].value.iloc[0]) > 0.5, "smoke teacher should be far above chance (0.1)"
    assert students.value.mean() > 0.2, "smoke students should be above chance (0.1)"
    for metric in expect.get("metrics", []):
        assert metric in set(df.metric), f"{metric} missing from results.csv"
    for name in expect["figures"]:
        p = fig / f"{name}.png"
        assert p.exists() and p.stat().st_size > 1000, f"figure {p} missing"
    assert "What we found" in out.read_text(), "the findings after the claims table (kd.claims.findings)"
    assert "*instructor:*" in out.read_text() and "no answer given yet" in out.read_text(), "the exercises"

    again = nb.stem not in NBVAL_SAME_STORE
    env = {**os.environ, "MPLBACKEND": "Agg"}
    if again:
        env["KD_RUNS_ROOT"] = str(tmp_path / "runs_again")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--nbval-lax",
            "--nbval-current-env",
            "-p",
            "no:cacheprovider",
            "-q",
            str(out),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, f"nbval re-execution differs or fails:\n{r.stdout[-4000:]}\n{r.stderr[-2000:]}"
    if again:
        assert any((tmp_path / "runs_again").iterdir()), "the re-execution should have retrained into the fresh store"


@pytest.mark.notebook
@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def test_notebook_paper_dry_run(nb, tmp_path, monkeypatch):
    """The paper profile's code paths end to end (issue 15): its dataset, models, recipes,
    schedules, augmentation and every section, with the dry run's sizes (kdutils.profiles.DRY_RUN).
    CIFAR-100 is a generated folder of the same shape; MNIST, Fashion-MNIST and CIFAR-10 are the
    project's (CI links ../shared/datasets); without them the test is skipped."""
    dataset = PAPER_DATASET[nb.stem]
    root = _paper_data_root(tmp_path)
    monkeypatch.setenv("KD_DATA_ROOT", str(root))  # the kernel inherits it
    try:
        kd.load_dataset(dataset, root)
    except kd.DatasetMissingError as exc:
        pytest.skip(f"{dataset} is not in the data root ({exc}); link ../shared/datasets as .ci/run does")
    out, res, fig = _execute(
        nb, tmp_path, profile="paper", overrides=PAPER_DRY_RUN_OVERRIDES, **PAPER_DRY_RUN_PARAMETERS.get(nb.stem, {})
    )

    df = kd.read_results(res / "results.csv")
    assert set(df["profile"]) == {"paper"} and set(df["dataset"]) == {dataset}
    acc = df[df.metric == "accuracy"]
    assert len(acc) and acc.value.between(0, 1).all()
    # the same methods as at smoke, but for the grids cut above (the stronger-teacher series, the DS sweep)
    expected = {m for m in EXPECT[nb.stem]["methods"] if " | " not in m}
    if PAPER_DRY_RUN_PARAMETERS.get(nb.stem, {}).get("ablations") is False:
        expected = {m for m in expected if not m.startswith("CMKD, ")}  # 02's ablations
    main = acc[acc.method.isin([m for m in expected if not m.startswith("teacher")])]
    assert (main.groupby("method").seed.nunique() >= 1).all()
    assert main.seed.nunique() == 2, "the dry run keeps two seeds"
    assert expected <= set(acc.method), f"missing at paper: {sorted(expected - set(acc.method))}"
    text = out.read_text()
    assert "DRY RUN" in text, "the notebook should say that it ran the dry run"
    figures = sorted(fig.glob("*.png"))
    assert len(figures) >= 3 and all(p.stat().st_size > 1000 for p in figures), figures


#: the notebooks of the batch test: two of the six, each through kd.NotebookContext like the others
#: (each of which runs above, through papermill, with its figure folder checked)
BATCH_ONLY = ["--only", "00", "--only", "04"]


def _status(clone: Path) -> str:
    """``git status`` of ``clone``, untracked files included ("" when clean)."""
    return subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"], cwd=clone, capture_output=True, text=True, check=True
    ).stdout


@pytest.mark.notebook
def test_smoke_batch_leaves_a_clone_clean(tmp_path):
    """`python -m kdutils run --profile smoke` in a fresh clone: the notebooks run, their figures
    go under outputs/smoke/figures/ (ignored), and `git status` stays clean (issue 10)."""
    if subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True).returncode != 0:
        pytest.skip("not a git checkout")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    # the clone's own kdutils in this process and in every kernel; runs shared with the tests above
    env = {**os.environ, "PYTHONPATH": str(clone), "MPLBACKEND": "Agg"}
    r = subprocess.run(
        [sys.executable, "-m", "kdutils", "run", "--profile", "smoke", *BATCH_ONLY],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert _status(clone) == "", f"a smoke batch changed the clone:\n{_status(clone)}"
    for nb in [nb for nb in NOTEBOOKS if nb.stem[:2] in BATCH_ONLY[1::2]]:
        figures = list((clone / "outputs" / "smoke" / "figures" / nb.stem).glob("*.png"))
        assert figures, f"{nb.stem}: no smoke figures under outputs/smoke/figures/"
        assert (clone / "outputs" / "smoke" / nb.name).exists()
    # the results site from these smoke outputs (issue 35): one page per executed notebook, nothing
    # loaded from outside the site, no absolute path of this machine, and the clone still clean
    pytest.importorskip("nbconvert", reason="the site extra is not installed")
    pytest.importorskip("jupyter_server_mathjax", reason="the site extra is not installed")
    r = subprocess.run(
        [sys.executable, "-m", "kdutils", "site", "--out", "site", "--executed", "outputs"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    sys.path.insert(0, str(ROOT / "tests" / "report"))
    from site_checks import static_problems

    for nb in [nb for nb in NOTEBOOKS if nb.stem[:2] in BATCH_ONLY[1::2]]:
        page = clone / "site" / "executed" / "smoke" / f"{nb.stem}.html"
        assert page.exists(), sorted(p.name for p in (clone / "site").rglob("*.html"))
        assert "injected-parameters" not in page.read_text()
    assert static_problems(clone / "site") == []
    assert _status(clone) == "", f"building the site changed the clone:\n{_status(clone)}"
