"""The evaluation registry: each evaluation computed once, cached on its own, asked for by name."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections import Counter

import pytest

import kdutils as kd
from kdutils import metrics as M
from kdutils.evaluations import EVALUATIONS, attack_protocol, describe_attack_protocol, register_evaluation
from kdutils.registry import Registry

DEFAULT_WITH_TEACHER = {
    "accuracy",
    "predictions",
    "data_usage",
    "agreement",
    "retention",
    "rank_agreement",
    "robustness",
}


def _settings(**kw):
    base = dict(teacher_epochs=2, epochs=2, attack_samples=16, pgd_steps=2, progress=False, device="cpu")
    return kd.configure("smoke", **{**base, **kw})


def _same(a, b) -> bool:
    """Equality that treats NaN as equal to NaN (reliability has NaN for empty bins)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A teacher and a KD student, trained once; no evaluation cached yet."""
    root = tmp_path_factory.mktemp("eval-runs")
    exp = kd.Experiment(_settings(), kd.RunStore(root))
    teacher = exp.teacher()
    student = exp.student("kd", seed=0, teacher=teacher)
    assert not list(root.glob("*/eval-*.json"))
    return root, teacher, student


@pytest.fixture
def env(trained, tmp_path):
    """A private copy of the trained store, so each test starts with no cached evaluation."""
    root, teacher, student = trained
    copy = tmp_path / "runs"
    shutil.copytree(root, copy)
    store = kd.RunStore(copy)
    return store, teacher, student


@pytest.fixture
def calls(monkeypatch):
    """Counts how often each registered evaluation's function really runs."""
    counter: Counter = Counter()
    for spec in EVALUATIONS.ordered():

        def counted(ctx, _fn=spec.fn, _name=spec.name):
            counter[_name] += 1
            return _fn(ctx)

        monkeypatch.setattr(spec, "fn", counted)
    return counter


def _files(store, run) -> dict[str, tuple[float, bytes]]:
    return {p.name: (p.stat().st_mtime, p.read_bytes()) for p in store.path(run.key).glob("eval-*.json")}


def test_second_evaluate_computes_nothing(env, calls):
    store, t, s = env
    ev1 = kd.Experiment(_settings(), store).evaluate(s, t)
    assert calls == Counter({n: 1 for n in DEFAULT_WITH_TEACHER})
    names = sorted(f.split("-")[1] for f in _files(store, s))
    assert names == sorted(DEFAULT_WITH_TEACHER)  # one file per evaluation: eval-<name>-<hash>.json
    ev2 = kd.Experiment(_settings(), store).evaluate(s, t)  # a fresh experiment: nothing in memory
    assert calls == Counter({n: 1 for n in DEFAULT_WITH_TEACHER})
    assert _same(ev1, ev2)
    for k in (
        "accuracy",
        "nll",
        "ece",
        "val_accuracy",
        "reliability",
        "sample_epochs",
        "data_usage",
        "seconds_per_epoch",
        "agreement",
        "kl_teacher_student",
        "mu_s_train",
        "mu_f_train",
        "mu_s_test",
        "mu_f_test",
        "robustness",
        "rank_spearman_mean",
        "rank_spearman_median",
        "rank_spearman_hist",
    ):
        assert k in ev2, k
    sc = kd.scalar_metrics(ev2)
    assert "robust_pgd@0.1" in sc and "reliability" not in sc and "robustness" not in sc
    assert "rank_spearman_mean" in sc and "rank_spearman_hist" not in sc


def test_default_set_follows_teacher_and_robustness_flag(env, calls):
    store, t, s = env
    exp = kd.Experiment(_settings(), store)
    ev = exp.evaluate(s, robustness=False)
    assert set(calls) == {"accuracy", "predictions", "data_usage"}
    assert "agreement" not in ev and "mu_s_test" not in ev and "robustness" not in ev
    ev = exp.evaluate(s, t, robustness=False)  # only the teacher's evaluations are new
    assert calls == Counter(accuracy=1, predictions=1, data_usage=1, agreement=1, retention=1, rank_agreement=1)
    assert "agreement" in ev and "rank_spearman_mean" in ev and "robustness" not in ev


