"""The cost estimate (kdutils.costs): FLOPs counting, the notebooks' plans against the notebooks
themselves, monotonicity, the per-notebook table and its error for an unknown notebook."""

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

import kdutils as kd
from kdutils import costs, faithful_setup, ibp

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"


def test_linear_only_model_costs_two_flops_per_multiply_add():
    assert costs.forward_flops(nn.Sequential(nn.Linear(12, 7)), (12,)) == 2 * 12 * 7
    two = nn.Sequential(nn.Flatten(), nn.Linear(48, 20), nn.ReLU(), nn.Linear(20, 5))
    assert costs.forward_flops(two, (3, 4, 4)) == 2 * (48 * 20 + 20 * 5)
    d, h, c = 64, 256, 10  # the registered mlp on 8x8 digits (normalisation and ReLU are not counted)
    assert costs.forward_flops("mlp", (1, 8, 8), 10) == 2 * (d * h + h * h + h * c)
    assert costs.training_flops("mlp", (1, 8, 8), 10) == 3 * costs.forward_flops("mlp", (1, 8, 8), 10)


def test_named_models_are_counted_on_the_meta_device_like_real_ones():
    net = kd.create_model("lenet5", 10, 1, input_size=28)
    assert costs.forward_flops("lenet5", (1, 28, 28), 10) == costs.forward_flops(net, (1, 28, 28)) > 0
    # CIFAR-100 models: the teacher costs more than its student
    assert costs.forward_flops("resnet32x4", (3, 32, 32), 100) > 5 * costs.forward_flops("resnet8x4", (3, 32, 32), 100)


def test_table_has_a_row_per_notebook_with_positive_costs():
    t = costs.estimate_table()
    assert {"00_kd_baseline", "01_cckd", "02_cmkd", "03_self_regulated", "04_faithful"} <= set(t.notebook)
    assert list(t.notebook) == sorted(costs.NOTEBOOK_PLANS) and t.notebook.is_unique
    assert (t.pflops > 0).all() and (t.hours > 0).all() and (t.runs == t.teachers + t.students).all()
    assert (t.hours >= t.hours_flops).all() and (t.hours >= t.hours_steps).all()
    row = t.set_index("notebook").loc["02_cmkd"]
    assert row.datasets == "cifar100" and row.epochs == "240" and row.images_per_epoch == 45000 // 64 * 64
    md = costs.markdown_table(t)
    assert md.count("\n| `") == len(t) and "| all |" in md


def test_runs_of_notebook_00_at_paper():
    # teacher + (student alone, KD) x 5 seeds + 4 temperatures x 5 seeds, KD at tau = 4 trained once
    e = costs.estimate("00_kd_baseline")
    assert e.runs.sum() == 1 + 2 * 5 + 3 * 5
    assert set(e.dataset) == {"fashion_mnist"} and set(e.epochs[e.role != "teacher logits"]) == {100}


def test_every_notebook_has_a_plan():
    notebooks = {p.stem for p in NOTEBOOKS.glob("*.ipynb")}
    assert notebooks and notebooks <= set(costs.NOTEBOOK_PLANS), sorted(notebooks - set(costs.NOTEBOOK_PLANS))


def test_runs_of_notebook_04_at_paper():
    # the IBP teacher (ibp_large, seed 0) + (KD, ARD, RSLAD, IBP control, faithful IBP prob and log terms, PGD)
    # x 5 seeds on CIFAR-10
    e = costs.estimate("04_faithful").set_index("label")
    assert e.runs.sum() == 1 + 7 * 5 and set(e.dataset) == {"cifar10"} and set(e.epochs) == {160}
    assert e.loc["teacher", "model"] == "ibp_large" and set(e.model.drop("teacher")) == {"ibp_medium"}
    assert (e.images_per_epoch == 45000).all() and "teacher logits" not in set(e.role)  # crop + flip: per batch
    # quick: MNIST, ibp_small for all but the second teacher candidate (chosen on validation),
    # faithful (PGD) on one seed (faithful_setup.VARIANT_SEEDS)
    q = costs.estimate("04_faithful", "quick").set_index("label")
    assert set(q.dataset) == {"mnist"} and q.loc["faithful (PGD)", "runs"] == 1 and q.loc["KD", "runs"] == 3
    assert q.loc["teacher candidate ibp_medium", "model"] == "ibp_medium"
    assert set(q.model.drop("teacher candidate ibp_medium")) == {"ibp_small"}
    assert q.loc["KD", "images_per_epoch"] == 10000
    assert costs.plan_runs("04_faithful", "smoke")[0].dataset == "digits"  # no default datasets at smoke


