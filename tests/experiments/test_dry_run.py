"""The dry run: one switch that keeps a profile's shapes and cuts its sizes (kdutils.profiles.DRY_RUN),
the trainer's cap on batches per epoch, and a CIFAR-100-shaped folder that the paper profile loads."""

import time

import pytest
import torch

import kdutils as kd
from kdutils.data import Batches, load_dataset, make_split
from kdutils.profiles import DRY_RUN, DRY_RUN_ENV
from kdutils.testing import make_fake_cifar100
from kdutils.train import fit


@pytest.mark.parametrize("dataset", ["cifar100", "fashion_mnist", "cifar10"])
def test_dry_run_keeps_papers_shapes_and_cuts_its_sizes(dataset):
    paper, dry = kd.configure("paper", dataset), kd.configure("paper", dataset, dry_run=True)
    assert not paper.dry_run and dry.dry_run
    assert (dry.teacher_model, dry.student_model) == (paper.teacher_model, paper.student_model)
    assert dry.epsilons == paper.epsilons and dry.ablation_teachers == paper.ablation_teachers
    for p, d in ((paper.teacher_recipe, dry.teacher_recipe), (paper.student_recipe, dry.student_recipe)):
        for k in (
            "optimizer",
            "lr",
            "momentum",
            "weight_decay",
            "schedule",
            "gamma",
            "augment",
            "batch_size",
            "drop_last",
            "crop_padding",
            "flip",
        ):
            assert getattr(d, k) == getattr(p, k), k
        assert d.epochs == DRY_RUN["epochs"] < p.epochs
        assert p.max_steps_per_epoch is None and d.max_steps_per_epoch == DRY_RUN["max_steps_per_epoch"]
        assert len(d.milestones) <= len(p.milestones) and all(1 <= m <= d.epochs for m in d.milestones)
    assert len(dry.seeds) == DRY_RUN["seeds"] < len(paper.seeds)
    assert paper.train_subset is None and dry.train_subset == DRY_RUN["train_subset"]
    assert dry.test_subset == DRY_RUN["test_subset"] and dry.val_subset == DRY_RUN["val_subset"]
    assert dry.attack_samples < paper.attack_samples and dry.pgd_steps < paper.pgd_steps


def test_crd_step_schedule_still_decays_inside_the_dry_run():
    r = kd.configure("paper", "cifar100", dry_run=True).student_recipe
    assert kd.configure("paper", "cifar100").student_recipe.milestones == (150, 180, 210)
    assert r.schedule == "step" and r.milestones == (1, 2)  # 150/180/210 of 240 -> 1/2/2 of 2


def test_explicit_overrides_win_over_the_dry_runs_sizes_and_env_switch(monkeypatch):
    s = kd.configure("paper", "cifar100", dry_run=True, seeds=1, epochs=3, train_subset=500, max_steps_per_epoch=1)
    assert s.seeds == (0,) and s.student_recipe.epochs == 3 and s.train_subset == 500
    assert s.student_recipe.max_steps_per_epoch == 1 and s.teacher_recipe.epochs == DRY_RUN["epochs"]
    monkeypatch.setenv(DRY_RUN_ENV, "1")
    assert kd.configure("paper", "cifar100").dry_run
    assert not kd.configure("paper", "cifar100", dry_run=False).dry_run  # the argument wins over the environment
    monkeypatch.setenv(DRY_RUN_ENV, "0")
    assert not kd.configure("paper", "cifar100").dry_run
    with pytest.raises(kd.ParameterError, match="dry_run"):
        kd.configure("paper", "cifar100", dry_run="yes")
    kd.check_parameters(overrides={"dry_run": True, "max_steps_per_epoch": 2})  # valid notebook overrides


def test_dry_run_recipes_get_their_own_run_keys_and_paper_keys_do_not_change():
    paper = kd.configure("paper", "cifar100").student_recipe
    assert "max_steps_per_epoch" not in paper.to_dict()  # runs stored before the field keep their keys
    assert paper.replace(max_steps_per_epoch=2).to_dict()["max_steps_per_epoch"] == 2
    with pytest.raises(ValueError, match="max_steps_per_epoch"):
        paper.replace(max_steps_per_epoch=0)


def test_batches_cap_and_fit_runs_at_most_that_many_steps(digits_split):
    full = Batches(digits_split.train_x, digits_split.train_y, 64, shuffle=True)
    capped = Batches(digits_split.train_x, digits_split.train_y, 64, shuffle=True, max_batches=3)
    assert len(full) > 3 and len(capped) == 3 == len(list(capped))
    recipe = kd.Recipe(epochs=2, batch_size=64, max_steps_per_epoch=3, schedule="step", milestones=(1,), lr=1e-2)
    torch.manual_seed(0)
    net = kd.create_model("mlp", 10, 1, input_size=8, hidden=16)
    res = fit(net, digits_split, kd.create_method("ce"), recipe, progress=False)
    assert [h["sample_epochs"] for h in res.history] == [3 * 64, 3 * 64]
    assert int(res.participation.sum()) == 2 * 3 * 64
    assert res.history[0]["lr"] == pytest.approx(1e-2) and res.history[1]["lr"] == pytest.approx(1e-3)