def test_new_evaluation_computes_only_itself(env, calls):
    store, t, s = env
    exp = kd.Experiment(_settings(), store)
    exp.evaluate(s, t)
    for p in store.path(s.key).glob("eval-*.json"):
        os.utime(p, (1, 1))  # a rewrite would show as a new mtime
    before = _files(store, s)
    assert len(before) == len(DEFAULT_WITH_TEACHER)
    name = f"test_extra_{uuid.uuid4().hex[:8]}"
    new_calls = []

    @register_evaluation(name, needs_teacher=True)
    def extra(ctx):
        new_calls.append(ctx.run.key)
        return {name: M.agreement(ctx.logits("test"), ctx.teacher_logits("test"))}

    try:
        ev = kd.Experiment(_settings(), store).evaluate(s, t)
        assert new_calls == [s.key]
        assert calls == Counter({n: 1 for n in DEFAULT_WITH_TEACHER})  # nothing else recomputed
        assert ev[name] == ev["agreement"]
        after = _files(store, s)
        assert {k: v for k, v in after.items() if k in before} == before  # untouched: mtimes and contents
        assert [k for k in after if k not in before] == [k for k in after if k.startswith(f"eval-{name}-")]
        assert len(after) == len(before) + 1
    finally:
        EVALUATIONS.unregister(name)
    assert name not in EVALUATIONS


def test_only_computes_just_those(env, calls):
    store, t, s = env
    exp = kd.Experiment(_settings(), store)
    ev = exp.evaluate(s, t, only=["agreement"])
    assert calls == Counter(agreement=1)
    assert set(ev) == {"agreement", "kl_teacher_student"}
    assert [f.split("-")[1] for f in _files(store, s)] == ["agreement"]
    ev = exp.evaluate(s, only=["robustness"], robustness=False)  # `only` wins over the default-set flag
    assert set(ev) >= {"robustness", "robust_fgsm@0", "robust_pgd@0.3"} and "accuracy" not in ev
    with pytest.raises(ValueError, match="retention.*teacher"):
        exp.evaluate(s, only=["accuracy", "retention"])
    assert calls == Counter(agreement=1, robustness=1)  # the error came before any work


def test_unknown_name_in_only_names_the_valid_ones(env, calls):
    store, t, s = env
    exp = kd.Experiment(_settings(), store)
    with pytest.raises(kd.UnknownNameError) as err:
        exp.evaluate(s, t, only=["accuracy", "acuracy"])
    msg = str(err.value)
    assert "acuracy" in msg
    for n in DEFAULT_WITH_TEACHER:
        assert n in msg
    assert not calls and not _files(store, s)