def test_interval_pass_is_two_forwards():
    net = kd.create_model("ibp_small", 10, 1, input_size=28).eval()
    x, y = torch.rand(1, 1, 28, 28), torch.tensor([3])
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        ibp.logit_bounds(net, x, 0.1)
    assert counter.get_total_flops() == costs.IBP_PASS * costs.forward_flops(net, (1, 28, 28))
    last = 2 * 100 * 10  # the last layer's products: elided into elementwise margins, as many multiply-adds
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        ibp.worst_case_logits(net, x, 0.1, y)
    assert counter.get_total_flops() == costs.IBP_PASS * (costs.forward_flops(net, (1, 28, 28)) - last)


def test_method_passes():
    def passes(spec):
        return costs.method_passes(kd.create_method(spec).params())

    assert passes("kd") == passes("kd+sr") == passes("cmkd") == (0.0, 0.0)
    # an attack multiplies training by 1 + steps; ARD (alpha < 1) and RSLAD train the clean batch too
    assert 3 + passes({"name": "pgd_at", "steps": 7})[0] == 3 * (1 + 7)
    assert 3 + passes({"name": "ard", "alpha": 0.9, "steps": 10})[0] == 3 * (2 + 10)
    assert 3 + passes({"name": "ard", "alpha": 1.0, "steps": 10})[0] == 3 * (1 + 10)
    assert passes({"name": "rslad", "steps": 10}) == (3 * 11, 0.0)
    # IBP training: 3x plain training after the warm-up; faithful (IBP): the teacher's pass without gradient
    assert passes({"name": "ibp", "warmup": 0.0}) == (6.0, 0.0)
    assert passes({"name": "ibp", "warmup": 0.25})[0] == pytest.approx(0.75 * 6)
    assert passes({"name": "ibp", "kappa": 1.0}) == (0.0, 0.0)
    assert passes({"name": "faithful", "bound": "ibp", "warmup": 0.0}) == (6.0, 2.0)
    assert passes({"name": "faithful", "bound": "ibp", "mu": 0.0}) == (0.0, 0.0)
    pgd = passes({"name": "faithful", "bound": "pgd", "steps": 10, "warmup": 0.0})
    assert pgd == (2 * 10 * 3 + 2 + 2 * 3, 2 * 10 * 3 + 2 + 2)


def test_adversarial_and_bounded_students_of_notebook_04_cost_their_passes():
    f = costs.run_frame("04_faithful")
    flops = {lb: f[(f.label == lb) & (f.seed == 0)].flops.item() for lb in set(f.label)}
    images, s, t = 160 * 45000, *(costs.forward_flops(m, (3, 32, 32), 10) for m in ("ibp_medium", "ibp_large"))
    on = 1 - faithful_setup.ramps("paper")[0]
    assert flops["ARD"] - flops["KD"] == pytest.approx(images * 3 * 11 * s)
    assert flops["RSLAD"] == pytest.approx(flops["ARD"])
    assert flops["faithful (IBP)"] - flops["KD"] == pytest.approx(images * on * (6 * s + 2 * t))
    assert flops["faithful (PGD)"] - flops["KD"] == pytest.approx(images * on * (68 * s + 64 * t))
    assert flops["teacher"] == pytest.approx(images * (3 + on * 6) * t + 160 * 5000 * t)


