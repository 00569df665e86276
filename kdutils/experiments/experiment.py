"""Runs as records: train (or reuse) teachers and students, evaluate (or reuse) them.

An :class:`Experiment` holds one dataset split, the resolved :class:`Settings` and the
run store. ``exp.train(...)`` builds a configuration dict (dataset and split, model,
method and its parameters, recipe, seed, teacher's key), hashes it, and

* returns the stored run when it is finished (``run.reused`` is True),
* resumes it from its last checkpoint when it was interrupted,
* trains it otherwise, checkpointing after every epoch.

Teachers are runs like any other, so every notebook asking for the same teacher
gets the same stored run. ``exp.evaluate(run, teacher)`` computes the evaluation
suite (:mod:`kdutils.evaluations`, a registry) and caches each evaluation next to the run,
keyed by its own settings.
"""

from __future__ import annotations

import numbers
import platform
import re
import sys
import time
from typing import Any

import torch
import torch.nn as nn

from ..core import events
from ..core.errors import DeviceError, ParameterError
from ..evaluation.data_selection import SCORERS, ScoreInputs, TeacherRows
from ..evaluation.evaluations import run_evaluations
from ..evaluation.selection import Selection, Weighting
from ..inputs.data import Split, load_dataset, make_split
from ..inputs.models import MODEL_INIT, count_parameters, create_model
from ..inputs.recipe import Recipe
from ..inputs.runtime import cpu_numerics, cuda_numerics, place, prepare_device
from ..methods.base import Method, create_method, distils
from ..numerics import metrics as M
from ..training.profiles import Settings
from ..training.store import CODE_VERSION, Run, RunStore, config_key  # Run: re-exported (kdutils.experiment.Run)
from ..training.train import fit, reads_teacher_logits

#: the device names kdutils accepts (``cuda:N``: the N-th CUDA GPU)
DEVICE_NAMES = ("auto", "cpu", "cuda", "cuda:N", "mps")
_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def _mps() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def visible_devices() -> list[str]:
    """The devices torch can use on this machine, e.g. ``["cpu", "cuda:0 (NVIDIA H100 80GB HBM3)"]``."""
    out = ["cpu"]
    if torch.cuda.is_available():
        out += [f"cuda:{i} ({torch.cuda.get_device_name(i)})" for i in range(torch.cuda.device_count())]
    return out + (["mps"] if _mps() else [])