def test_numbers_equal_kdutils_metrics(env):
    store, t, s = env
    st = _settings()
    exp = kd.Experiment(st, store)
    ev = exp.evaluate(s, t)
    sp = exp.split
    z = {p: M.predict_logits(s.model, x) for p, x in (("train", sp.train_x), ("val", sp.val_x), ("test", sp.test_x))}
    zt = {p: M.predict_logits(t.model, x) for p, x in (("train", sp.train_x), ("test", sp.test_x))}
    assert ev["accuracy"] == M.accuracy(z["test"], sp.test_y)
    assert ev["nll"] == M.nll(z["test"], sp.test_y)
    assert ev["ece"] == M.ece(z["test"], sp.test_y)
    assert ev["val_accuracy"] == M.accuracy(z["val"], sp.val_y)
    assert _same(ev["reliability"], M.reliability(z["test"], sp.test_y))
    assert ev["agreement"] == M.agreement(z["test"], zt["test"])
    assert ev["kl_teacher_student"] == M.kl_teacher_student(zt["test"], z["test"])
    rho = M.rank_correlation(z["test"], zt["test"])
    assert ev["rank_spearman_mean"] == float(rho.mean()) and ev["rank_spearman_median"] == float(rho.quantile(0.5))
    assert ev["rank_spearman_hist"] == M.rank_histogram(rho, 40)
    assert sum(ev["rank_spearman_hist"]["counts"]) == len(sp.test_y)
    for part, y in (("train", sp.train_y), ("test", sp.test_y)):
        r = M.retention(zt[part], z[part], y)
        assert _same([ev[f"mu_s_{part}"], ev[f"mu_f_{part}"]], [r["mu_s"], r["mu_f"]])
    assert ev["sample_epochs"] == int(s.participation.sum())
    assert ev["data_usage"] == s.sample_epochs / (len(sp.train_y) * s.config["recipe"]["epochs"])
    assert ev["seconds_per_epoch"] == s.seconds_per_epoch
    # the robustness numbers are metrics.robustness_curves with its defaults on the first 16 test images
    curves = M.robustness_curves(s.model, sp.test_x[:16], sp.test_y[:16], list(st.epsilons), steps=st.pgd_steps)
    assert ev["robustness"] == {"epsilons": list(st.epsilons), **curves}
    for a in ("fgsm", "pgd"):
        for e, acc in zip(st.epsilons, curves[a]):
            assert ev[f"robust_{a}@{e:.4g}"] == acc
    assert ev["robust_fgsm@0"] == M.accuracy(z["test"][:16], sp.test_y[:16])
    assert _same(kd.Experiment(st, store).evaluate(s, t), ev)  # the cached copy reads back the same


def test_corrupt_cached_evaluation_is_recomputed_with_a_warning(env, calls):
    store, t, s = env
    ev1 = kd.Experiment(_settings(), store).evaluate(s, robustness=False)
    (acc_file,) = store.path(s.key).glob("eval-accuracy-*.json")
    (usage_file,) = store.path(s.key).glob("eval-data_usage-*.json")
    acc_file.write_text('{"evaluation": "accur')  # truncated
    usage_file.write_text("[1, 2]")  # valid JSON, but not an evaluation
    with pytest.warns(UserWarning, match="recomputed") as rec:
        ev2 = kd.Experiment(_settings(), store).evaluate(s, robustness=False)
    assert len([w for w in rec if "recomputed" in str(w.message)]) == 2
    assert calls == Counter(accuracy=2, data_usage=2, predictions=1)
    assert _same(ev1, ev2)
    assert json.loads(acc_file.read_text())["result"]["accuracy"] == ev1["accuracy"]  # rewritten, sound
    kd.Experiment(_settings(), store).evaluate(s, robustness=False)
    assert calls == Counter(accuracy=2, data_usage=2, predictions=1)


def test_pgd_steps_change_only_the_robustness_key(env, calls):
    store, t, s = env
    kd.Experiment(_settings(pgd_steps=2), store).evaluate(s)
    before = _files(store, s)
    ev = kd.Experiment(_settings(pgd_steps=3), store).evaluate(s)
    assert calls == Counter(accuracy=1, predictions=1, data_usage=1, robustness=2)
    after = _files(store, s)
    rob = sorted(k for k in after if k.startswith("eval-robustness-"))
    assert len(rob) == 2 and len(after) == len(before) + 1
    assert {k: v for k, v in after.items() if k in before} == before  # accuracy's cache untouched
    stored = json.loads((store.path(s.key) / [k for k in rob if k not in before][0]).read_text())
    assert stored["config"]["pgd"] == {"steps": 3, "rel_stepsize": 2.5 / 3, "random_start": True, "restarts": 0}
    sp = kd.Experiment(_settings(), store).split
    pgd3 = M.robust_accuracy(s.model, sp.test_x[:16], sp.test_y[:16], "pgd", list(_settings().epsilons), steps=3)
    assert ev["robustness"]["pgd"] == pgd3


