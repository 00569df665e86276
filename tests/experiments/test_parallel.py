"""Groups of runs trained by an executor give the runs serial training gives, bit for bit (issue 11)."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

import kdutils as kd
from kdutils.parallel import Job, resolve_executor, train_group

SMOKE = dict(teacher_epochs=2, epochs=2, progress=False, device="cpu", threads=1, workers=2)


def _group(exp: kd.Experiment, teacher: kd.Run) -> list[Job]:
    s = exp.settings
    jobs = [
        Job(
            m,
            seed,
            s.student_model,
            s.student_recipe,
            teacher=teacher,
            label=f"{m} s{seed}",
            evaluate={"teacher": teacher, "robustness": False},
        )
        for m in ("ce", "kd", "kd+sr")
        for seed in (0, 1)
    ]
    sig = exp.teacher(method="ce+sr")  # a selection and a weighting that name a run travel as its key
    jobs.append(Job("kd", 0, s.student_model, s.student_recipe, teacher=teacher, selection=kd.DropRandom(0.3, seed=0)))
    jobs.append(
        Job("significance", 0, s.student_model, s.student_recipe, teacher=sig, weights=kd.SignificanceWeights(sig))
    )
    return jobs


def _settings(executor: str):
    return kd.configure("smoke", executor=executor, **SMOKE)


def _train(tmp_path, executor: str):
    exp = kd.Experiment(_settings(executor), kd.RunStore(tmp_path / executor))
    teacher = exp.teacher()
    runs = train_group(exp, _group(exp, teacher))
    evals = [exp.evaluate(r, teacher, robustness=False) for r in runs]
    return runs, evals


def _same(a: list[kd.Run], b: list[kd.Run], ea: list[dict], eb: list[dict]) -> None:
    assert [r.key for r in a] == [r.key for r in b]
    for ra, rb, xa, xb in zip(a, b, ea, eb):
        strip = lambda h: [{k: v for k, v in e.items() if k != "seconds"} for e in h]  # noqa: E731
        assert strip(ra.history) == strip(rb.history), ra.key
        sa, sb = ra.model.state_dict(), rb.model.state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa), ra.key
        assert torch.equal(ra.participation, rb.participation)
        num = lambda e: {k: v for k, v in kd.scalar_metrics(e).items() if "seconds" not in k}  # noqa: E731
        assert num(xa) == num(xb), ra.key


def test_processes_give_the_serial_runs_bit_for_bit(tmp_path):
    serial, es = _train(tmp_path, "serial")
    assert not any(r.reused for r in serial)
    pooled, ep = _train(tmp_path, "processes")
    assert not any(r.reused for r in pooled), "the group trained every run (in its workers): none is reused"
    exp = kd.Experiment(_settings("processes"), kd.RunStore(tmp_path / "processes"))
    again = train_group(exp, _group(exp, exp.teacher()))
    assert all(r.reused for r in again), "a second call reads every run from the store"
    _same(serial, pooled, es, ep)
    # the workers also evaluated: the evaluation cache of each run is in the store
    assert all(any(p.name.startswith("eval") for p in (tmp_path / "processes" / r.key).iterdir()) for r in pooled[:6])


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason='Ray is optional: pip install -e ".[ray]"')
def test_ray_gives_the_serial_runs_bit_for_bit(tmp_path):
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        serial, es = _train(tmp_path, "serial")
        remote, er = _train(tmp_path, "ray")
    finally:
        ray.shutdown()
    assert not any(r.reused for r in remote)
    _same(serial, remote, es, er)


def test_executor_choice(monkeypatch):
    monkeypatch.delenv("KD_EXECUTOR", raising=False)
    assert resolve_executor("auto", "cpu", "quick") == "processes"
    assert resolve_executor("auto", "cpu", "smoke") == "serial"
    assert resolve_executor("auto", "cuda:0", "paper") == "serial"
    monkeypatch.setenv("KD_EXECUTOR", "serial")
    assert resolve_executor("auto", "cpu", "quick") == "serial"
    with pytest.raises(kd.UnknownNameError, match="processes"):
        resolve_executor("threads")


def test_notebook_teachers_and_students_in_parallel_match_serial(tmp_path, monkeypatch):
    frames = {}
    monkeypatch.setenv("KD_EVENTS", str(tmp_path / "events"))
    for executor in ("serial", "processes"):
        ctx = kd.NotebookContext(
            "99_parallel",
            profile="smoke",
            seeds=2,
            verbose=False,
            output_dir=tmp_path / executor,
            overrides={"executor": executor, "teacher_epochs": 2, "epochs": 1, "threads": 1},
            store=kd.RunStore(tmp_path / f"runs-{executor}"),
            progress=False,
        )
        small, t = ctx.teacher_group(
            "digits",
            [
                dict(label="teacher small", model=ctx.settings("digits").student_model, robustness=False),
                dict(label="teacher", robustness=False),
            ],
        )
        assert ctx.trained_now(small) and small.reused == (executor == "processes"), (
            "workers train, the store hands over"
        )
        ctx.students("digits", {"alone": "ce", "KD": "kd"}, t, robustness=False)
        f = ctx.frame
        f = f[~f.metric.str.contains("seconds")]
        env = ctx.environment_frame()["value"]
        assert env["runs trained now"] == len(set(r.key for r in ctx.runs.values())) and env["runs reused"] == 0
        frames[executor] = f.sort_values(["method", "seed", "metric"]).reset_index(drop=True)
    assert len(frames["serial"]) > 20
    pd.testing.assert_frame_equal(frames["serial"], frames["processes"], check_exact=True)
    # each finished run is counted in the events (bars off, as in a batch): teachers 1/2, 2/2, students 1/4 ...
    counts = [
        ln.split("(")[-1].split(")")[0]
        for ln in (tmp_path / "events").read_text().splitlines()
        if ln.strip().startswith("finished ") and " run " in ln and "/" in ln
    ]
    assert sorted(counts) == ["1/2", "1/4", "2/2", "2/4", "3/4", "4/4"], counts
    # and says about how long the group has left, until its last run
    done = [
        ln
        for ln in (tmp_path / "events").read_text().splitlines()
        if ln.strip().startswith("finished ") and " run " in ln and "/" in ln
    ]
    assert all(("min left" in ln) == ("(2/2)" not in ln and "(4/4)" not in ln) for ln in done), done
    # a run is named by the notebook's label (seven CMKD ablations are not "cmkd s0" seven times)
    started = [
        ln.strip() for ln in (tmp_path / "events").read_text().splitlines() if ln.strip().startswith("training ")
    ]
    students = [ln for ln in started if "student " in ln]
    assert students and all(" (student " in ln for ln in students), students


def test_a_run_asked_for_twice_is_trained_once(tmp_path, monkeypatch):
    from kdutils import parallel

    exp = kd.Experiment(kd.configure("smoke", executor="processes", **SMOKE), kd.RunStore(tmp_path))
    s, teacher = exp.settings, exp.teacher()
    sent = []
    monkeypatch.setattr(parallel, "_run_elsewhere", lambda exp, jobs, *a: sent.append([j.label for j in jobs]) or set())
    jobs = [
        Job("kd", 0, s.student_model, s.student_recipe, teacher=teacher, label=label)
        for label in ("KD", "KD | teacher lenet5")
    ]
    train_group(exp, [*jobs, Job("ce", 0, s.student_model, s.student_recipe, label="alone")], read_back=False)
    assert sent == [["KD", "alone"]]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_workers_end_when_their_parent_is_killed(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(
        "import multiprocessing as mp, os, time\n"
        "from concurrent.futures import ProcessPoolExecutor\n"
        "from kdutils.parallel import _die_with_parent\n"
        "if __name__ == '__main__':\n"
        "    pool = ProcessPoolExecutor(1, mp_context=mp.get_context('spawn'), initializer=_die_with_parent)\n"
        "    print(pool.submit(os.getpid).result(), flush=True)\n"
        "    pool.submit(time.sleep, 120).result()  # the worker is busy, as one training a run\n"
    )
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    worker = int(parent.stdout.readline())
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and Path(f"/proc/{worker}").exists():
        time.sleep(0.1)
    alive = Path(f"/proc/{worker}").exists()
    if alive:
        os.kill(worker, signal.SIGKILL)
    assert not alive, "a worker outlived its killed parent"


def test_longest_runs_go_to_the_workers_first():
    from types import SimpleNamespace

    from kdutils import costs
    from kdutils.parallel import longest_first

    s = kd.configure("quick", "mnist")
    teacher = SimpleNamespace(config={"model": "lenet5"})
    jobs = [
        Job("ce", 0, "lenet5_half", s.student_recipe, label="alone"),
        Job("kd", 0, "lenet5_half", s.student_recipe, teacher=teacher, label="kd"),
        Job({"name": "ard", "steps": 3}, 0, "lenet5_half", s.student_recipe, teacher=teacher, label="ard"),
        Job("ce", 0, "lenet5", s.teacher_recipe, role="teacher", label="teacher"),
    ]
    order = [j.label for j in longest_first(jobs, "mnist")]
    assert order == ["teacher", "ard", "alone", "kd"]  # the 4-epoch LeNet-5 teacher, then the attack; ties keep order
    assert costs.run_flops("lenet5", "ce", 4, "mnist") > costs.run_flops(
        "lenet5_half", {"name": "ard", "steps": 3}, 3, "mnist"
    )
    # an image folder: costed from its images' shape and classes (the loaded split's), else the caller's order
    assert [j.label for j in longest_first(jobs, "image_folder:/x", ((1, 28, 28), 10))] == order
    assert [j.label for j in longest_first(jobs, "image_folder:/x")] == [j.label for j in jobs]
    odd = [*jobs, Job("ce", 0, "no_such_model", s.student_recipe, label="odd")]
    assert [j.label for j in longest_first(odd, "mnist")] == [j.label for j in odd]


# ---------------------------------------------------------------- a worker that dies
@dataclasses.dataclass
class _Toy:
    """A stand-in payload: the pool sets ``threads``; ``marker``: the folder the toy worker writes to."""

    i: int
    marker: str
    die: str  # "once": the first worker to take run 0 is killed; "always": every one is
    threads: int = 0


def _toy_work(p: _Toy):
    """Run 0 kills its worker (SIGKILL, as the OOM killer or a user would); the others finish."""
    if p.i == 0 and (p.die == "always" or not os.path.exists(os.path.join(p.marker, "died"))):
        open(os.path.join(p.marker, "died"), "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    open(os.path.join(p.marker, f"done-{p.i}"), "a").write("x")
    return f"key{p.i}", 0.0, True


def test_a_dead_worker_is_retried_once_in_a_new_pool(tmp_path):
    from kdutils.parallel import _processes

    payloads = [_Toy(i, str(tmp_path), "once") for i in range(4)]
    with pytest.warns(UserWarning, match="worker process died.*again in a new pool"):
        got = list(_processes(payloads, 2, 1, target=_toy_work))
    assert sorted(key for _, (key, _, _) in got) == ["key0", "key1", "key2", "key3"]  # each reported once
    assert (tmp_path / "done-0").read_text() == "x"  # run 0 finished in the new pool


def test_a_pool_that_breaks_twice_says_rerunning_resumes(tmp_path):
    from kdutils.parallel import _processes

    payloads = [_Toy(i, str(tmp_path), "always") for i in range(2)]
    with pytest.warns(UserWarning, match="worker process died"):
        with pytest.raises(kd.errors.WorkerLostError, match="rerun the notebook.*resume from their last checkpoint"):
            list(_processes(payloads, 1, 1, target=_toy_work))


@pytest.mark.parametrize("name, value", [("workers", -1), ("threads", -2), ("workers", 1.5), ("workers", True)])
def test_a_negative_or_fractional_worker_count_is_refused_up_front(name, value):
    with pytest.raises(kd.ParameterError, match=rf"parameter {name} = .*expected an int >= 0 \(0 for"):
        kd.configure("smoke", **{name: value})
    from kdutils.parallel import _sizes

    with pytest.raises(kd.ParameterError, match=name):
        _sizes(3, **{"workers": 0, "threads": 0, name: value})
