"""Data selection (DS, Lan et al. arXiv 2404.03693): scorers, keep ratio, the run key, and no
teacher forward for the rows the teacher does not supervise (counted)."""

import copy
import math

import pytest
import torch

import kdutils as kd
from kdutils.data_selection import DataSelection, influence_scores, keep_mask, last_layer_inputs
from kdutils.methods.dist import dist_intra
from kdutils.methods.kd import kd_loss


def _model(split, name="lenet5", seed=0):
    torch.manual_seed(seed)
    return kd.create_model(
        name, split.num_classes, split.in_channels, input_size=split.input_size, mean=split.mean, std=split.std
    )


class _Counter:
    """Forward hook on a teacher: the training rows it was run on, decoded from the inputs."""

    def __init__(self, model, code):
        self.rows: list[int] = []
        self.code = code  # (N, 2) the two pixels that name each training row
        model.register_forward_pre_hook(self)

    def __call__(self, module, args):
        x = (args[0][:, 0, 0, :2] * 255).round().long()  # the first two pixels of each input
        self.rows += [int((self.code == v).all(1).nonzero()[0, 0]) for v in x]


def _coded(split):
    """``split`` with every training image naming its row in its first two pixels (base 256)."""
    n = len(split.train_y)
    code = torch.stack([torch.arange(n) // 256, torch.arange(n) % 256], 1)
    x = split.train_x.clone()
    x[:, 0, 0, :2] = code.to(torch.uint8)
    return split.__class__(**{**split.__dict__, "train_x": x}), code


# --------------------------------------------------------------------------- pure parts


def test_keep_mask_keeps_the_highest_scores_and_breaks_ties_by_seed():
    s = torch.tensor([0.1, 0.9, 0.5, 0.7, 0.3])
    assert keep_mask(s, 0.6).tolist() == [False, True, True, True, False]  # round(0.6 * 5) = 3 highest
    assert keep_mask(s, 1.0).all() and int(keep_mask(s, 0.01).sum()) == 1
    ties = torch.tensor([1.0] * 6 + [0.0] * 6)
    a, b = keep_mask(ties, 0.25, seed=0), keep_mask(ties, 0.25, seed=1)
    assert int(a.sum()) == 3 and not a[6:].any() and not b[6:].any()  # the tied top group only
    assert not torch.equal(a, b) and torch.equal(a, keep_mask(ties, 0.25, seed=0))  # seeded, not by index


def test_influence_is_the_last_layer_gradient_dot_product():
    """Golden: the per-sample gradient of CE(W h + b, y) w.r.t. (W, b) by autograd, dotted with
    the mean validation gradient."""
    g = torch.Generator().manual_seed(0)
    lin = torch.nn.Linear(6, 4)
    h_tr, h_va = torch.randn(5, 6, generator=g), torch.randn(7, 6, generator=g)
    y_tr, y_va = torch.randint(0, 4, (5,), generator=g), torch.randint(0, 4, (7,), generator=g)

    def grad(h, y):
        lin.zero_grad()
        torch.nn.functional.cross_entropy(lin(h[None]), y[None]).backward()
        return torch.cat([lin.weight.grad.flatten(), lin.bias.grad]).clone()

    g_val = torch.stack([grad(h, y) for h, y in zip(h_va, y_va)]).mean(0)
    want = torch.stack([grad(h, y) @ g_val for h, y in zip(h_tr, y_tr)])
    with torch.no_grad():
        got = influence_scores(h_tr, lin(h_tr), y_tr, h_va, lin(h_va), y_va)
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-7)


def test_last_layer_inputs_are_the_head_inputs(digits_split):
    net = _model(digits_split, "mlp")
    z, h = last_layer_inputs(net, digits_split.train_x[:10])
    head = [m for m in net.modules() if isinstance(m, torch.nn.Linear)][-1]
    assert torch.allclose(head(h), z, atol=1e-5)


def test_user_errors_name_the_choices():
    run = type("R", (), {"key": "k"})()
    with pytest.raises(kd.UnknownNameError, match="confidence, correct, influence"):
        DataSelection(run, "loss")
    for bad in (0.0, -0.5, 1.2, float("nan"), "0.7"):
        with pytest.raises(ValueError, match=r"keep must be in \(0, 1\]"):
            DataSelection(run, "confidence", keep=bad)
    assert DataSelection(run, "correct", 0.5).identity() == {
        "name": "data_selection",
        "scorer": "correct",
        "keep": 0.5,
        "seed": 0,
        "scored_by": "k",
    }


# --------------------------------------------------------------------------- the trainer


@pytest.mark.parametrize("augment", [False, True], ids=["precomputed", "per_batch"])
def test_no_teacher_forward_for_unselected_rows(digits_split, augment):
    """Both teacher-logit paths run the teacher on the selected rows only, and count it."""
    split, code = _coded(digits_split)
    n, epochs = len(split.train_y), 2
    sel = keep_mask(torch.rand(n, generator=torch.Generator().manual_seed(3)), 0.6)
    teacher = _model(split, seed=1)
    seen = _Counter(teacher, code)
    # augment with no padding and no flip: the teacher runs per batch on the images themselves
    recipe = kd.Recipe(epochs=epochs, batch_size=64, augment=augment, crop_padding=0, flip=False)
    r = kd.fit(
        _model(split, "lenet5_half"),
        split,
        kd.create_method("kd+lr"),
        recipe,
        teacher=teacher,
        teacher_rows=sel,
        progress=False,
    )
    per_row = 1 if not augment else epochs  # precomputed: one pass over the selected rows
    assert sorted(seen.rows) == sorted(sel.nonzero().flatten().tolist() * per_row)
    assert torch.equal(r.teacher_forwards, sel.long() * per_row)  # the count is what the teacher did
    assert sum(h["teacher_forwards"] for h in r.history) == len(seen.rows)
    assert int(r.participation.sum()) == n * epochs  # unselected rows still learn (from labels)
    assert all(math.isfinite(h["loss"]) for h in r.history)
    assert 0.55 < r.history[0]["ds_teacher"] < 0.65


@pytest.mark.parametrize("augment", [False, True], ids=["precomputed", "per_batch"])
def test_full_keep_is_plain_distillation(digits_split, augment):
    """keep = 1 selects every row: the method runs on every whole batch, so the numbers are
    those of the plain run (by construction) and so are the teacher forwards."""
    teacher = _model(digits_split, seed=1)
    recipe = kd.Recipe(epochs=1, batch_size=128, augment=augment)
    runs = [
        kd.fit(
            _model(digits_split, "lenet5_half"),
            digits_split,
            kd.create_method("kd"),
            recipe,
            teacher=teacher,
            teacher_rows=rows,
            progress=False,
        )
        for rows in (None, torch.ones(len(digits_split.train_y), dtype=torch.bool))
    ]
    assert runs[0].history[0]["loss"] == runs[1].history[0]["loss"]
    assert torch.equal(runs[0].teacher_forwards, runs[1].teacher_forwards)


def test_unselected_rows_get_cross_entropy_and_the_rest_the_method(digits_split):
    from kdutils.methods.base import Batch
    from kdutils.train import teacher_row_terms

    g = torch.Generator().manual_seed(0)
    zs, zt, y = torch.randn(6, 10, generator=g), torch.randn(6, 10, generator=g), torch.arange(6)
    sel = torch.tensor([True, False, True, True, False, False])
    b = Batch(torch.zeros(6, 1, 2, 2), y, torch.arange(6), zs, None, 0, 1, 0, None)
    t = teacher_row_terms(kd.create_method("kd+sr"), b, sel, zt[sel])
    assert torch.allclose(t.per_sample[sel], kd_loss(zs[sel], zt[sel], y[sel]))
    assert torch.allclose(t.per_sample[~sel], kd.losses.cross_entropy(zs[~sel], y[~sel]))
    assert t.mask[~sel].all()  # the label-supervised rows take part; the SR gate applies to the others
    d = teacher_row_terms(kd.create_method("dist"), b, sel, zt[sel])  # a batch term: over the selected rows only
    everyone = torch.ones(6, dtype=torch.bool)
    assert torch.allclose(d.batch(everyone), 2.0 * dist_intra(zs[sel], zt[sel], 4.0))


# --------------------------------------------------------------------------- through an Experiment


@pytest.fixture(scope="module")
def exp_teacher(tmp_path_factory):
    st = kd.configure("smoke", "digits", teacher_epochs=1, student_epochs=1, seeds=1, progress=False, device="cpu")
    exp = kd.Experiment(st, kd.RunStore(tmp_path_factory.mktemp("ds_runs")))
    return exp, exp.teacher()


@pytest.mark.parametrize("scorer", ["influence", "confidence", "correct"])
def test_scorers_score_every_training_row(exp_teacher, scorer):
    exp, t = exp_teacher
    s = exp.selection_scores(t, scorer)
    assert s.shape == (len(exp.split.train_y),) and bool(torch.isfinite(s).all())
    z = exp.logits(t, "train")
    if scorer == "correct":
        assert torch.equal(s, (z.argmax(1) == exp.split.train_y).float())
    if scorer == "confidence":
        assert torch.allclose(s, torch.softmax(z, 1).gather(1, exp.split.train_y[:, None]).squeeze(1))


def test_ds_run_through_an_experiment(exp_teacher):
    exp, t = exp_teacher
    n = len(exp.split.train_y)
    ds = kd.DataSelection(t, "influence", keep=0.7)
    run = exp.student("kd+lr", seed=0, teacher=t, teacher_rows=ds)
    assert run.config["teacher_rows"] == ds.identity()
    mask = ds.mask(exp)
    assert int(mask.sum()) == round(0.7 * n)
    assert torch.equal(run.teacher_forwards, mask.long())  # precomputed logits: read for the selected rows only
    assert run.record["teacher_forwards"] == int(mask.sum())
    plain = exp.student("kd+lr", seed=0, teacher=t)
    assert "teacher_rows" not in plain.config and plain.key != run.key
    assert plain.record["teacher_forwards"] - run.record["teacher_forwards"] == n - int(mask.sum())  # saved
    again = exp.student("kd+lr", seed=0, teacher=t, teacher_rows=kd.DataSelection(t, "influence", keep=0.7))
    assert again.reused and torch.equal(again.teacher_forwards, run.teacher_forwards)
    other = exp.student("kd+lr", seed=0, teacher=t, teacher_rows=kd.DataSelection(t, "influence", keep=0.5))
    assert other.key != run.key
    with pytest.raises(TypeError, match="TeacherRows"):
        exp.student("kd", seed=0, teacher=t, teacher_rows=mask)
    with pytest.raises(ValueError, match="without a teacher"):
        exp.student("ce", seed=0, teacher=t, teacher_rows=ds)


def test_a_ds_job_travels_to_a_worker_as_the_teacher_key(exp_teacher):
    """Worker processes get the selection with its run as a key and rebuild the same run key."""
    from kdutils.parallel import Job, RunRef, _resolve, _strip

    exp, t = exp_teacher
    ds = kd.DataSelection(t, "confidence", keep=0.5)
    job = Job.student(exp.settings, "kd", 0, teacher=t, teacher_rows=ds)
    stripped = _strip(job.train_kwargs())
    assert stripped["teacher_rows"].teacher_run == RunRef(t.key) and ds.teacher_run is t
    back = _resolve(stripped, exp)
    assert exp.key_of(**back) == exp.key_of(**job.train_kwargs())
    exp.teacher_logits_for(job.train_kwargs())  # the scores are computed once, before the workers start
    assert (t.key, "confidence") in exp._scores
    assert "teacher_rows" not in Job.student(exp.settings, "kd", 0, teacher=t).train_kwargs()


@pytest.mark.parametrize("augment", [False, True], ids=["precomputed", "per_batch"])
def test_teacher_forward_counts_survive_a_resume(digits_split, augment):
    teacher = _model(digits_split, seed=1)
    sel = keep_mask(torch.rand(len(digits_split.train_y), generator=torch.Generator().manual_seed(5)), 0.5)
    recipe = kd.Recipe(epochs=2, batch_size=128, augment=augment)
    states = []

    def run(resume=None):
        return kd.fit(
            _model(digits_split, "lenet5_half"),
            digits_split,
            kd.create_method("kd"),
            recipe,
            teacher=teacher,
            teacher_rows=sel,
            resume=resume,
            checkpoint=lambda s: states.append(copy.deepcopy(s)),
            progress=False,
        )

    whole = run()
    resumed = run(resume=states[0])  # from the end of epoch 1
    assert torch.equal(resumed.teacher_forwards, whole.teacher_forwards)
    assert resumed.history[-1]["loss"] == whole.history[-1]["loss"]


def test_drop_order_lists_rows_as_keep_mask_drops_them():
    """The figures of the rows dropped first use the selection's own tie-break: sorting drop_order's
    rows by score (stable) is keep_mask's order reversed, ties included."""
    from kdutils.evaluation.data_selection import drop_order, keep_mask

    scores = torch.tensor([1.0, 0.0, 0.0, 2.0, 0.0, 1.0, 0.0, 3.0])
    d = drop_order(len(scores))
    first_dropped = d[torch.argsort(scores[d], stable=True)]
    for keep in (0.25, 0.5, 0.75):
        mask = keep_mask(scores, keep)
        n_drop = int((~mask).sum())
        assert set(first_dropped[:n_drop].tolist()) == set((~mask).nonzero().flatten().tolist())