def test_force_recomputes_the_requested_ones(env, calls):
    store, t, s = env
    exp = kd.Experiment(_settings(), store)
    ev1 = exp.evaluate(s, t, only=["accuracy", "agreement"])
    ev2 = exp.evaluate(s, t, only=["agreement"], force=True)
    assert calls == Counter(accuracy=1, agreement=2)
    assert ev2["agreement"] == ev1["agreement"]


def test_attack_protocol_labels_every_setting():
    st = _settings(pgd_steps=4, attack_samples=32)
    p = attack_protocol(st)
    assert p["n"] == 32 and p["test_subset"] is None and p["epsilons"] == list(st.epsilons)
    assert p["attacks"] == list(M.ATTACKS) and p["seed"] == 0 and p["norm"] == "linf"
    assert p["pgd"] == {"steps": 4, "rel_stepsize": 0.625, "random_start": True, "restarts": 0}
    assert p["fgsm"] == {"steps": 1, "rel_stepsize": 1.0, "random_start": False}
    line = describe_attack_protocol(st)
    assert "\n" not in line
    for part in ("first 32 test images", "4 steps of 0.625*eps", "FGSM", "random start", "seed 0", "0.3"):
        assert part in line, part
    assert "subset" not in describe_attack_protocol(_settings(test_subset=None))
    assert "of a 100-image test subset" in describe_attack_protocol(_settings(test_subset=100))
    with pytest.raises(ValueError, match="pgd_steps"):
        attack_protocol(_settings(pgd_steps=0))


def test_registration_errors():
    with pytest.raises(ValueError, match="registered twice"):
        register_evaluation("accuracy")(lambda ctx: {})
    with pytest.raises(ValueError, match="lower-case"):
        register_evaluation("Bad-Name")
    with pytest.raises(kd.UnknownNameError, match="valid choices"):
        EVALUATIONS.unregister("no_such_evaluation")
    assert set(kd.evaluation_names()) >= DEFAULT_WITH_TEACHER
    assert isinstance(EVALUATIONS, Registry)


def test_certified_and_own_pgd_are_on_request_cached_and_equal_their_functions(env, calls):
    from kdutils import attacks, ibp
    from kdutils.evaluations import certification_protocol, own_attack_protocol

    store, t, s = env
    st = _settings()
    exp = kd.Experiment(st, store)
    assert "certified" not in exp.evaluate(s, t, robustness=False) and not calls["certified"]
    ev = exp.evaluate(s, only=["certified", "pgd_robust"])
    assert calls["certified"] == 1 and calls["pgd_robust"] == 1
    sp, eps = exp.split, list(st.epsilons)
    x, y = sp.test_x[:16], sp.test_y[:16]
    assert ev["certified"]["accuracy"] == [ibp.certified_accuracy(s.model, x, y, e) for e in eps]
    assert ev["pgd_robust"]["accuracy"] == attacks.pgd_accuracy(s.model, x, y, eps, steps=st.pgd_steps)
    clean = M.accuracy(M.predict_logits(s.model, x), y)
    assert ev["certified@0"] == pytest.approx(clean) and ev["pgd_robust@0"] == pytest.approx(clean)
    for e in eps:  # certified <= empirical robust <= clean; both fall with epsilon
        assert ev[f"certified@{e:.4g}"] <= ev[f"pgd_robust@{e:.4g}"] <= clean
    assert ev["certified"]["accuracy"] == sorted(ev["certified"]["accuracy"], reverse=True)
    assert {"certified@0.1", "pgd_robust@0.1"} <= set(kd.scalar_metrics(ev))
    kd.Experiment(st, store).evaluate(s, only=["certified", "pgd_robust"])
    assert calls["certified"] == 1 and calls["pgd_robust"] == 1  # cached
    assert certification_protocol(st)["n"] == 16 and own_attack_protocol(st)["pgd"]["steps"] == st.pgd_steps


