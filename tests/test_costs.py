"""The cost estimate (kdutils.costs): FLOPs counting, the notebooks' plans against the notebooks
themselves, monotonicity, the per-notebook table and its error for an unknown notebook."""

import json
from pathlib import Path

import pytest
import torch.nn as nn

import kdutils as kd
from kdutils import costs

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


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
    assert {"00_kd_baseline", "01_cckd", "02_cmkd", "03_self_regulated"} <= set(t.notebook)
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


def _literal(spec) -> str:
    """A method spec as the notebook writes it: "kd" or {"name": "cmkd", "intra": False}."""
    if isinstance(spec, dict):
        return "{" + ", ".join(f"{_literal(k)}: {_literal(v)}" for k, v in spec.items()) + "}"
    return f'"{spec}"' if isinstance(spec, str) else repr(spec)


@pytest.mark.parametrize("name", sorted(costs.NOTEBOOK_PLANS))
def test_plans_mirror_the_notebooks(name):
    if not (NOTEBOOKS / f"{name}.ipynb").exists():
        pytest.skip(f"{name}.ipynb is not on this branch")
    source, params = _notebook(name)
    plan = costs.NOTEBOOK_PLANS[name]
    for label, spec in plan.labels.items():
        assert f'"{label}' in source or label in source, f"{name}: label {label!r} is not in the notebook"
        if spec is not None:
            assert _literal(spec) in source, f"{name}: {label!r} is not {_literal(spec)} in the notebook"
    for k, v in plan.parameters.items():
        assert k in params, f"{name}: the plan assumes a parameter {k!r} the notebook does not have"
        assert params[k] == v, f"{name}: parameter {k} is {params[k]!r} in the notebook, {v!r} in kdutils.costs"


def test_readme_shows_the_current_table():
    """The README's cost table is benchmarks/paper_cost.py's output: regenerate it when a plan changes."""
    readme = (NOTEBOOKS.parent / "README.md").read_text()
    assert costs.markdown_table() in readme, "README.md's paper cost table is stale: run benchmarks/paper_cost.py"
