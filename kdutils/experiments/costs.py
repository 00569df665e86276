"""What a profile costs before it runs: runs, epochs, images and training FLOPs per notebook, and
hours on one H100: an estimate from FLOPs (below), and the same planned steps at the seconds per
step measured on an H100 (:func:`measured_hours`, :data:`MEASURED_STEP_TIMES`:
``benchmarks/bench_paper_steps.py`` on the lent H100, 2026-11-26; about 1.9x the estimate in all,
2.5x for notebook 02's deep CIFAR-100 networks, whose steps are bound by kernel launches).

* :func:`forward_flops` / :func:`training_flops`: FLOPs of one image through a registered model,
  counted by :class:`torch.utils.flop_counter.FlopCounterMode` on a batch of 1 (on PyTorch's
  ``meta`` device: shapes only, no arithmetic, well under a second per model; cached per model,
  input shape and classes). FlopCounterMode counts the matrix products and convolutions (2 FLOPs
  per multiply-add) and nothing else (normalisation, activations, pooling and the optimizer are
  left out: a few per cent for these models). **Training = 3 x forward** per image: the forward,
  plus a backward of about twice the forward (gradients of the activations and of the weights).
* A teacher costs its **forward** per image: on every batch of every epoch when the recipe
  augments (``Recipe.teacher_per_batch``: CIFAR-10 and CIFAR-100's crop + flip at ``paper``),
  else once over the training split per teacher (its logits are cached and shared by all its
  students: :meth:`kdutils.Experiment.logits`). A data selection (notebook 05's DS) runs the
  teacher on the selected share of each batch only.
* A method's own passes (:func:`method_passes`, read from its parameters: what the method's code
  runs per training image and step besides the trained forward and backward and the teacher's
  clean logits):

  - an **attack step** (PGD inside training) is a forward and a backward to the input, counted
    like a training step (:data:`ATTACK_STEP`, 3 forwards: an upper bound, it needs no weight
    gradients), so an adversarial method multiplies the student's training cost by
    ``1 + attack_steps`` (``pgd_at``); ARD (``alpha < 1``) and RSLAD train one more forward on the
    clean batch (their clean term): ``2 + attack_steps``;
  - an **interval pass** (IBP, :mod:`kdutils.ibp`) costs :data:`IBP_PASS` = 2 forwards [ours]: every
    affine layer runs twice (``W c + b`` on the centre, ``|W| r`` on the radius). IBP training
    (notebook 04's teacher) differentiates one: 3 + 3 x 2 = 9 forwards per image, **3x plain
    training**; faithful (IBP) adds the student's differentiated pass and the teacher's without
    gradient (2 teacher forwards); faithful (PGD) runs two attacks through teacher **and** student;
  - the bound terms of ``ibp`` and ``faithful`` are off during their warm-up (kappa = 1, mu = 0):
    their passes count on the last ``1 - warmup`` of the steps.
* The student's validation split is scored after every epoch (one forward per image).
* Not counted: the evaluation suite (test-set forwards, FGSM/PGD on ``attack_samples`` images;
  at ``paper`` well under one training epoch per run; notebook 04's faithfulness attacks run
  through teacher and student, at most about ten of its KD student's epochs per student, some
  4 PFLOPs in all, under 1 % of its total), DS's scorers (a pass of the teacher over the
  training split each), data loading.

The notebook plans (:data:`NOTEBOOK_PLANS`): each notebook's paper module in
:mod:`kdutils.papers` registers a plan built from that module's own arms (:func:`register_plan`),
so no copy of a notebook's arms lives here and nothing has to be kept in step with the notebooks.
A notebook with its own sizes (04: :func:`kdutils.faithful_setup.sizes`)
names them in its plan (``NotebookPlan.sizes``), applied under the overrides as its
:class:`kdutils.NotebookContext` does. A new notebook joins the table with :func:`register_plan`.

Hours: FLOPs over a sustained throughput of :data:`UTILISATION` of the H100 SXM's dense TF32
tensor-core peak (:data:`H100_TF32_DENSE`; kdutils trains in FP32, and PyTorch runs FP32
convolutions on CUDA in TF32 by default: ``torch.backends.cudnn.allow_tf32``). Small CIFAR
networks at batch 64-128 keep an H100 far below its peak (kernel launches and the trainer's
per-step host synchronisation dominate), so the figure is low on purpose. A second bound,
:data:`STEP_FLOOR_S` per optimizer step, keeps the tiny LeNets from coming out at seconds; a run's
hours are the larger of the two. Both constants are assumptions; :func:`measured_hours` tests them.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import pandas as pd
import torch
import torch.nn as nn

from ..core.errors import UnknownNameError
from ..inputs.models import create_model
from ..inputs.recipe import Recipe
from ..methods.base import ATTACK_STEP, IBP_PASS, TRAIN_FACTOR, create_method  # the units of Method.passes
from ..training.profiles import LONGER_CHECK_PROFILES, Settings, configure, merged_sizes

__all__ = [
    "H100_TF32_DENSE",
    "H100_BF16_DENSE",
    "UTILISATION",
    "SUSTAINED_FLOPS",
    "STEP_FLOOR_S",
    "TRAIN_FACTOR",
    "ATTACK_STEP",
    "IBP_PASS",
    "DATASET_FACTS",
    "NOTEBOOK_PLANS",
    "NotebookPlan",
    "PlannedRun",
    "register_plan",
    "forward_flops",
    "training_flops",
    "method_passes",
    "run_flops",
    "plan_runs",
    "run_frame",
    "estimate",
    "estimate_table",
    "markdown_table",
    "STEP_KIND",
    "step_work",
    "step_kinds",
    "read_step_times",
    "measured_hours",
    "MEASURED_STEP_TIMES",
    "measured_markdown_table",
]

#: NVIDIA H100 SXM5 datasheet: TF32 tensor core 989 TFLOPS *with sparsity*, so 494.7 TFLOP/s dense
H100_TF32_DENSE = 494.7e12
#: the same datasheet: BF16 tensor core 1,979 TFLOPS with sparsity, 989.4 dense (kdutils does not
#: train in BF16; for reference only)
H100_BF16_DENSE = 989.4e12
#: sustained share of :data:`H100_TF32_DENSE` assumed for these small CIFAR / MNIST networks [ours,
#: conservative: large-batch ImageNet training reaches 30-50 % of a GPU's peak, small networks at
#: batch 64-128 a few per cent]
UTILISATION = 0.05
SUSTAINED_FLOPS = UTILISATION * H100_TF32_DENSE  # 24.7 TFLOP/s
#: assumed least wall time of one optimizer step [ours]: a few hundred kernel launches (forward,
#: backward, optimizer, on-device augmentation) and the trainer's per-step host synchronisation
STEP_FLOOR_S = 3e-3
# TRAIN_FACTOR, ATTACK_STEP, IBP_PASS: the units of Method.passes, defined beside it in kdutils.methods.base

#: per dataset: (training images, test images, (channels, height, width), classes) of the full dataset
DATASET_FACTS: dict[str, tuple[int, int, tuple[int, int, int], int]] = {
    "digits": (1348, 449, (1, 8, 8), 10),
    "mnist": (60000, 10000, (1, 28, 28), 10),
    "fashion_mnist": (60000, 10000, (1, 28, 28), 10),
    "cifar10": (50000, 10000, (3, 32, 32), 10),
    "cifar100": (50000, 10000, (3, 32, 32), 100),
}


# ---------------------------------------------------------------- FLOPs


def forward_flops(model: str | nn.Module, input_shape: Sequence[int], num_classes: int = 10) -> int:
    """FLOPs of one forward pass of one image (FlopCounterMode on a batch of 1).

    ``model``: a registered model name (built on the ``meta`` device: no memory, no arithmetic;
    cached per name, shape and classes) or a module (run as it is, on its own device, without
    gradients). ``input_shape`` is (channels, height, width).
    """
    if isinstance(model, str):
        return _named_forward_flops(model, tuple(int(v) for v in input_shape), int(num_classes))
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    return _count(model, torch.zeros(1, *input_shape, device=device))


@lru_cache(maxsize=None)
def _named_forward_flops(name: str, shape: tuple[int, ...], num_classes: int) -> int:
    with torch.device("meta"):
        net = create_model(name, num_classes, shape[0], input_size=shape[-1]).eval()
        x = torch.zeros(1, *shape)
    return _count(net, x)


def _count(net: nn.Module, x: torch.Tensor) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    was_training = net.training
    net.eval()
    try:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            net(x)
    finally:
        net.train(was_training)
    return int(counter.get_total_flops())


def training_flops(model_name: str, input_shape: Sequence[int], num_classes: int = 10) -> int:
    """Training FLOPs of one image through ``model_name``: :data:`TRAIN_FACTOR` (3) x its forward."""
    return TRAIN_FACTOR * forward_flops(model_name, input_shape, num_classes)


def method_passes(method: Mapping[str, Any]) -> tuple[float, float]:
    """(student, teacher) forwards per training image and step that a method's code runs besides
    the trained forward and backward (:data:`TRAIN_FACTOR`) and the teacher's clean logits, each in
    forwards of its own model; ``method``: the method's parameters (``Method.params()``). 0 for a
    method without attacks or bounds; a wrapper (``sr``, ...) costs what its ``inner`` method does.

    Each method says what it runs (its ``passes`` hook: attack steps, interval passes, a second
    trained forward; ``sr``, ``significance``, ``lr`` and ``cmkd`` ask their inner method), so a new
    method is costed by its own file, with no change here.

    Against the per-epoch times notebook 04 measured at ``quick`` (a 2-core CPU, not a GPU;
    ``ibp_small`` for teacher and students, 3 attack steps, warm-up 0.1, KD's teacher logits
    cached): KD 3 forwards per image, so ARD and RSLAD 5.0x KD (measured 5.5x, 5.6x), faithful
    (IBP) 3.4x (4.3x), faithful (PGD) 15.4x (16.4x), the IBP teacher 2.8x (2.4x).
    """
    return create_method(dict(method)).passes()  # each method's own hook (kdutils.methods.base.Method.passes)


def run_flops(
    model: str,
    method: Any,
    epochs: int,
    dataset: str,
    teacher_model: str | None = None,
    *,
    image: tuple[Sequence[int], int] | None = None,
) -> float | None:
    """Training FLOPs per training image of one run (``epochs`` x the trained passes, attacks and
    bounds of :func:`method_passes`, in forwards of the student and of ``teacher_model``). The
    image shape and class count: ``image`` = ``((C, H, W), classes)`` when given (an image
    folder's, from its loaded split), else :data:`DATASET_FACTS`'; None for a dataset in neither.
    A relative cost, for ordering a group of runs (:func:`kdutils.parallel.train_group` starts the
    longest first), not a time."""
    if image is not None:
        shape, classes = tuple(image[0]), int(image[1])
    elif dataset in DATASET_FACTS:
        _, _, shape, classes = DATASET_FACTS[dataset]
    else:
        return None
    return float(epochs * _image_train_flops(model, create_method(method).params(), shape, classes, teacher_model))


def _image_train_flops(
    model: str, params: dict, shape: Sequence[int], classes: int, teacher_model: str | None
) -> float:
    """FLOPs of one training image in one epoch: the student's trained pass (TRAIN_FACTOR forwards)
    and the method's extra passes through the student and through ``teacher_model`` (attacks, bounds:
    :func:`method_passes`). The teacher's forward for its targets is not in it (cached or per batch:
    the plan decides)."""
    extra_s, extra_t = method_passes(params)
    flops = (TRAIN_FACTOR + extra_s) * forward_flops(model, shape, classes)
    if teacher_model and extra_t:
        flops += extra_t * forward_flops(teacher_model, shape, classes)
    return flops


# ---------------------------------------------------------------- plans


@dataclass(frozen=True)
class PlannedRun:
    """One training run a notebook would make: what :meth:`kdutils.Experiment.train` is asked for.

    ``teacher``: the teacher run whose forwards this run needs (None: no teacher forward);
    ``teacher_share``: the share of each batch the teacher runs on (data selection);
    ``rows_share``: the share of the training rows trained on (pruning); ``variant``: what else
    makes the run key differ (a selection's identity). What the method itself runs per batch
    (attacks, interval bounds) follows from ``method`` (:func:`method_passes`).
    """

    dataset: str
    role: str  # "teacher" | "student"
    label: str
    model: str
    method: str  # the method's parameters as JSON (part of the run's identity)
    seed: int
    recipe: Recipe
    teacher: PlannedRun | None = None
    teacher_share: float = 1.0
    rows_share: float = 1.0
    variant: str = ""

    def key(self) -> tuple:
        """What makes two planned runs the same stored run (the run store trains it once)."""
        t = self.teacher.key() if self.teacher is not None else None
        return (
            self.dataset,
            self.model,
            self.method,
            self.seed,
            self.recipe,
            t,
            self.teacher_share,
            self.rows_share,
            self.variant,
        )


def _method(spec: Any) -> tuple[str, bool]:
    m = create_method(spec)
    return json.dumps(m.params(), sort_keys=True), bool(m.needs_teacher)


def _teacher(
    st: Settings, label: str, spec: Any = "ce", *, model: str | None = None, seed: int = 0, rows_share: float = 1.0
) -> PlannedRun:
    method, _ = _method(spec)
    return PlannedRun(
        st.dataset, "teacher", label, model or st.teacher_model, method, seed, st.teacher_recipe, rows_share=rows_share
    )


def planned_teacher(
    st: Settings, label: str, spec: Any = "ce", *, model: str | None = None, seed: int = 0, rows_share: float = 1.0
) -> PlannedRun:
    """The planned teacher run of ``st`` (what a paper module's plan lists; seed 0 unless given;
    ``rows_share``: the share of the training rows it trains on)."""
    return _teacher(st, label, spec, model=model, seed=seed, rows_share=rows_share)


def train_rows(st: Settings) -> int:
    """The number of training rows of ``st``'s split (after ``train_subset`` and the validation split)."""
    return _split_rows(st)[0]


def planned_student(st: Settings, label: str, spec: Any, seed: int, teacher: PlannedRun | None, **kw) -> PlannedRun:
    """A planned student run of ``st`` (keywords as :func:`_student`: ``model``, ``teacher_share``, ...)."""
    return _student(st, label, spec, seed, teacher, **kw)


def profile_datasets(profile: str) -> list[str]:
    """The profile's default dataset, for a plan's ``datasets`` (a notebook with empty ``datasets``)."""
    return _profile_dataset(profile)


def _student(
    st: Settings,
    label: str,
    spec: Any,
    seed: int,
    teacher: PlannedRun | None,
    *,
    model: str | None = None,
    teacher_share: float = 1.0,
    rows_share: float = 1.0,
    variant: str = "",
) -> PlannedRun:
    method, needs = _method(spec)
    return PlannedRun(
        st.dataset,
        "student",
        label,
        model or st.student_model,
        method,
        seed,
        st.student_recipe,
        teacher if needs else None,
        teacher_share if needs else 1.0,
        rows_share,
        variant,
    )


@dataclass(frozen=True)
class NotebookPlan:
    """A notebook's training runs for one dataset's :class:`Settings` (``build``), its datasets per
    profile when none are named (``datasets``), and ``parameters``: the notebook parameters the plan
    assumes, with the notebook's defaults (``tests/experiments/test_costs.py`` checks them against the notebook's
    parameters cell). ``sizes``: the notebook's own sizes, ``sizes(profile, dataset) -> configure
    overrides`` (what it passes to :class:`kdutils.NotebookContext` as ``sizes=``; the overrides win,
    as there). Each :mod:`kdutils.papers` module registers its notebook's plan."""

    notebook: str
    build: Callable[[Settings], list[PlannedRun]]
    datasets: Callable[[str], list[str]]
    parameters: dict[str, Any] = dataclasses.field(default_factory=dict)
    sizes: Callable[[str, str], Mapping[str, Any]] | None = None
    #: the labels whose first seed the claims table trains again at twice the epochs at the
    #: profiles of :data:`kdutils.profiles.LONGER_CHECK_PROFILES` (the convergence check)
    longer: tuple[str, ...] = ()


def longer_runs(runs: Sequence[PlannedRun], labels: Sequence[str], st: Settings) -> list[PlannedRun]:
    """The convergence check's runs: the first seed's run of each of ``labels`` at twice its epochs,
    at the profiles that train them (none elsewhere)."""
    if st.profile not in LONGER_CHECK_PROFILES or not st.seeds:
        return []
    first = st.seeds[0]
    return [
        dataclasses.replace(
            r, label=f"{r.label} (2x epochs)", recipe=dataclasses.replace(r.recipe, epochs=2 * r.recipe.epochs)
        )
        for r in runs
        if r.role == "student" and r.label in labels and r.seed == first
    ]


NOTEBOOK_PLANS: dict[str, NotebookPlan] = {}


def register_plan(plan: NotebookPlan) -> NotebookPlan:
    """Add (or replace) a notebook's plan: how a notebook not yet here joins the table."""
    NOTEBOOK_PLANS[plan.notebook] = plan
    return plan


def _profile_dataset(profile: str) -> list[str]:
    """The profile's default dataset (what a notebook with an empty ``dataset(s)`` parameter runs)."""
    return [configure(profile).dataset]


def _plan(notebook: str) -> NotebookPlan:
    if notebook not in NOTEBOOK_PLANS:
        raise UnknownNameError("notebook", notebook, NOTEBOOK_PLANS)
    return NOTEBOOK_PLANS[notebook]


def plan_runs(
    notebook: str, profile: str = "paper", datasets: Sequence[str] | None = None, **overrides
) -> list[PlannedRun]:
    """The distinct runs ``notebook`` trains at ``profile`` (first asked-for label kept; a run asked
    for twice, e.g. the primary pair's KD and the stronger-teacher curve's, counts once).
    ``datasets``: the notebook's default at the profile when None; ``overrides``: :func:`configure`'s."""
    plan = _plan(notebook)
    out: dict[tuple, PlannedRun] = {}
    for ds in list(datasets) if datasets else plan.datasets(profile):
        st = _settings(plan, profile, ds, overrides)
        runs = plan.build(st)
        for run in runs + longer_runs(runs, plan.longer, st):
            out.setdefault(run.key(), run)
    return list(out.values())


def _settings(plan: NotebookPlan, profile: str, dataset: str, overrides: Mapping[str, Any]) -> Settings:
    """The notebook's settings for ``dataset``: its own sizes (if any), then ``overrides``."""
    return configure(profile, dataset, **merged_sizes(plan.sizes, profile, dataset, overrides))


# ---------------------------------------------------------------- costs


def _split_rows(st: Settings) -> tuple[int, int]:
    """(training rows, validation rows scored per epoch) of ``st``'s split, from :data:`DATASET_FACTS`
    (the stratified hold-out of ``val_fraction`` per class, classes taken as balanced)."""
    if st.dataset not in DATASET_FACTS:
        raise UnknownNameError("dataset of the cost estimate", st.dataset, DATASET_FACTS)
    n = DATASET_FACTS[st.dataset][0]
    val = round(n * st.val_fraction)
    train = n - val
    if st.train_subset is not None:
        train = min(train, st.train_subset)
    return train, val if st.val_subset is None else min(val, st.val_subset)


def _steps(rows: int, r: Recipe) -> int:
    steps = rows // r.batch_size if r.drop_last else -(-rows // r.batch_size)
    return steps if r.max_steps_per_epoch is None else min(steps, r.max_steps_per_epoch)


def run_frame(
    notebook: str, profile: str = "paper", datasets: Sequence[str] | None = None, **overrides
) -> pd.DataFrame:
    """One row per planned run (:func:`plan_runs`) and one per teacher whose cached logits its
    students read: images per epoch, optimizer steps, FLOPs and the hours of both bounds."""
    return _frame(plan_runs(notebook, profile, datasets, **overrides), notebook, profile, overrides)


def _frame(runs: list, notebook: str, profile: str, overrides: dict) -> pd.DataFrame:
    """:func:`run_frame` of runs already planned (``runs``, in :func:`plan_runs`' order)."""
    plan = _plan(notebook)
    return planned_frame(
        runs, {ds: _settings(plan, profile, ds, overrides) for ds in dict.fromkeys(r.dataset for r in runs)}
    )


def planned_frame(runs: Sequence[PlannedRun], settings: Mapping[str, Settings]) -> pd.DataFrame:
    """:func:`run_frame` of ``runs`` planned on ``settings`` (dataset -> the settings they were planned
    on: a notebook's own, overrides included), e.g. a context's (notebook 06's FLOPs column)."""
    rows, cached = [], {}
    for r in runs:
        st = settings[r.dataset]
        _, _, shape, classes = DATASET_FACTS[r.dataset]
        train, val = _split_rows(st)
        rows_used = int(train * r.rows_share)
        steps = _steps(rows_used, r.recipe)
        images = min(rows_used, steps * r.recipe.batch_size)
        teacher_model = r.teacher.model if r.teacher is not None else None
        per_image = _image_train_flops(r.model, json.loads(r.method), shape, classes, teacher_model)
        flops = r.recipe.epochs * (images * per_image + val * forward_flops(r.model, shape, classes))
        if r.teacher is not None:
            f_t = forward_flops(teacher_model, shape, classes)
            if r.recipe.teacher_per_batch:
                flops += r.recipe.epochs * images * r.teacher_share * f_t
            else:  # the teacher's training-set logits, once per teacher (shared by its students)
                cached.setdefault(r.teacher.key(), (r.teacher, train * f_t))
        rows.append(
            dict(
                dataset=r.dataset,
                role=r.role,
                label=r.label,
                model=r.model,
                teacher=r.teacher.model if r.teacher else "",
                seed=r.seed,
                epochs=r.recipe.epochs,
                images_per_epoch=images,
                steps=steps * r.recipe.epochs,
                flops=float(flops),
            )
        )
    for t, flops in cached.values():
        rows.append(
            dict(
                dataset=t.dataset,
                role="teacher logits",
                label=f"{t.label}: training-set logits",
                model=t.model,
                teacher="",
                seed=t.seed,
                epochs=0,
                images_per_epoch=0,
                steps=0,
                flops=float(flops),
            )
        )
    df = pd.DataFrame(rows)
    df["hours_flops"] = df["flops"] / SUSTAINED_FLOPS / 3600
    df["hours_steps"] = df["steps"] * STEP_FLOOR_S / 3600
    df["hours"] = df[["hours_flops", "hours_steps"]].max(axis=1)
    return df


#: what makes two planned runs one *kind* for the wall time of a step (``benchmarks/bench_paper_steps.py``)
STEP_KIND = ["dataset", "model", "teacher", "work", "batch_size", "teacher_per_batch", "teacher_share"]


def step_work(method: str) -> str:
    """What of a method's parameters (its JSON) changes a step's work: names, switches and choices
    (strings, booleans, None) and attack ``steps``; temperatures and weights do not, so KD at tau 1
    and at tau 4 are one kind."""

    def keep(p):
        if isinstance(p, dict):
            return {k: keep(v) for k, v in p.items() if isinstance(v, (dict, str, bool, type(None))) or k == "steps"}
        return p

    return json.dumps(keep(json.loads(method)), sort_keys=True)


def step_kinds(
    notebook: str, profile: str = "paper", datasets: Sequence[str] | None = None, **overrides
) -> pd.DataFrame:
    """One row per planned run of ``notebook`` (:func:`plan_runs`): its kind (:data:`STEP_KIND`), the
    method's JSON, the recipe, the planned optimizer steps and the estimated hours (:func:`run_frame`)."""
    runs = plan_runs(notebook, profile, datasets, **overrides)
    frame = _frame(runs, notebook, profile, overrides).iloc[: len(runs)]  # the runs, then teachers' logits
    rows = []
    for r, f in zip(runs, frame.itertuples()):
        rows.append(
            dict(
                notebook=notebook,
                dataset=r.dataset,
                model=r.model,
                teacher=r.teacher.model if r.teacher else "",
                work=step_work(r.method),
                batch_size=r.recipe.batch_size,
                teacher_per_batch=bool(r.teacher and r.recipe.teacher_per_batch),
                teacher_share=float(r.teacher_share),
                method=r.method,
                recipe=r.recipe,
                seed=r.seed,
                steps=int(f.steps),
                est_hours=float(f.hours),
            )
        )
    return pd.DataFrame(rows)


def _kind_keys(df: pd.DataFrame) -> pd.Series:
    return df[STEP_KIND].astype(str).agg("|".join, axis=1)


def read_step_times(path) -> pd.DataFrame:
    """A table of ``benchmarks/bench_paper_steps.py --csv``: one row per kind with ``s_per_step``."""
    df = pd.read_csv(path, keep_default_na=False)
    df["teacher_per_batch"] = df["teacher_per_batch"].astype(str) == "True"
    for c in ("batch_size",):
        df[c] = df[c].astype(int)
    for c in ("teacher_share", "s_per_step", "floor_s_per_step"):
        df[c] = pd.to_numeric(df[c], errors="coerce")
    return df


def measured_hours(
    step_times: pd.DataFrame, notebooks: Sequence[str] | None = None, profile: str = "paper", **overrides
) -> pd.DataFrame:
    """Per notebook: the planned optimizer steps at the seconds per step measured for each kind
    (``step_times``: :func:`read_step_times`), against :func:`estimate`'s hours. Training steps only
    (validation, teachers' cached logits and the evaluation suite are not in it). A kind without a
    measurement keeps the estimate's time per step; ``steps_unmeasured`` counts its steps."""
    lookup = dict(zip(_kind_keys(step_times), step_times["s_per_step"]))
    rows = []
    for nb in notebooks or sorted(NOTEBOOK_PLANS):
        k = step_kinds(nb, profile, **overrides)
        s = _kind_keys(k).map(lookup)
        missing = s.isna()
        secs = (k["steps"] * s).where(~missing, k["est_hours"] * 3600)
        rows.append(
            dict(
                notebook=nb,
                runs=len(k),
                steps=int(k["steps"].sum()),
                estimate_h=float(k["est_hours"].sum()),
                measured_h=float(secs.sum() / 3600),
                steps_unmeasured=int(k.loc[missing, "steps"].sum()),
            )
        )
    out = pd.DataFrame(rows)
    out["measured / estimate"] = out["measured_h"] / out["estimate_h"]
    return out


def estimate(notebook: str, profile: str = "paper", datasets: Sequence[str] | None = None, **overrides) -> pd.DataFrame:
    """The training cost of ``notebook`` at ``profile`` (default ``paper``), one row per label:
    runs (seeds), epochs, training images per epoch, optimizer steps, PFLOPs and H100 hours
    (:data:`SUSTAINED_FLOPS`, :data:`STEP_FLOOR_S`; see the module docstring). An estimate:
    :func:`measured_hours` puts measured step times on the same steps. An unknown notebook names the known ones."""
    df = run_frame(notebook, profile, datasets, **overrides)
    keys = ["dataset", "role", "label", "model", "teacher"]
    out = (
        df.groupby(keys, sort=False)
        .agg(
            runs=("seed", "size"),
            epochs=("epochs", "max"),
            images_per_epoch=("images_per_epoch", "max"),
            steps=("steps", "sum"),
            flops=("flops", "sum"),
            hours_flops=("hours_flops", "sum"),
            hours_steps=("hours_steps", "sum"),
            hours=("hours", "sum"),
        )
        .reset_index()
    )
    out.loc[out.role == "teacher logits", "runs"] = 0
    out.insert(out.columns.get_loc("flops"), "pflops", out["flops"] / 1e15)
    return out


def estimate_table(notebooks: Sequence[str] | None = None, profile: str = "paper", **overrides) -> pd.DataFrame:
    """One row per notebook (default: every registered plan): datasets, teachers, students, runs,
    epochs, training images per epoch, PFLOPs and H100 hours at ``profile`` (default ``paper``)."""
    rows = []
    for nb in notebooks or sorted(NOTEBOOK_PLANS):
        e = estimate(nb, profile, **overrides)
        trained = e[e.role != "teacher logits"]
        epochs = sorted(set(trained["epochs"]))
        rows.append(
            dict(
                notebook=nb,
                datasets=", ".join(dict.fromkeys(e["dataset"])),
                teachers=int(trained.loc[trained.role == "teacher", "runs"].sum()),
                students=int(trained.loc[trained.role == "student", "runs"].sum()),
                runs=int(trained["runs"].sum()),
                epochs="/".join(str(v) for v in epochs),
                images_per_epoch=int(trained["images_per_epoch"].max()),
                steps=int(e["steps"].sum()),
                pflops=float(e["pflops"].sum()),
                hours_flops=float(e["hours_flops"].sum()),
                hours_steps=float(e["hours_steps"].sum()),
                hours=float(e["hours"].sum()),
            )
        )
    return pd.DataFrame(rows)


def markdown_table(table: pd.DataFrame | None = None) -> str:
    """:func:`estimate_table` as the README's markdown table."""
    t = estimate_table() if table is None else table
    head = (
        "| notebook | dataset | runs (teachers + students) | epochs | training images / epoch | optimizer steps "
        "| training PFLOPs | H100 h at 5 % TF32 | H100 h, step floor | **H100 h (estimate)** |"
    )
    lines = [head, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in t.itertuples():
        lines.append(
            f"| `{r.notebook}` | {r.datasets} | {r.runs} ({r.teachers} + {r.students}) | {r.epochs} "
            f"| {r.images_per_epoch:,} | {r.steps:,} | {r.pflops:,.1f} | {_hours(r.hours_flops)} "
            f"| {_hours(r.hours_steps)} | **{_hours(r.hours)}** |"
        )
    total = t["hours"].sum()
    lines.append(
        f"| all | | {int(t['runs'].sum())} | | | {int(t['steps'].sum()):,} | {t['pflops'].sum():,.1f} "
        f"| {_hours(t['hours_flops'].sum())} | {_hours(t['hours_steps'].sum())} | **{_hours(total)}** |"
    )
    return "\n".join(lines)


#: the step times measured on the lent H100 (``.ci/gpu-check``'s paper-steps stage, 2026-11-26)
MEASURED_STEP_TIMES = "benchmarks/results/paper_steps_h100.csv"


def measured_markdown_table(step_times: pd.DataFrame) -> str:
    """:func:`measured_hours` as the README's markdown table (every registered notebook at ``paper``)."""
    t = measured_hours(step_times)
    lines = [
        "| notebook | runs | optimizer steps | steps of a measured kind | H100 h (estimate, above) "
        "| **H100 h at the measured step times** | measured / estimate |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in t.itertuples():
        lines.append(
            f"| `{r.notebook}` | {r.runs} | {r.steps:,} | {1 - r.steps_unmeasured / r.steps:.1%} "
            f"| {_hours(r.estimate_h)} | **{_hours(r.measured_h)}** | {r.measured_h / r.estimate_h:.2f} |"
        )
    est, meas = t["estimate_h"].sum(), t["measured_h"].sum()
    lines.append(
        f"| all | {int(t['runs'].sum())} | {int(t['steps'].sum()):,} "
        f"| {1 - t['steps_unmeasured'].sum() / t['steps'].sum():.1%} | {_hours(est)} | **{_hours(meas)}** "
        f"| {meas / est:.2f} |"
    )
    return "\n".join(lines)


def _hours(h: float) -> str:
    return f"{h:.1f}" if h >= 0.95 or h == 0 else f"{h:.2f}" if h >= 0.01 else f"{math.ceil(h * 3600)} s"