def test_metric_keys_and_the_epsilon_label_have_one_home():
    from kdutils.evaluations import at_delta, at_eps, format_epsilon, robust_key
    from kdutils.notebook import format_epsilon as reexported

    assert robust_key("fgsm", 0.1) == "robust_fgsm@0.1" and robust_key("pgd", 2 / 255) == "robust_pgd@0.007843"
    assert (
        at_eps("certified", 0.1) == "certified@0.1"
        and at_delta("certified_faithful", 0.05) == "certified_faithful@0.05"
    )
    assert reexported is format_epsilon and format_epsilon(8 / 255, [0, 4 / 255, 8 / 255]) == "8/255"
    assert format_epsilon(0.0, [0, 4 / 255]) == "0"


def test_predictions_are_the_argmax_behind_accuracy(env):
    """The stored per-image predictions reproduce the run's test accuracy exactly (what the
    two-noise intervals of kdutils.report.evidence rest on)."""
    from kdutils.report.evidence import decode_predictions

    store, t, s = env
    exp = kd.Experiment(_settings(), store)
    ev = exp.evaluate(s, robustness=False)
    pred = decode_predictions(ev["test_predictions"])
    y = exp.split.test_y.cpu().numpy()
    assert pred.shape == y.shape
    assert float((pred == y).mean()) == pytest.approx(ev["accuracy"], abs=1e-12)
    assert "test_predictions" not in kd.scalar_metrics(ev)  # text, not a number of results.csv


def test_robust_images_are_on_request_cached_and_give_back_the_curve(env, calls):
    """The per-image robustness record (what a robust-accuracy claim's paired two-noise interval
    needs): not in the default set, computed once, and its means are the robustness curve exactly."""
    from kdutils.evaluations import robust_images_at, robust_key
    from kdutils.report.evidence import decode_predictions

    store, t, s = env
    st = _settings()
    exp = kd.Experiment(st, store)
    ev = exp.evaluate(s, t)
    assert "robust_images" not in ev and not calls["robust_images"]
    rec = exp.evaluate(s, only=["robust_images"])
    kd.Experiment(st, store).evaluate(s, only=["robust_images"])
    assert calls["robust_images"] == 1  # cached with the run
    assert not kd.scalar_metrics(rec)  # text, not numbers of results.csv
    for attack in ("fgsm", "pgd"):
        for e in st.epsilons:
            key = robust_key(attack, e)
            bits = decode_predictions(robust_images_at(rec, key))
            assert bits.shape == (16,) and set(bits) <= {0, 1}
            assert float(bits.mean()) == pytest.approx(ev[key], abs=1e-12)
    assert robust_images_at(rec, "robust_fgsm@0.987") is None and robust_images_at(ev, "robust_fgsm@0.1") is None
    assert robust_images_at(rec, "accuracy") is None


def test_val_certified_reads_the_validation_split_only(env, calls, monkeypatch):
    """Notebook 04's teacher choice (protocol v2, item 2) reads validation images, never the test set."""
    from kdutils import ibp
    from kdutils.evaluations import validation_certification_protocol

    store, t, s = env
    st = _settings()
    exp = kd.Experiment(st, store)
    sp = exp.split
    seen = []
    real = ibp.certified_accuracy

    def spy(model, x, y, eps, **kw):
        seen.append((x.data_ptr(), eps))
        return real(model, x, y, eps, **kw)

    monkeypatch.setattr(ibp, "certified_accuracy", spy)
    ev = exp.evaluate(t, only=["val_certified"])
    assert seen == [(sp.val_x.data_ptr(), st.faithful_eps)], "one call, on the validation images, at faithful_eps"
    assert ev["val_n"] == len(sp.val_y) > 0
    assert ev["val_certified"] == real(t.model, sp.val_x, sp.val_y, st.faithful_eps)
    assert validation_certification_protocol(st)["eps"] == st.faithful_eps
    exp.evaluate(t, only=["val_certified"])
    assert calls["val_certified"] == 1  # cached like every evaluation
