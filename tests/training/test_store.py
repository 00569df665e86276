"""Run store: atomic writes, reuse, resume after an interruption, corrupt records set aside, force."""

import json
import os

import pytest
import torch

import kdutils as kd
from kdutils.store import atomic_torch_save, config_key


def _settings(**kw):
    return kd.configure("smoke", teacher_epochs=2, epochs=3, progress=False, device="cpu", **kw)


def test_config_key_is_stable_and_sensitive():
    a = {"model": "mlp", "seed": 0, "recipe": {"lr": 0.1}}
    assert config_key(a) == config_key({"recipe": {"lr": 0.1}, "seed": 0, "model": "mlp"})
    assert config_key(a) != config_key({**a, "seed": 1})


def test_atomic_save_leaves_old_file_on_crash(tmp_path, monkeypatch):
    path = tmp_path / "x.pt"
    atomic_torch_save({"v": 1}, path)

    def broken_save(obj, f):
        f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        atomic_torch_save({"v": 2}, path)
    monkeypatch.undo()
    assert torch.load(path)["v"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["x.pt"]  # no temp file left behind


def test_finished_run_is_reused(store):
    exp = kd.Experiment(_settings(), store)
    r1 = exp.student("ce", seed=0)
    r2 = kd.Experiment(_settings(), store).student("ce", seed=0)
    assert not r1.reused and r2.reused and r1.key == r2.key
    for a, b in zip(r1.model.state_dict().values(), r2.model.state_dict().values()):
        assert torch.equal(a.cpu(), b.cpu())
    assert exp.student("ce", seed=1).key != r1.key


def test_a_cpu_run_records_what_decides_its_numbers(store):
    """The same seed on another CPU or at another intra-op thread count gives other digits: each CPU
    run records its CPU, instruction set and thread count (not in the key, so any of them reuses it)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run = kd.Experiment(_settings(), store).student("ce", seed=0)
    finally:
        torch.set_num_threads(before)
    assert run.record["cpu_numerics"] == {**kd.runtime.cpu_numerics(), "cpu_threads": 1}
    assert "cuda_numerics" not in run.record
    again = kd.Experiment(_settings(), store).student("ce", seed=0)  # another thread count: reused as stored
    assert again.reused and again.record["cpu_numerics"]["cpu_threads"] == 1


class _Interrupt(kd.RunStore):
    """A store whose process 'dies' right after the checkpoint of epoch ``stop_after``."""

    stop_after = 1

    def save_checkpoint(self, key, state):
        super().save_checkpoint(key, state)
        if state["epoch"] == self.stop_after:
            raise KeyboardInterrupt


def test_interrupted_run_resumes_bit_identically(tmp_path):
    s = _settings()
    with pytest.raises(KeyboardInterrupt):
        kd.Experiment(s, _Interrupt(tmp_path / "a")).student("ce", seed=0)
    resumed = kd.Experiment(s, kd.RunStore(tmp_path / "a")).student("ce", seed=0)
    assert resumed.record["resumed_from_epoch"] == 1
    assert len(resumed.history) == 3
    straight = kd.Experiment(s, kd.RunStore(tmp_path / "b")).student("ce", seed=0)
    assert straight.record["resumed_from_epoch"] == 0
    for (k, a), b in zip(resumed.model.state_dict().items(), straight.model.state_dict().values()):
        assert torch.equal(a, b), k
    assert torch.equal(resumed.participation, straight.participation)
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in straight.history]


def test_corrupt_record_is_set_aside_and_retrained(store):
    exp = kd.Experiment(_settings(), store)
    r1 = exp.student("ce", seed=0)
    (store.path(r1.key) / "model.pt").write_bytes(b"not a checkpoint")
    with pytest.warns(UserWarning, match="corrupt record"):
        r2 = exp.student("ce", seed=0)
    assert not r2.reused
    corrupt = list((store.root / "_corrupt").iterdir())
    assert len(corrupt) == 1 and corrupt[0].name.startswith(r1.key)
    assert exp.student("ce", seed=0).reused  # the retrained record is sound


def test_corrupt_checkpoint_is_set_aside(tmp_path):
    s = _settings()
    with pytest.raises(KeyboardInterrupt):
        kd.Experiment(s, _Interrupt(tmp_path)).student("ce", seed=0)
    store = kd.RunStore(tmp_path)
    key = store.keys()[0]
    (store.path(key) / "checkpoint.pt").write_bytes(b"\x00garbage")
    with pytest.warns(UserWarning, match="corrupt checkpoint"):
        r = kd.Experiment(s, store).student("ce", seed=0)
    assert r.record["resumed_from_epoch"] == 0 and len(r.history) == 3


def test_force_retrains(store):
    exp = kd.Experiment(_settings(), store)
    exp.student("ce", seed=0)
    again = exp.student("ce", seed=0, force=True)
    assert not again.reused


def test_evaluation_is_cached(store):
    exp = kd.Experiment(_settings(attack_samples=16, pgd_steps=2), store)
    t = exp.teacher()
    s = exp.student("kd", seed=0, teacher=t)
    m1 = exp.evaluate(s, t)
    files = list(store.path(s.key).glob("eval-*.json"))
    assert len(files) == 7  # one per evaluation (kdutils.evaluations): accuracy, predictions, data_usage, ...
    for f in files:
        os.utime(f, (1, 1))
    m2 = kd.Experiment(_settings(attack_samples=16, pgd_steps=2), store).evaluate(s, t)
    assert json.dumps(m1, sort_keys=True) == json.dumps(m2, sort_keys=True)  # NaN-safe equality
    assert all(f.stat().st_mtime == 1 for f in files)  # read, not rewritten
    for k in ("accuracy", "nll", "ece", "agreement", "kl_teacher_student", "mu_s_train", "mu_f_test", "data_usage"):
        assert k in m1
    assert m1["robust_fgsm@0"] == pytest.approx(m1["robustness"]["fgsm"][0])


def test_corrupt_cached_evaluation_and_logits_are_recomputed(store):
    exp = kd.Experiment(_settings(), store)
    t = exp.teacher()
    s = exp.student("kd", seed=0, teacher=t)
    m1 = exp.evaluate(s, t, robustness=False)
    logits_file = next(store.path(t.key).glob("logits-train-*.pt"))
    eval_file = next(store.path(s.key).glob("eval-*.json"))
    logits_file.write_bytes(b"broken")
    eval_file.write_text("{not json")
    exp2 = kd.Experiment(_settings(), store)
    with pytest.warns(UserWarning, match="recomputed"):
        m2 = exp2.evaluate(s, t, robustness=False)
    assert m2["accuracy"] == m1["accuracy"]
    exp3 = kd.Experiment(_settings(), store)  # nothing in memory yet: the logits come from disk
    with pytest.warns(UserWarning, match="recomputed"):
        z = exp3.logits(t, "train", persist=True)
    assert z.shape == (len(exp3.split.train_y), 10)
    assert torch.equal(torch.load(logits_file), z)  # rewritten, sound


def _in_thread(fn):
    import threading

    out = {}
    t = threading.Thread(target=lambda: out.setdefault("run", fn()), daemon=True)
    t.start()
    return t, out


_no_fcntl = pytest.mark.skipif(os.name != "posix", reason="runs are locked with fcntl.flock (POSIX)")


@_no_fcntl
def test_a_second_trainer_of_the_same_run_waits_then_reuses_it(store):
    """Two notebooks on one store wanting the same run: one trains it, the other waits and reuses it
    (without the claim both trained, and the last one's files replaced the first's)."""
    st = _settings()
    key = kd.Experiment(st, store).key_of("ce", seed=0, model=st.student_model, recipe=st.student_recipe)
    with store.claim(key):  # a "third process" holds the run: both trainers must wait
        threads = [_in_thread(lambda: kd.Experiment(_settings(), store).student("ce", seed=0)) for _ in range(2)]
        threads[0][0].join(1.0)
        assert all(t.is_alive() for t, _ in threads), "a trainer did not wait for the run's claim"
        assert store.load_finished(key) is None
    for t, _ in threads:
        t.join(120)
        assert not t.is_alive()
    a, b = (out["run"] for _, out in threads)
    assert a.key == b.key == key
    assert sorted([a.reused, b.reused]) == [False, True], "both trained the run, or neither did"
    for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values()):
        assert torch.equal(x.cpu(), y.cpu())


@_no_fcntl
def test_a_claim_dies_with_its_process(tmp_path):
    """kill -9 of the process training a run frees the run: the next trainer does not wait."""
    import signal
    import subprocess
    import sys

    store = kd.RunStore(tmp_path)
    code = (
        "import sys, time, kdutils as kd\n"
        "with kd.RunStore(sys.argv[1]).claim('k'):\n"
        "    print('held', flush=True); time.sleep(120)\n"
    )
    p = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "held"
        waited = []
        t, _ = _in_thread(lambda: store.claim("k", on_wait=lambda: waited.append(1)).__enter__())
        t.join(0.5)
        assert t.is_alive() and waited == [1], "the claim of a live process was not respected"
        p.send_signal(signal.SIGKILL)
        t.join(30)
        assert not t.is_alive(), "the claim outlived its killed process"
    finally:
        p.kill()
        p.wait()
    with store.claim("k", on_wait=lambda: pytest.fail("waited for a free run")):
        pass


@_no_fcntl
def test_a_store_that_cannot_lock_warns_and_trains(store, monkeypatch):
    """A file system without flock (some network or FUSE mounts: ENOLCK, ENOSYS) must not stop
    training: one warning naming the store, then the run trains unlocked."""
    import errno
    import fcntl

    def no_flock(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    monkeypatch.setattr("kdutils.store._warned_no_flock", set())
    with pytest.warns(UserWarning, match="cannot lock runs"):
        run = kd.Experiment(_settings(), store).student("ce", seed=0)
    assert not run.reused and store.load_finished(run.key) is not None
