"""Independent runs trained side by side: in-process, local worker processes, or Ray.

The models here are small (LeNet-5, CIFAR ResNets): one run does not keep a CPU's cores
busy, intra-op threads scale poorly for them (DESIGN.md), and a second process slows a
two-threaded run down badly. Independent runs do scale, one per core on a CPU and one per
GPU. A run is a record keyed by its configuration and written atomically
(:mod:`kdutils.store`), so runs can be trained anywhere that sees the run store and then be
*reused* by the notebook exactly as if it had trained them itself:

1. the notebook names a group of runs (:class:`Job`: what :meth:`Experiment.train` takes,
   and optionally what :meth:`Experiment.evaluate` takes);
2. :func:`train_group` sends the ones not yet in the store to an executor; each worker builds
   the same :class:`~kdutils.experiment.Experiment` (dataset, split, settings), trains the run,
   evaluates it (the cached evaluations land in the store too) and returns its key;
3. the notebook's own loop then calls ``train`` / ``evaluate`` as before and gets every run
   from the store (``run.reused``), so a notebook reads the same with one executor or another.

Executors (:data:`EXECUTORS`; ``Settings.executor``, or ``$KD_EXECUTOR`` when that is
``"auto"``):

* ``serial``: in this process, one run after the other (the tests' default, a GPU's default);
* ``processes``: a pool of local worker processes started with ``spawn``, ``workers`` of them
  (0: one per CPU core) with ``threads`` intra-op threads each (0: cores // workers); the
  default on a CPU at ``quick`` and above;
* ``ray``: one Ray task per run (``pip install -e ".[ray]"``): ``ray.init()`` connects to
  ``$RAY_ADDRESS`` when set (a cluster), else starts a local instance; each task asks for
  ``threads`` CPUs and, on CUDA (``cuda``, or ``auto`` on a cluster with GPUs), one GPU
  (:func:`ray_gpus_per_task`). The run store (``KD_RUNS_ROOT``) and the data root
  (``KD_DATA_ROOT``) must be paths every node sees.

Order: a group's runs go to the workers longest first (:func:`longest_first`, by the FLOPs of
:func:`kdutils.costs.run_flops`), so a large teacher or an attack-trained student does not start
last while the other workers wait for it.

Identical results: a worker trains with the same code, seed and settings, and the CPU gives
the same numbers at the same number of intra-op threads (a test checks serial against
``processes`` and ``ray``, bit for bit, at one thread). A killed worker leaves a checkpoint
or nothing (atomic writes): the next attempt resumes it.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..core import events
from ..core.errors import KDError
from ..core.registry import Registry
from ..training.profiles import EXECUTORS as _EXECUTORS

if TYPE_CHECKING:  # pragma: no cover
    from .experiment import Experiment, Run

__all__ = ["Job", "EXECUTORS", "train_group", "longest_first", "resolve_executor", "executor_names"]

#: name -> function(jobs as payloads, settings) -> iterator of finished keys; the registry object
#: lives in kdutils.profiles, whose Settings check an executor's name when they are made
EXECUTORS: Registry[Callable] = _EXECUTORS


@dataclass
class Job:
    """One run of a group: the arguments of :meth:`Experiment.train` and, with ``evaluate``,
    those of :meth:`Experiment.evaluate` (``{"teacher": run, "robustness": True, ...}``)."""

    method: Any
    seed: int
    model: str
    recipe: Any
    teacher: Any = None
    selection: Any = None
    weights: Any = None
    role: str = "student"
    evaluate: dict | None = None
    label: str = ""
    teacher_rows: Any = None

    @classmethod
    def student(cls, settings: Any, method: Any, seed: int, **kw) -> Job:
        """A student of ``settings``' model and recipe (unless ``model=`` / ``recipe=`` are given)."""
        kw.setdefault("model", None)
        kw.setdefault("recipe", None)
        model, recipe = settings.model_and_recipe("student", kw.pop("model"), kw.pop("recipe"))
        return cls(method, seed, model, recipe, **kw)

    def train_kwargs(self) -> dict:
        kw = dict(
            method=self.method,
            seed=self.seed,
            model=self.model,
            recipe=self.recipe,
            teacher=self.teacher,
            selection=self.selection,
            weights=self.weights,
            role=self.role,
        )
        if self.teacher_rows is not None:  # absent otherwise: callers of older signatures keep working
            kw["teacher_rows"] = self.teacher_rows
        if self.label:  # the notebook's name for the run: its progress bar's, never its key's
            kw["label"] = self.label
        return kw


# ---------------------------------------------------------------- runs travel as their keys
@dataclass(frozen=True)
class RunRef:
    """A finished run named by its key; a worker loads it from the store."""

    key: str