def check_device_name(device: object) -> str:
    """``device`` as a lower-case device name if it is one kdutils accepts, else :class:`DeviceError`."""
    text = str(device).strip().lower() if isinstance(device, (str, torch.device)) else None
    if text is None or not _DEVICE.fullmatch(text):
        raise DeviceError(
            f"unknown device {device!r}; accepted: {', '.join(DEVICE_NAMES)}; "
            f"this machine has: {', '.join(visible_devices())}"
        )
    return text


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA if available, else Apple MPS, else CPU. Never hard-codes CUDA.

    Accepts ``auto``, ``cpu``, ``cuda``, ``cuda:N`` and ``mps``; an unknown name or a device
    this machine does not have raises :class:`~kdutils.errors.DeviceError`, naming the
    devices torch can see here and the accepted names.
    """
    name = check_device_name(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if _mps() else "cpu")
    why = None
    if name.startswith("cuda"):
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            why = f"torch {torch.__version__} sees no CUDA GPU" + ("" if torch.version.cuda else " (a CPU-only build)")
        elif int(name.partition(":")[2] or 0) >= n:
            why = f"this machine has {n} CUDA GPU" + (f"s (cuda:0..cuda:{n - 1})" if n > 1 else " (cuda:0)")
    elif name == "mps" and not _mps():
        why = "torch sees no Apple MPS device"
    if why:
        raise DeviceError(
            f"device '{name}' is not available: {why}; this machine has: "
            f"{', '.join(visible_devices())}; use device='auto' or one of those"
        )
    return torch.device(name)


class Experiment:
    """One dataset at one profile: the split, the settings, the store, the device."""

    def __init__(self, settings: Settings, store: RunStore | None = None, *, data_root=None):
        self.settings = settings
        self.data_root = data_root
        self.store = store or RunStore()
        self.device = resolve_device(settings.device)
        prepare_device(self.device)  # before the first kernel (CUDA + KD_DETERMINISTIC=1: the flags)
        self.progress = settings.progress
        t0 = time.perf_counter()
        self.data = load_dataset(settings.dataset, data_root)
        self.split: Split = make_split(
            self.data,
            val_fraction=settings.val_fraction,
            train_subset=settings.train_subset,
            test_subset=settings.test_subset,
            val_subset=settings.val_subset,
        )
        self.load_seconds = time.perf_counter() - t0
        self._logits: dict[tuple[str, str], torch.Tensor] = {}
        self._scores: dict[tuple[str, str], torch.Tensor] = {}

    # ---------------------------------------------------------------- training
    def data_config(self) -> dict:
        s = self.settings
        cfg = {"dataset": s.dataset, "val_fraction": s.val_fraction, "train_subset": s.train_subset, "split_seed": 0}
        if s.val_subset is not None:  # absent otherwise, so earlier runs keep their keys
            cfg["val_subset"] = s.val_subset
        return cfg

    def new_model(self, name: str, seed: int) -> nn.Module:
        torch.manual_seed(seed)
        sp = self.split
        net = create_model(name, sp.num_classes, sp.in_channels, input_size=sp.input_size, mean=sp.mean, std=sp.std)
        place(net, self.device, self.settings.channels_last)
        return net

    def teacher(
        self,
        seed: int = 0,
        *,
        method: str | dict | Method = "ce",
        model: str | None = None,
        recipe: Recipe | None = None,
        force: bool = False,
        selection: Selection | None = None,
    ) -> Run:
        """The dataset's teacher (trained alone with ``method``, shared by every notebook); with
        ``selection``, on those training rows only (:meth:`train`)."""
        model, recipe = self.settings.model_and_recipe("teacher", model, recipe)
        return self.train(
            method, seed=seed, model=model, recipe=recipe, role="teacher", force=force, selection=selection
        )

    def student(
        self,
        method: str | dict | Method,
        seed: int,
        teacher: Run | None = None,
        *,
        model: str | None = None,
        recipe: Recipe | None = None,
        force: bool = False,
        **kw,
    ) -> Run:
        model, recipe = self.settings.model_and_recipe("student", model, recipe)
        return self.train(
            method, seed=seed, teacher=teacher, model=model, recipe=recipe, role="student", force=force, **kw
        )

    def _plan(self, method, seed, model, recipe, teacher, selection, weights, teacher_rows=None):
        """The run ``train`` would make: (method, config, key, sample weights, training rows)."""
        method = create_method(method)
        uses_teacher = distils(method, teacher)
        if teacher_rows is not None:
            if not isinstance(teacher_rows, TeacherRows):
                raise TypeError(
                    f"teacher_rows must be a kdutils.data_selection.TeacherRows (e.g. "
                    f"DataSelection(teacher_run, 'influence', keep=0.7)), got {type(teacher_rows).__name__}"
                )
            if not uses_teacher:
                raise ValueError(
                    f"teacher_rows: method {method.name!r} trains without a teacher, there is nothing to select"
                )
        if selection is not None and not isinstance(selection, Selection):
            raise TypeError(
                f"selection must be a kdutils.selection.Selection (e.g. DropRandom(0.1, seed=0)), "
                f"got {type(selection).__name__}"
            )
        if weights is not None and not isinstance(weights, Weighting):
            raise TypeError(
                f"weights must be a kdutils.selection.Weighting (e.g. SignificanceWeights(teacher_run)), "
                f"got {type(weights).__name__}"
            )
        n_train = len(self.split.train_y)
        sample_weight = weights.weights() if weights is not None else None
        if sample_weight is not None and len(sample_weight) != n_train:
            raise ValueError(f"weights {weights} give {len(sample_weight)} values for {n_train} training rows")
        train_rows = selection.rows(n_train) if selection is not None else None
        config = {
            "data": self.data_config(),
            "model": model,
            "method": method.params(),
            "recipe": recipe.to_dict(),
            "seed": int(seed),
            "teacher": teacher.key if uses_teacher else None,
            "sample_weight": weights.identity() if weights is not None else None,
        }
        if model in MODEL_INIT:  # likewise: a model whose initialisation changed (kdutils.models.ibp_init_)
            config["model_init"] = MODEL_INIT[model]
        if selection is not None:  # absent otherwise, so earlier runs keep their keys
            config["train_rows"] = selection.identity()
        if teacher_rows is not None:  # likewise
            config["teacher_rows"] = teacher_rows.identity()
        return method, config, config_key(config), sample_weight, train_rows

    def key_of(
        self,
        method: str | dict | Method,
        *,
        seed: int,
        model: str,
        recipe: Recipe,
        teacher: Run | None = None,
        selection: Selection | None = None,
        weights: Weighting | None = None,
        role: str = "student",
        teacher_rows: TeacherRows | None = None,
        label: str | None = None,
    ) -> str:
        """The key :meth:`train` gives these arguments (nothing is trained; ``label`` is no part of it)."""
        return self._plan(method, seed, model, recipe, teacher, selection, weights, teacher_rows)[2]

    def is_finished(self, train_kwargs: dict, evaluate: dict | None = None) -> bool:
        """Whether the run of these :meth:`train` arguments is finished in the store."""
        return (self.store.path(self.key_of(**train_kwargs)) / "record.json").exists()

    def load_run(self, key: str) -> Run:
        """A finished run of the store, by key (its model rebuilt on this experiment's device)."""
        run = self._stored(key)
        if run is None:
            raise KeyError(f"run {key} is not finished in the run store {self.store.root}")
        return run

    def teacher_logits_for(self, train_kwargs: dict) -> None:
        """Compute (and keep on disk) the teacher's training-set logits a run of these arguments
        reads, so that workers trained in parallel load them instead of each computing them."""
        method = create_method(train_kwargs["method"])
        teacher = train_kwargs.get("teacher")
        if reads_teacher_logits(method, teacher, train_kwargs["recipe"]):
            self.logits(teacher, "train", persist=True)
        if train_kwargs.get("teacher_rows") is not None:  # the selection's scores, cached with the teacher
            train_kwargs["teacher_rows"].mask(self)

    def train(
        self,
        method: str | dict | Method,
        *,
        seed: int,
        model: str,
        recipe: Recipe,
        teacher: Run | None = None,
        selection: Selection | None = None,
        weights: Weighting | None = None,
        role: str = "student",
        force: bool = False,
        teacher_rows: TeacherRows | None = None,
        label: str | None = None,
    ) -> Run:
        """Train (or reuse, or resume) one run. ``force=True`` retrains from scratch. ``label``: the
        notebook's name for the run (``"CMKD, Pearson only"``), shown by its progress bar and events;
        no part of the run's key.

        ``selection`` (train on some rows of the training split only, e.g. after pruning:
        :class:`kdutils.selection.DropLeastSignificant`, ``DropRandom``) and ``weights`` (one
        weight per training row, e.g. :class:`kdutils.selection.SignificanceWeights`) are part
        of the run's identity: their ``identity()`` goes into ``config["train_rows"]`` and
        ``config["sample_weight"]``.

        ``teacher_rows`` (data selection, e.g. :class:`kdutils.data_selection.DataSelection`): the
        training rows supervised by the teacher; the others by their labels alone, with no
        teacher forward for them. Its ``identity()`` goes into ``config["teacher_rows"]``; the
        run's ``teacher_forwards`` counts the teacher forwards per row.
        """
        if not isinstance(seed, numbers.Integral) or isinstance(seed, bool) or seed < 0:
            raise ParameterError("seed", seed, "a non-negative int")
        method, config, key, sample_weight, train_rows = self._plan(
            method, seed, model, recipe, teacher, selection, weights, teacher_rows
        )
        if not force and (done := self._stored(key, config)) is not None:
            return done

        def waiting() -> None:
            msg = f"waiting for run {key}: another process is training it (its lock: {self.store.root}/_locks/)"
            events.emit(msg)
            if self.progress:
                print(msg, file=sys.stderr, flush=True)

        # one trainer per run: another process training this key (a second notebook on the same
        # store) finishes it first, and this one then reuses it (kdutils.store, "claim")
        with self.store.claim(key, on_wait=waiting):
            if force:
                self.store.discard(key)
            elif (done := self._stored(key, config)) is not None:
                return done
            return self._train_claimed(
                key, config, method, seed, model, recipe, teacher, sample_weight, train_rows, teacher_rows, role, label
            )

    def _stored(self, key: str, config: dict | None = None) -> Run | None:
        """The finished run ``key`` from the store, its model rebuilt (from the record's model and seed)
        on this experiment's device; None if it is not finished. ``config``: the caller's own
        configuration of the run (the one its key was computed from), else the record's."""
        done = self.store.load_finished(key)
        if done is None:
            return None
        cfg = done["record"]["config"]
        net = self.new_model(cfg["model"], cfg["seed"])
        net.load_state_dict(done["state_dict"])
        return Run(
            key,
            config if config is not None else cfg,
            net.to(self.device).eval(),
            done["record"],
            done["artifacts"],
            reused=True,
        )

    def _train_claimed(
        self,
        key,
        config,
        method,
        seed,
        model,
        recipe,
        teacher,
        sample_weight,
        train_rows,
        teacher_rows,
        role,
        label=None,
    ) -> Run:
        """Train run ``key`` (resuming from its checkpoint if there is one); the caller holds its claim."""
        uses_teacher = config["teacher"] is not None
        resume = self.store.load_checkpoint(key)
        net = self.new_model(model, seed)
        self.store.begin(key, config)
        what = f"{role} {model} {method.name} s{seed}"
        # the progress bar's name: the notebook's label where there is one (seven CMKD ablations are not
        # "cmkd s0" seven times), the run's role, model and method otherwise
        label = f"{label} s{seed}" if label else what
        epochs = f"{recipe.epochs} epoch" + ("s" if recipe.epochs != 1 else "")
        if resume:
            epochs += f", resuming after epoch {resume['epoch']}"
        named = f"{label} ({what})" if label != what else what
        events.emit(f"training {named} on {self.settings.dataset} ({epochs}, run {key})")
        t0 = time.perf_counter()
        split, t_logits = self.split, None
        rows_mask = teacher_rows.mask(self) if teacher_rows is not None else None
        if reads_teacher_logits(method, teacher, recipe):
            # with a data selection, the teacher's shared logits are read if they exist (its scorers
            # usually made them); otherwise ``fit`` computes those of the selected rows only
            if rows_mask is None:
                t_logits = self.logits(teacher, "train", persist=True)
            else:
                t_logits = self._stored_logits(teacher, "train")
        if train_rows is not None:
            split = split.subset(train_rows)
            t_logits = t_logits[train_rows] if t_logits is not None else None
            sample_weight = sample_weight[train_rows] if sample_weight is not None else None
            rows_mask = rows_mask[train_rows] if rows_mask is not None else None
        result = fit(
            net,
            split,
            method,
            recipe,
            teacher=teacher.model if uses_teacher else None,
            seed=seed,
            device=self.device,
            sample_weight=sample_weight,
            resume=resume,
            teacher_logits=t_logits,
            teacher_rows=rows_mask,
            channels_last=self.settings.channels_last,
            checkpoint=lambda state: self.store.save_checkpoint(key, state),
            progress=self.progress,
            desc=label,
        )
        record = {
            "config": config,
            "history": result.history,
            "steps_skipped": result.steps_skipped,
            "teacher_forwards": int(result.teacher_forwards.sum()) if result.teacher_forwards is not None else 0,
            "resumed_from_epoch": resume["epoch"] if resume else 0,
            "train_seconds": time.perf_counter() - t0,
            "parameters": count_parameters(net),
            "device": str(self.device),
            "torch": torch.__version__,
            "code_version": CODE_VERSION,
        }
        # what decides the numbers (not in the key): a GPU's TF32 and determinism flags; a CPU's model,
        # instruction set and thread count (the same seed on another CPU or thread count: other digits)
        if self.device.type == "cuda":
            record["cuda_numerics"] = cuda_numerics()
        else:
            record["cpu_numerics"] = cpu_numerics()
        artifacts = {"participation": result.participation, "train_index": split.train_index}
        if result.teacher_forwards is not None:
            artifacts["teacher_forwards"] = result.teacher_forwards
        self.store.finish(key, record, net.state_dict(), artifacts)
        events.emit(f"finished {label} in {record['train_seconds']:.0f} s")
        return Run(key, config, net.eval(), record, artifacts, reused=False)

    # ---------------------------------------------------------------- evaluation
    def logits(self, run: Run, part: str = "test", *, persist: bool = False) -> torch.Tensor:
        """Logits of a run's model on ``train``, ``val`` or ``test`` (eval mode, no augmentation).

        Kept in memory for this experiment; with ``persist`` (a teacher's ``train`` logits) also
        on disk next to the run, so every student of one teacher, in every notebook, reuses one
        pass over the training set.
        """
        k = (run.key, part)
        if k in self._logits:
            return self._logits[k]
        x = {"train": self.split.train_x, "val": self.split.val_x, "test": self.split.test_x}[part]
        disk = f"logits-{part}-{config_key(self.data_config())}"
        z = self.store.load_tensor(run.key, disk) if persist else None
        if z is None or z.shape[0] != len(x):
            z = M.predict_logits(run.model, x, device=self.device)
            if persist:
                self.store.save_tensor(run.key, disk, z)
        self._logits[k] = z
        return z

    def _stored_logits(self, run: Run, part: str) -> torch.Tensor | None:
        """The logits :meth:`logits` would return with ``persist``, if they are already computed (else None)."""
        if (run.key, part) in self._logits:
            return self._logits[run.key, part]
        z = self.store.load_tensor(run.key, f"logits-{part}-{config_key(self.data_config())}")
        n = len({"train": self.split.train_y, "val": self.split.val_y, "test": self.split.test_y}[part])
        if z is None or z.shape[0] != n:
            return None
        self._logits[run.key, part] = z
        return z

    def selection_scores(self, run: Run, scorer: str) -> torch.Tensor:
        """(N_train,) data-selection scores of ``scorer`` (:data:`kdutils.data_selection.SCORERS`)
        computed with ``run``'s model: cached in memory and on disk next to the run, like its logits."""
        fn = SCORERS.get(scorer)
        k = (run.key, scorer)
        if k in self._scores:
            return self._scores[k]
        disk = f"ds-{scorer}-{config_key(self.data_config())}"
        s = self.store.load_tensor(run.key, disk)
        if s is None or s.shape[0] != len(self.split.train_y):
            model = run.model.to(self.device).eval()
            s = fn(ScoreInputs(model, self.split, self.device, lambda: self.logits(run, "train", persist=True)))
            s = s.detach().float().cpu()
            self.store.save_tensor(run.key, disk, s)
        self._scores[k] = s
        return s

    def evaluate(
        self,
        run: Run,
        teacher: Run | None = None,
        *,
        only: list[str] | None = None,
        robustness: bool = True,
        force: bool = False,
    ) -> dict:
        """The evaluation suite (:mod:`kdutils.evaluations`), each evaluation cached with the run on its own.

        Runs the default set (every registered evaluation whose teacher need is met;
        ``robustness`` only with ``robustness=True``) or exactly the names in ``only`` (then
        ``robustness`` is not consulted). ``force=True`` recomputes the requested ones.

        Returns a flat dict of numbers (accuracy, nll, ece, agreement, kl_teacher_student,
        mu_s/mu_f on train and test, robust accuracy per attack and epsilon, data usage,
        seconds per epoch) plus ``reliability`` (the per-bin data of the diagram) and
        ``robustness`` (attack -> list over ``epsilons``; the protocol:
        ``kd.describe_attack_protocol(exp.settings)``).
        """
        return run_evaluations(self, run, teacher, only=only, robustness=robustness, force=force)


def scalar_metrics(evaluation: dict) -> dict[str, float]:
    """The numeric entries of an evaluation (what goes into results.csv)."""
    return {k: float(v) for k, v in evaluation.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def environment() -> dict[str, Any]:
    """What this notebook ran on: recorded with every executed notebook."""
    import subprocess

    from ..core.io import project_root

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        **cpu_numerics(),  # the CPU's model, instruction set and thread count: what decides its numbers
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    if torch.cuda.is_available():  # TF32, cuDNN autotuner, determinism: what decides a GPU's numbers
        info["cuda_numerics"] = cuda_numerics()
    try:
        import foolbox

        info["foolbox"] = foolbox.__version__
    except Exception:  # pragma: no cover
        info["foolbox"] = None
    try:
        info["git_commit"] = (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], cwd=project_root(), capture_output=True, text=True, timeout=5
            ).stdout.strip()
            or None
        )
    except Exception:  # pragma: no cover
        info["git_commit"] = None
    return info


__all__ = ["Experiment", "Run", "resolve_device", "visible_devices", "DEVICE_NAMES", "scalar_metrics", "environment"]