def test_fake_cifar100_has_torchvisions_layout_and_loads(tmp_path):
    root = make_fake_cifar100(tmp_path, per_class=3, test_per_class=1)
    assert sorted(p.name for p in (root / "cifar-100-python").iterdir()) == ["meta", "test", "train"]
    data = load_dataset("cifar100", root, cache=False)
    assert data.num_classes == 100 and data.train_x.shape == (300, 3, 32, 32) and data.test_x.shape == (100, 3, 32, 32)
    assert data.train_x.dtype == torch.uint8 and sorted(set(data.train_y.tolist())) == list(range(100))
    assert data.classes[0] == "class_00"


def test_a_malformed_cifar_file_is_reported_with_its_path(tmp_path):
    root = make_fake_cifar100(tmp_path, per_class=1, test_per_class=1)
    (root / "cifar-100-python" / "test").write_bytes(b"not a pickle")
    with pytest.raises(kd.DatasetMissingError, match="cifar-100-python/test"):
        load_dataset("cifar100", root, cache=False)


def test_paper_dry_run_trains_resnet8x4_with_its_teacher_on_fake_cifar100(tmp_path):
    """The paper profile's CIFAR-100 shapes end to end on the CPU: the CRD recipe (SGD, step schedule,
    crop + flip, drop_last, batch 64), resnet8x4 taught per batch by resnet32x4 (untrained here: the
    teacher's own training is the same loop), one batch per epoch, two epochs."""
    root = make_fake_cifar100(tmp_path, per_class=12, test_per_class=1)  # 12: one per class held out
    st = kd.configure("paper", "cifar100", dry_run=True, max_steps_per_epoch=1, device="cpu")
    assert (st.teacher_model, st.student_model) == ("resnet32x4", "resnet8x4")
    split = make_split(
        load_dataset("cifar100", root),
        val_fraction=st.val_fraction,
        train_subset=st.train_subset,
        test_subset=st.test_subset,
        val_subset=st.val_subset,
    )
    assert split.num_classes == 100 and len(split.train_y) == st.train_subset
    make = lambda name: kd.create_model(name, 100, 3, input_size=32, mean=split.mean, std=split.std)  # noqa: E731
    torch.manual_seed(0)
    teacher, student = make(st.teacher_model), make(st.student_model)
    recipe = st.student_recipe
    assert recipe.teacher_per_batch  # augmentation: the teacher runs on every batch, as at paper
    t0 = time.perf_counter()
    res = fit(student, split, kd.create_method("kd"), recipe, teacher=teacher, device="cpu", progress=False)
    seconds = time.perf_counter() - t0
    assert [h["sample_epochs"] for h in res.history] == [64, 64]
    assert int(res.teacher_forwards.sum()) == 2 * 64
    assert [h["lr"] for h in res.history] == pytest.approx([0.05, 0.005])  # the step schedule decayed
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in res.history)
    assert seconds < 120, f"{seconds:.0f} s"  # a few seconds on a quiet CPU; loose for loaded CI machines


def test_a_notebooks_own_sizes_are_cut_too_but_the_users_overrides_win(tmp_path, monkeypatch):
    """faithful_setup's paper sizes (PGD 20 steps, 10 inside training) are the notebook's, not the
    user's: a dry run cuts them like the profile's (found by the paper dry run of notebook 04)."""
    from kdutils import faithful_setup
    from kdutils.profiles import cut_to_dry_run
    from kdutils.profiles import merged_sizes as _merged

    own = faithful_setup.sizes("paper", "cifar10")
    assert own["pgd_steps"] == 20 and own["train_pgd_steps"] == 10
    cut = cut_to_dry_run({**own, "train_subset": None, "teacher_epochs": 160})
    assert cut["pgd_steps"] == DRY_RUN["pgd_steps"] and cut["train_pgd_steps"] == DRY_RUN["train_pgd_steps"]
    assert cut["train_subset"] == DRY_RUN["train_subset"] and cut["teacher_epochs"] == DRY_RUN["epochs"]
    assert cut["teacher_model"] == own["teacher_model"] and cut["faithful_eps"] == own["faithful_eps"]
    merged = _merged(faithful_setup.sizes, "paper", "cifar10", {"dry_run": True, "pgd_steps": 5})
    st = kd.configure("paper", "cifar10", **merged)
    assert st.dry_run and st.pgd_steps == 5 and st.train_pgd_steps == DRY_RUN["train_pgd_steps"]  # the user's 5 wins
    assert _merged(faithful_setup.sizes, "paper", "cifar10", {})["pgd_steps"] == 20  # no dry run: untouched
    monkeypatch.setenv(DRY_RUN_ENV, "1")
    assert _merged(faithful_setup.sizes, "paper", "cifar10", {})["pgd_steps"] == DRY_RUN["pgd_steps"]
    assert kd.configure("paper", "cifar10").train_pgd_steps == DRY_RUN["train_pgd_steps"]