def test_teacher_forwards_per_batch_with_augmentation_once_without():
    cmkd = costs.run_frame("02_cmkd")  # CRD recipe: crop + flip, the teacher on every batch
    assert "teacher logits" not in set(cmkd.role)
    alone, kd_ = (cmkd[(cmkd.label == lb) & (cmkd.seed == 0)].flops.item() for lb in ("student alone", "KD"))
    t = costs.forward_flops("resnet32x4", (3, 32, 32), 100)
    assert kd_ - alone == pytest.approx(240 * (45000 // 64 * 64) * t)
    base = costs.run_frame("00_kd_baseline")  # no augmentation: one pass of the teacher, shared
    assert (base.role == "teacher logits").sum() == 1
    sel = costs.run_frame("05_label_revision")  # DS: the teacher on 70 % of each batch
    kd_ds = sel[(sel.label == "KD+DS") & (sel.seed == 0)].flops.item()
    kd_all = sel[(sel.label == "KD") & (sel.seed == 0)].flops.item()
    assert kd_all - kd_ds == pytest.approx(0.3 * 240 * (45000 // 64 * 64) * t)


@pytest.mark.parametrize("override", [{"epochs": 50}, {"seeds": 2}, {"teacher_epochs": 20}])
def test_cost_grows_with_epochs_and_seeds(override):
    small = costs.estimate_table(["00_kd_baseline", "02_cmkd"], **override)
    paper = costs.estimate_table(["00_kd_baseline", "02_cmkd"])
    assert (small.pflops < paper.pflops).all() and (small.hours < paper.hours).all()
    assert (small.steps < paper.steps).all()


def test_dry_run_plan_is_the_same_runs_at_a_fraction_of_the_cost():
    paper, dry = costs.estimate_table(["02_cmkd"]), costs.estimate_table(["02_cmkd"], dry_run=True)
    assert dry.students.item() < paper.students.item()  # two seeds instead of five
    assert dry.steps.item() == dry.runs.item() * 2 * 2  # two epochs of two batches
    assert dry.pflops.item() < paper.pflops.item() / 1e3


def test_unknown_notebook_names_the_valid_ones():
    with pytest.raises(kd.UnknownNameError, match="unknown notebook '07_nope'; valid choices: 00_kd_baseline, 01_cckd"):
        costs.estimate("07_nope")
    with pytest.raises(kd.UnknownNameError, match="02_cmkd"):
        costs.estimate_table(["02_cmkd", "nope"])


def _notebook(name: str) -> tuple[str, dict]:
    nb = json.loads((NOTEBOOKS / f"{name}.ipynb").read_text())
    cells = [c for c in nb["cells"] if c["cell_type"] == "code"]
    params = {}
    for c in cells:
        if "parameters" in c.get("metadata", {}).get("tags", []):
            exec("".join(c["source"]), {}, params)
    return "\n".join("".join(c["source"]) for c in cells), params


@pytest.mark.parametrize("name", sorted(costs.NOTEBOOK_PLANS))
def test_plans_assume_the_notebooks_parameter_defaults(name):
    """Each plan is built by its notebook's paper module from that module's arms; the notebook
    parameters it assumes are the notebook's defaults."""
    if not (NOTEBOOKS / f"{name}.ipynb").exists():
        pytest.skip(f"{name}.ipynb is not on this branch")
    _, params = _notebook(name)
    plan = costs.NOTEBOOK_PLANS[name]
    assert kd.papers.paper(name).NOTEBOOK == name
    for k, v in plan.parameters.items():
        assert k in params, f"{name}: the plan assumes a parameter {k!r} the notebook does not have"
        assert params[k] == v, f"{name}: parameter {k} is {params[k]!r} in the notebook, {v!r} in its plan"


def test_readme_shows_the_current_table():
    """docs/costs.md's cost table (the README links it) is benchmarks/paper_cost.py's output:
    regenerate it when a plan changes."""
    page = (NOTEBOOKS.parent / "docs" / "costs.md").read_text()
    assert costs.markdown_table() in page, "docs/costs.md's paper cost table is stale: run benchmarks/paper_cost.py"


def _step_times(notebook: str, s_per_step: float) -> pd.DataFrame:
    k = costs.step_kinds(notebook)
    return k.drop_duplicates(costs.STEP_KIND)[costs.STEP_KIND].assign(s_per_step=s_per_step)


def test_measured_hours_use_each_kinds_time_and_fall_back_to_the_estimate():
    k = costs.step_kinds("00_kd_baseline")
    assert k["steps"].sum() == costs.estimate("00_kd_baseline")["steps"].sum()
    times = _step_times("00_kd_baseline", 0.01)
    t = costs.measured_hours(times, ["00_kd_baseline"]).iloc[0]
    assert t.measured_h == pytest.approx(k["steps"].sum() * 0.01 / 3600) and t.steps_unmeasured == 0
    dropped = times.iloc[1:]  # one kind without a measurement keeps the estimate's hours
    first = (costs._kind_keys(k) == costs._kind_keys(times.iloc[:1]).iloc[0]).to_numpy()
    t = costs.measured_hours(dropped, ["00_kd_baseline"]).iloc[0]
    assert t.steps_unmeasured == k.loc[first, "steps"].sum() > 0
    assert t.measured_h == pytest.approx(k.loc[~first, "steps"].sum() * 0.01 / 3600 + k.loc[first, "est_hours"].sum())


def test_kd_at_two_temperatures_is_one_kind_of_step_and_ard_is_another():
    kd4, kd1 = (json.dumps(kd.create_method("kd", tau=t).params()) for t in (4.0, 1.0))
    assert costs.step_work(kd4) == costs.step_work(kd1)
    assert costs.step_work(json.dumps(kd.create_method("ard").params())) != costs.step_work(kd4)


def test_readme_shows_the_measured_step_times_table():
    """docs/costs.md's measured-hours table is paper_cost.py --measured's output on the committed CSV."""
    times = costs.read_step_times(ROOT / costs.MEASURED_STEP_TIMES)
    assert times["s_per_step"].notna().mean() > 0.9, "the committed step times should cover the kinds"
    page = (ROOT / "docs" / "costs.md").read_text()
    assert costs.measured_markdown_table(times) in page, (
        "docs/costs.md's measured table is stale: paper_cost.py --measured"
    )


def test_notebook_04_adds_the_larger_teacher_at_full_only():
    """Compression (protocol v2): at full a large IBP teacher also distils into the small students."""
    full = costs.estimate("04_faithful", "full").set_index("label")
    assert full.loc["teacher (large)", "model"] == "ibp_large" and full.loc["KD, large teacher", "runs"] == 5
    assert full.loc["faithful (IBP), large teacher", "model"] == "ibp_small"
    quick = costs.estimate("04_faithful", "quick")
    assert "teacher (large)" not in set(quick.label)


def test_full_plans_hold_the_2x_epochs_convergence_runs():
    """At full (and paper) each notebook's plan adds the first seed of its convergence labels at
    twice the epochs; at quick there are none."""
    from kdutils.papers import label_revision

    quick = costs.plan_runs("05_label_revision", "quick", ["mnist"])
    full = costs.plan_runs("05_label_revision", "full", ["mnist"])
    assert not [r for r in quick if "2x epochs" in r.label]
    longer = [r for r in full if "2x epochs" in r.label]
    assert [r.label for r in longer] == [f"{lb} (2x epochs)" for lb in label_revision.LONGER]
    normal = {r.label: r for r in full if r.seed == longer[0].seed and r.role == "student"}
    for r in longer:
        base = normal[r.label.removesuffix(" (2x epochs)")]
        assert r.recipe.epochs == 2 * base.recipe.epochs and r.key() != base.key()
