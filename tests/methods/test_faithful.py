"""Robust teachers (PGD-AT, IBP training), adversarial distillation (ARD, RSLAD), faithful
distillation and the faithfulness evaluations (faithful.md)."""

from __future__ import annotations

import copy
import io
import math

import pytest
import torch
import torch.nn.functional as F
from method_reference import Y6, ce, kl, logits

import kdutils as kd
from kdutils import losses
from kdutils.errors import ParameterError, UnknownNameError
from kdutils.methods import Batch, create_method
from kdutils.methods.faithful import faithful_gap, faithful_loss


def test_faithful_gap_and_loss_golden():
    a, b, c, d = (torch.tensor(v) for v in ([0.9, 0.2, 0.5], [0.4, 0.3, 0.5], [0.95, 0.1, 0.7], [0.8, 0.6, 0.2]))
    gap = faithful_gap(a, b, c, d)  # relu(a - b) + relu(c - d)
    torch.testing.assert_close(gap, torch.tensor([0.5 + 0.15, 0.0 + 0.0, 0.0 + 0.5]))
    zs, zt = logits(8), logits(9)
    g = torch.rand(6, generator=torch.Generator().manual_seed(0))
    want = 0.1 * ce(zs, Y6) + 0.9 * 16 * kl(zt, zs, 4.0) + 0.5 * g
    torch.testing.assert_close(faithful_loss(zs, zt, Y6, g, mu=0.5), want, rtol=1e-4, atol=1e-5)


def test_linear_ramp_start_middle_end():
    assert losses.linear_ramp(0.0, 0.1, 0.4) == 0.0
    assert losses.linear_ramp(0.0999, 0.1, 0.4) == 0.0  # warm-up
    assert losses.linear_ramp(0.3, 0.1, 0.4) == pytest.approx(0.5)
    assert losses.linear_ramp(0.5, 0.1, 0.4) == 1.0 == losses.linear_ramp(0.99, 0.1, 0.4)
    assert losses.linear_ramp(0.2, 0.1, 0.0) == 1.0  # no ramp: full after the warm-up


def test_faithful_schedule_eps_and_mu():
    m = create_method({"name": "faithful", "eps": 0.1, "mu": 2.0, "warmup": 0.0, "ramp": 0.5})
    assert m.schedule(0.0) == (0.0, 0.0)
    eps, mu = m.schedule(0.25)
    assert eps == pytest.approx(0.05) and mu == pytest.approx(1.0)
    assert m.schedule(0.75) == (0.1, 2.0)


def test_the_ramp_follows_the_batchs_step():
    b = Batch(
        torch.zeros(1),
        torch.zeros(1),
        torch.zeros(1),
        None,
        None,
        epoch=1,
        num_epochs=4,
        step=15,
        student=torch.nn.Identity(),
        steps_per_epoch=10,
    )
    assert b.progress == 15 / 40


@pytest.fixture(scope="module")
def split():
    return kd.make_split(kd.load_dataset("digits"), val_fraction=0.1)


def _net(split, seed=0, name="ibp_small"):
    torch.manual_seed(seed)
    sp = split
    return kd.create_model(name, sp.num_classes, sp.in_channels, input_size=sp.input_size, mean=sp.mean, std=sp.std)


def _batch(split, student, teacher, n=16, step=0):
    x = split.test_x[:n].float() / 255
    y = split.test_y[:n]
    with torch.no_grad():
        zt = teacher(x)
    b = Batch(x, y, torch.arange(n), None, zt, 0, 1, step, student, teacher, None, 1, torch.Generator().manual_seed(0))
    b.logits = student(x)
    return b


@pytest.mark.parametrize("bound", ["ibp", "pgd"])
def test_faithful_term_is_zero_for_the_teacher_itself_and_positive_otherwise(split, bound):
    t = _net(split, 0).eval()
    m = create_method({"name": "faithful", "bound": bound, "steps": 3})
    same = m.gap(_batch(split, copy.deepcopy(t), t), 0.0)
    assert torch.equal(same, torch.zeros_like(same))
    other = m.gap(_batch(split, _net(split, 1), t), 0.0)
    assert (other > 0).all()
    b = _batch(split, _net(split, 1), t)
    pt, ps = (F.softmax(z, 1).gather(1, b.y[:, None]).squeeze(1) for z in (b.teacher_logits, b.logits))
    torch.testing.assert_close(other, (pt - ps).abs(), rtol=1e-4, atol=1e-6)  # at eps 0: |p_T[c] - p_S[c]|
    if bound == "ibp":  # the bounds of the ball are loose even for the teacher itself
        assert (m.gap(_batch(split, copy.deepcopy(t), t), 0.05) > 0).all()


def test_faithful_gap_term_has_student_gradient_only(split):
    t, s = _net(split, 0).eval(), _net(split, 1)
    b = _batch(split, s, t)
    for p in t.parameters():
        p.requires_grad_(False)
    m = create_method({"name": "faithful", "warmup": 0.0, "ramp": 0.0})
    m(b).per_sample.mean().backward()
    assert all(p.grad is not None for p in s.parameters())


def _settings(**kw):
    base = dict(
        teacher_epochs=1, epochs=1, train_subset=320, attack_samples=24, pgd_steps=2, progress=False, device="cpu"
    )
    return kd.configure("smoke", **{**base, **kw})