def _is_run(obj: Any) -> bool:
    from .experiment import Run

    return isinstance(obj, Run)


def _strip(obj: Any) -> Any:
    """``obj`` with every :class:`Run` in it (itself, or an attribute of a selection or weighting)
    replaced by a :class:`RunRef`: a model never travels, the worker loads it from the store."""
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    if _is_run(obj):
        return RunRef(obj.key)
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items()}
    if hasattr(obj, "__dict__") and any(_is_run(v) for v in vars(obj).values()):
        out = copy.copy(obj)
        for k, v in vars(obj).items():
            if _is_run(v):
                object.__setattr__(out, k, RunRef(v.key))
        return out
    return obj


def _resolve(obj: Any, exp: Experiment) -> Any:
    """The inverse of :func:`_strip` in a worker: each :class:`RunRef` becomes the stored run."""
    if isinstance(obj, RunRef):
        return exp.load_run(obj.key)
    if isinstance(obj, dict):
        return {k: _resolve(v, exp) for k, v in obj.items()}
    if hasattr(obj, "__dict__") and any(isinstance(v, RunRef) for v in vars(obj).values()):
        out = copy.copy(obj)
        for k, v in vars(obj).items():
            if isinstance(v, RunRef):
                object.__setattr__(out, k, exp.load_run(v.key))
        return out
    return obj


@dataclass
class _Payload:
    """What a worker needs: where the store and data are, the settings, the job (runs as keys)."""

    settings: Any
    store_root: str
    data_root: str | None
    train: dict
    evaluate: dict | None
    label: str
    threads: int = 0
    env: dict = field(default_factory=dict)


_EXPERIMENTS: dict[tuple, Experiment] = {}  # per worker process: one dataset load per settings


def work(payload: _Payload) -> tuple[str, float, bool]:
    """Train (and evaluate) one job in this process; returns (run key, seconds, trained here).

    "Trained here" is False when the run was finished in the store by the time this worker
    reached it (another notebook on the same store trained it while this one waited).

    The entry point of every executor's worker: it rebuilds the notebook's Experiment (cached
    per process), so the run's key and numbers are those the notebook would get itself.
    """
    import torch

    from ..training.store import RunStore
    from .experiment import Experiment

    for k, v in payload.env.items():
        os.environ.setdefault(k, v)
    if payload.threads:
        torch.set_num_threads(payload.threads)
    ident = (repr(payload.settings), payload.store_root, payload.data_root)
    exp = _EXPERIMENTS.get(ident)
    if exp is None:
        exp = _EXPERIMENTS[ident] = Experiment(
            payload.settings, RunStore(payload.store_root), data_root=payload.data_root
        )
    t0 = time.perf_counter()
    run = exp.train(**_resolve(payload.train, exp))
    if payload.evaluate is not None:
        exp.evaluate(run, **_resolve(payload.evaluate, exp))
    return run.key, time.perf_counter() - t0, not run.reused


# ---------------------------------------------------------------- executors
def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover (macOS, Windows)
        return os.cpu_count() or 1


def _sizes(n_jobs: int, workers: int, threads: int) -> tuple[int, int]:
    from ..training.profiles import check_count

    check_count("workers", workers, "0 for one worker per CPU core")
    check_count("threads", threads, "0 for cores // workers")
    cores = _cores()
    workers = workers or cores
    workers = max(1, min(workers, n_jobs))
    threads = threads or max(1, cores // workers)
    return workers, threads


@EXECUTORS.register("serial")
def _serial(payloads: Sequence[_Payload], workers: int, threads: int):
    for p in payloads:
        yield p, work(p)


def _die_with_parent() -> None:
    """Worker initializer: on Linux, ask the kernel to end this worker when its parent dies, so a
    notebook kernel killed mid-group (papermill interrupted, kill -9) leaves no worker training on."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except OSError:  # another libc: the worker just lives until its run ends
            pass


#: how many times the ``processes`` executor starts a new pool after one broke (a worker died)
POOL_RETRIES = 1


@EXECUTORS.register("processes")
def _processes(payloads: Sequence[_Payload], workers: int, threads: int, *, target: Callable = work):
    """A pool of ``spawn`` worker processes, each calling ``target`` (:func:`work`) on a payload.

    A worker that dies (killed, out of memory) breaks the whole pool: every run not finished by
    then is retried once in a new pool (:data:`POOL_RETRIES`), resuming from its checkpoint, as
    Ray retries a lost task. If the new pool breaks too, :class:`~kdutils.errors.WorkerLostError`
    says so, and that rerunning resumes from the store."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    from ..core.errors import WorkerLostError

    workers, threads = _sizes(len(payloads), workers, threads)
    for p in payloads:
        p.threads = threads
    left = list(payloads)
    for attempt in range(POOL_RETRIES + 1):
        try:
            # spawn: a fresh interpreter per worker (forking a process whose OpenMP pool is running can hang)
            with ProcessPoolExecutor(
                max_workers=min(workers, len(left)), mp_context=mp.get_context("spawn"), initializer=_die_with_parent
            ) as pool:
                futures = {pool.submit(target, p): p for p in left}
                for f in as_completed(futures):
                    result = f.result()
                    left.remove(futures[f])
                    yield futures[f], result
            return
        except BrokenProcessPool as exc:
            what = f"a worker process died ({exc})"
            if attempt == POOL_RETRIES:
                raise WorkerLostError(
                    f"{what} again, with {len(left)} runs unfinished: rerun the notebook (or the batch) to go on; "
                    "finished runs are reused from the run store and interrupted ones resume from their last "
                    "checkpoint. A worker that keeps dying may be out of memory: fewer workers "
                    '(overrides={"workers": 1}) or executor="serial" need less'
                ) from None
            # shown in the notebook and, through the warning hook (kdutils.events), in a batch's terminal
            warnings.warn(
                f"{what}; training its {len(left)} unfinished runs again in a new pool (each resumes "
                "from its last checkpoint)",
                stacklevel=2,
            )


@EXECUTORS.register("ray")
def _ray(payloads: Sequence[_Payload], workers: int, threads: int):
    try:
        import ray
    except ImportError as exc:
        raise ImportError('executor "ray" needs Ray: pip install -e ".[ray]" (or pick executor="processes")') from exc
    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS") or None, include_dashboard=False, log_to_driver=False)
    threads = threads or 1
    device = str(payloads[0].settings.device) if payloads else "cpu"
    gpus = ray_gpus_per_task(device, ray.cluster_resources().get("GPU", 0))
    remote = ray.remote(num_cpus=threads, num_gpus=gpus, max_retries=2)(work)
    for p in payloads:
        p.threads = threads
    pending = {remote.remote(p): p for p in payloads}
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        for ref in done:
            yield pending.pop(ref), ray.get(ref)


def ray_gpus_per_task(device: str, cluster_gpus: float) -> int:
    """GPUs a Ray task asks for: 1 for ``cuda``/``cuda:N``, and for ``auto`` on a cluster with GPUs.

    A task that asks for none either sees no GPU (Ray before its issue 54868 set
    ``CUDA_VISIBLE_DEVICES`` to an empty string: ``auto`` resolved to the CPU) or every GPU of its
    node unscheduled (later Ray leaves the variable alone: every task on ``cuda:0``). With one GPU
    per task Ray's ``CUDA_VISIBLE_DEVICES`` names the task's own GPU, which ``auto`` and ``cuda``
    then are (``cuda:N`` with N > 0 is not visible in a task: name ``cuda`` or ``auto`` with Ray)."""
    name = device.strip().lower()
    return 1 if name.startswith("cuda") or (name == "auto" and cluster_gpus > 0) else 0


def executor_names() -> list[str]:
    return EXECUTORS.names()


def resolve_executor(name: str, device: str = "cpu", profile: str = "quick") -> str:
    """``"auto"`` -> ``$KD_EXECUTOR`` if set, else ``serial`` on a GPU or at ``smoke`` (tiny runs:
    a worker's start costs more than they take), else ``processes``. Other names are checked."""
    if name == "auto":
        name = os.environ.get("KD_EXECUTOR", "")
        if not name:
            return "serial" if device.startswith(("cuda", "mps")) or profile == "smoke" else "processes"
    EXECUTORS.get(name)  # unknown name -> an error naming the valid ones
    return name


# ---------------------------------------------------------------- the API notebooks use
def train_group(
    exp: Experiment,
    jobs: Iterable[Job],
    *,
    executor: str | None = None,
    workers: int | None = None,
    threads: int | None = None,
    desc: str = "runs",
    read_back: bool = True,
    force: bool = False,
) -> list[Run] | list[str] | None:
    """Train every job of a group (those not yet in the store) with the executor, then return
    their runs in order, each read from the store by ``exp.train`` (and evaluated from the cache
    when the job asks for it).

    ``executor`` / ``workers`` / ``threads``: default ``exp.settings``' own. Progress: one bar
    for the group (finished/total) and one event line per finished run. ``read_back=False``:
    only train (the caller reads the runs itself); returns the keys of the runs trained here. ``force=True`` (retrain even
    stored runs) trains nothing here: the caller's own ``train(..., force=True)`` calls do, serially.
    """
    if force:
        return None
    jobs = list(jobs)
    s = exp.settings
    name = resolve_executor(executor or s.executor, str(exp.device), s.profile)
    todo, keys = [], set()
    for j in jobs:  # a run asked for twice (e.g. under two labels) is trained once
        key = exp.key_of(**j.train_kwargs())
        if key not in keys and not exp.is_finished(j.train_kwargs(), j.evaluate):
            todo.append(j)
        keys.add(key)
    here: set[str] = set()
    if todo and name != "serial":
        here = _run_elsewhere(
            exp, todo, name, s.workers if workers is None else workers, s.threads if threads is None else threads, desc
        )
    trained = [k for k in (exp.key_of(**j.train_kwargs()) for j in todo) if k in here]
    if not read_back:
        return trained
    out = []
    for j in jobs:
        run = exp.train(**j.train_kwargs())
        if run.key in trained:  # trained by this group's workers: not reused, for the caller
            run = dataclasses.replace(run, reused=False)
        if j.evaluate is not None:
            exp.evaluate(run, **j.evaluate)
        out.append(run)
    return out


def longest_first(jobs: list[Job], dataset: str, image: tuple[Sequence[int], int] | None = None) -> list[Job]:
    """``jobs`` ordered by their estimated cost, the largest first (stable; unchanged when a cost
    cannot be estimated): workers take jobs in this order, so a long run (a larger teacher, an
    attack inside training) does not start last and leave the other workers idle while it
    finishes (longest-processing-time-first scheduling). Results do not depend on the order:
    every run is seeded and stored by its own key. Costs: :func:`kdutils.costs.run_flops`, with
    ``image`` = ``((C, H, W), classes)`` for a dataset its table does not list (an image folder)."""
    from . import costs

    def cost(j: Job) -> float | None:
        teacher = getattr(j.teacher, "config", {}).get("model") if j.teacher is not None else None
        epochs = getattr(j.recipe, "epochs", None)
        if not isinstance(j.model, str) or not isinstance(epochs, int):
            return None
        try:
            return costs.run_flops(j.model, j.method, epochs, dataset, teacher, image=image)
        except (KDError, LookupError, TypeError, ValueError):  # a model or method it cannot cost: keep the order
            return None

    est = [cost(j) for j in jobs]
    if any(c is None for c in est):
        return list(jobs)
    order = sorted(range(len(jobs)), key=lambda i: -est[i])  # sorted() is stable: ties keep their order
    return [jobs[i] for i in order]


def _minutes(seconds: float) -> str:
    """``"12 min"`` (``"<1 min"`` under a minute): the estimate of a group's time left, from the mean
    time per finished run so far (runs go longest first, so it errs long)."""
    return "<1 min" if seconds < 60 else f"{seconds / 60:.0f} min"


def _run_elsewhere(exp: Experiment, jobs: list[Job], name: str, workers: int, threads: int, desc: str) -> set[str]:
    """Train ``jobs`` on executor ``name``; returns the keys its workers trained (not those they
    found finished, by another process, when they got to them)."""
    from ..inputs.runtime import progress_bar

    # a teacher's logits over the training set are computed once here, not once per worker
    for j in jobs:
        if j.teacher is not None:
            exp.teacher_logits_for(j.train_kwargs())
    env = {k: v for k, v in os.environ.items() if k.startswith("KD_")}
    jobs = longest_first(jobs, exp.settings.dataset, (tuple(exp.split.train_x.shape[1:]), exp.split.num_classes))
    payloads = [
        _Payload(
            exp.settings.replace(progress=False),
            str(exp.store.root),
            exp.data_root and str(exp.data_root),
            _strip(j.train_kwargs()),
            _strip(j.evaluate),
            j.label,
            env=env,
        )
        for j in jobs
    ]
    events.emit(f"{desc}: {len(jobs)} runs on executor {name}")
    bar = progress_bar(total=len(payloads), desc=f"{desc} ({name})", disable=not exp.progress, leave=False)
    trained, t0 = set(), time.perf_counter()
    try:  # counted here: a disabled bar (progress=False, as in a batch) counts nothing
        for done, (p, (key, secs, here)) in enumerate(EXECUTORS.get(name)(payloads, workers, threads), 1):
            bar.update(1)
            how = "" if here else " (trained by another process on this store)"
            left = len(payloads) - done
            eta = f"; about {_minutes((time.perf_counter() - t0) / done * left)} left" if left else ""
            events.emit(f"  finished {p.label or key} ({done}/{len(payloads)}) in {secs:.0f} s, run {key}{how}{eta}")
            if here:
                trained.add(key)
    finally:
        bar.close()
    return trained