STUDENTS = [
    {"name": "ard", "steps": 2},
    {"name": "ard", "steps": 2, "alpha": 0.5, "attack": "kl"},
    {"name": "rslad", "steps": 2},
    {"name": "faithful", "warmup": 0.0},
    {"name": "faithful", "bound": "pgd", "steps": 2, "warmup": 0.0},
]


def test_every_method_trains_through_experiment_and_the_evaluations_are_cached(store):
    exp = kd.Experiment(_settings(), store)
    assert exp.settings.faithful_eps == 0.1
    pgd_teacher = exp.teacher(method={"name": "pgd_at", "steps": 2}, model="ibp_small")
    teacher = exp.teacher(method={"name": "ibp", "warmup": 0.0}, model="ibp_small")
    for run in (pgd_teacher, teacher):
        assert all(math.isfinite(h["loss"]) for h in run.record["history"])
    assert teacher.record["history"][-1]["eps"] > 0
    names = ["disagreement", "confidence_gap", "certified_gap"]
    for spec in STUDENTS:
        s = exp.student(spec, seed=0, teacher=teacher, model="ibp_small")
        assert all(math.isfinite(h["loss"]) for h in s.record["history"]), spec
    assert "disagreement_rate" not in exp.evaluate(s, teacher, robustness=False)  # on request only
    ev = exp.evaluate(s, teacher, only=names)
    n = ev["gap_points"]
    assert n == ev["certified_gap_points"] == ev["disagreement_points"] and len(ev["gap_values"]) == n
    for e, c in zip(ev["gap_values"], ev["certified_gap_values"]):  # sound: empirical <= certified
        assert e <= c + 1e-6
    assert ev["disagreement_rate"] <= 1 - ev["certified_agreement"] + 1e-9
    for d in kd.evaluations.FAITHFUL_DELTAS:
        assert ev[f"certified_faithful@{d:g}"] <= ev[f"gap_faithful@{d:g}"]
    assert sum(ev["gap_hist"]["counts"]) == n and ev["gap_eps"] == 0.1
    assert "faithfulness at eps 0.1" in kd.describe_faithfulness_protocol(exp.settings)
    cached = sorted(p.name.split("-")[1] for p in store.path(s.key).glob("eval-*.json"))
    assert set(names) <= set(cached)
    again = kd.Experiment(_settings(), store).evaluate(s, teacher, only=names)
    assert again["gap_values"] == ev["gap_values"]
    with pytest.raises(ValueError, match="need a teacher"):
        exp.evaluate(s, only=["certified_gap"])


def _through_disk(state):
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)  # as the run store reads it


@pytest.mark.parametrize(
    "spec",
    [{"name": "rslad", "steps": 2}, {"name": "faithful", "bound": "pgd", "steps": 2, "warmup": 0.0, "ramp": 0.5}],
)
def test_a_resumed_run_is_bit_identical(split, spec):
    sp = split.subset(torch.arange(192))
    teacher = _net(split, 7).eval()
    recipe = kd.Recipe(epochs=2, batch_size=64)
    straight = _net(split, 1)
    kd.fit(straight, sp, create_method(spec), recipe, teacher=teacher, seed=3, progress=False)
    states = []
    kd.fit(
        _net(split, 1),
        sp,
        create_method(spec),
        recipe,
        teacher=teacher,
        seed=3,
        progress=False,
        checkpoint=lambda st: states.append(_through_disk(st)),
    )
    torch.manual_seed(999)  # another process: other global RNG states
    resumed = _net(split, 5)
    kd.fit(resumed, sp, create_method(spec), recipe, teacher=teacher, seed=3, progress=False, resume=states[0])
    for (k, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), f"{k} differs after resume"


def test_user_errors_name_the_valid_choices():
    with pytest.raises(UnknownNameError, match="faithful bound 'lp'.*ibp, pgd"):
        create_method({"name": "faithful", "bound": "lp"})
    with pytest.raises(UnknownNameError, match="ARD attack 'cw'.*ce, kl"):
        create_method({"name": "ard", "attack": "cw"})
    with pytest.raises(ParameterError, match="eps"):
        create_method("pgd_at", eps=8)  # 8/255 meant: pixel units
    with pytest.raises(ParameterError, match="kappa"):
        create_method("ibp", kappa=1.5)
    with pytest.raises(ParameterError, match="mu"):
        create_method("faithful", mu=-1.0)
    with pytest.raises(UnknownNameError, match="parameter of method 'ibp'"):
        create_method("ibp", eps_train=0.1)


def test_faithful_log_space_bounds_the_prob_term_and_names_its_choices(split):
    t, s = _net(split, 0).eval(), _net(split, 1)
    b = _batch(split, s, t)
    for bound in ("ibp", "pgd"):
        prob = create_method({"name": "faithful", "bound": bound, "steps": 2}).gap(b, 0.05)
        log = create_method({"name": "faithful", "bound": bound, "steps": 2, "space": "log"}).gap(b, 0.05)
        if bound == "ibp":  # |p - q| <= |log p - log q| on (0, 1], term by term
            assert (log >= prob - 1e-6).all()
        assert torch.isfinite(log).all() and (log >= 0).all()
    same = create_method({"name": "faithful", "space": "log"}).gap(_batch(split, copy.deepcopy(t), t), 0.0)
    assert torch.equal(same, torch.zeros_like(same))
    with pytest.raises(kd.UnknownNameError, match="valid choices: log, prob"):
        create_method({"name": "faithful", "space": "logit"})
