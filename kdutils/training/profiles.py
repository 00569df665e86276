"""Profiles pick sizes, never code paths.

* ``smoke``: minutes per notebook on a laptop CPU (it checks code paths), offline: scikit-learn's 8x8 digits,
  a couple of epochs. Used by the tests.
* ``quick``: minutes per notebook on 2 CPU cores, on the real small datasets (MNIST,
  Fashion-MNIST, a CIFAR-10 subset). The default when a person opens a notebook.
* ``full``: the small datasets trained to convergence (20 epochs, cosine schedule:
  the students' validation accuracy has plateaued, which every notebook checks and reports, and
  the claims tables train the first seed of three arms again at 40 epochs to show it),
  5 seeds (3 on the CIFAR-10 subset); on 2 cores with the worker pool about an hour per notebook on MNIST or Fashion-MNIST
  (02, with its stronger-teacher series, 1.5 to 2), and hours on the CIFAR-10 subset (a GPU's job
  there: README "On a GPU").
* ``paper``: the paper's protocol as far as it is known; meant for a GPU.

The **dry run** is a switch, not a profile: ``configure(profile, dataset, dry_run=True)`` (or
``$KD_DRY_RUN=1``) keeps the profile's shapes (dataset, models, optimiser, schedule type,
augmentation, batch size, ``drop_last``, epsilon grid, attacks, ablation teachers) and cuts every
size to :data:`DRY_RUN`: two epochs of at most two batches (``Recipe.max_steps_per_epoch``), two
seeds, a few hundred training / validation / test images, attacks on eight images with two PGD
steps. The epochs are cut, not only the batches: 240 epochs of two batches would still score the
validation split 240 times. A step schedule's milestones keep their place relative to the
length (:func:`_scaled`: 150/180/210 of 240 become 1/2/2 of 2), so the learning rate still drops
inside the run and the schedule's code path runs. An explicit override (``epochs``, ``seeds``,
``train_subset``, ...) wins over the dry run's size. Dry-run runs have their own run keys (the
recipe and the split differ), so they are never reused as real runs.

:func:`configure` turns (profile, dataset, overrides) into one :class:`Settings`
object: models, recipes, seeds, split sizes and evaluation sizes. Every override is a
field of :class:`Settings`; an unknown one names the valid ones.
"""

from __future__ import annotations

import dataclasses
import numbers
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..core.errors import ParameterError, UnknownNameError
from ..core.registry import Registry, check_choice
from ..inputs.recipe import Recipe

#: the executors of groups of runs (filled by :mod:`kdutils.parallel`, which owns them); here so that
#: :class:`Settings` can check ``executor`` when made without importing the layer above
#: the profiles at which a claims table trains its 2x-epochs convergence check (converged students only)
LONGER_CHECK_PROFILES = ("full",)

EXECUTORS: Registry[Callable] = Registry("executor")

PROFILES = ("smoke", "quick", "full", "paper")

#: per dataset: the teacher/student pair, the base recipe, the attack budgets.
#: Source of every choice: docs/papers/cckd.md (MNIST, Fashion-MNIST, CIFAR-10, [ours]
#: recipe: Adam 1e-3, cosine, batch 128) and cmkd.md (CIFAR-100: the CRD protocol).
_ADAM = Recipe(epochs=1, batch_size=128, optimizer="adam", lr=1e-3, schedule="cosine")
_CRD = Recipe(
    epochs=240,
    batch_size=64,
    optimizer="sgd",
    lr=0.05,
    momentum=0.9,
    weight_decay=5e-4,
    schedule="step",
    milestones=(150, 180, 210),
    gamma=0.1,
    augment=True,
    drop_last=True,
)
_MNIST_EPS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3)
_CIFAR_EPS = (0.0, 1 / 255, 2 / 255, 4 / 255, 8 / 255)
DATASET_DEFAULTS: dict[str, dict[str, Any]] = {
    "digits": dict(teacher="lenet5", student="lenet5_half", recipe=_ADAM.replace(batch_size=64), epsilons=_MNIST_EPS),
    "mnist": dict(teacher="lenet5", student="lenet5_half", recipe=_ADAM, epsilons=_MNIST_EPS),
    "fashion_mnist": dict(teacher="lenet5", student="lenet5_half", recipe=_ADAM, epsilons=_MNIST_EPS),
    "cifar10": dict(
        teacher="alexnet",
        student="alexnet_half",
        recipe=_ADAM.replace(augment=True),
        epsilons=_CIFAR_EPS,
        faithful_eps=2 / 255,
    ),
    "cifar100": dict(teacher="resnet32x4", student="resnet8x4", recipe=_CRD, epsilons=_CIFAR_EPS, faithful_eps=2 / 255),
}
_GENERIC = dict(teacher="lenet5", student="lenet5_half", recipe=_ADAM, epsilons=_MNIST_EPS)

#: sizes per (profile, dataset); "*" is the fallback for a dataset not listed.
_SIZES: dict[str, dict[str, dict[str, Any]]] = {
    "smoke": {
        # digits has 1.2k training images: small batches and a higher learning rate give enough steps
        "*": dict(
            teacher_epochs=8,
            student_epochs=6,
            seeds=2,
            train_subset=None,
            test_subset=None,
            val_subset=None,
            attack_samples=64,
            pgd_steps=3,
            batch_size=32,
            lr=3e-3,
        ),
    },
    "quick": {
        "*": dict(
            teacher_epochs=4,
            student_epochs=3,
            seeds=3,
            train_subset=None,
            test_subset=None,
            val_subset=None,
            attack_samples=500,
            pgd_steps=10,
        ),
        "fashion_mnist": dict(teacher_epochs=10),
        # a reduced demonstration on 2 CPU cores (under 15 min per notebook): 10k training images, 2k
        # validation images scored after every epoch, 2k test images; students without augmentation,
        # so the teacher's logits are computed once instead of every batch (paper: crop + flip for both)
        # ablation_teachers=False: no extra teachers trained only for an ablation (notebook 03's
        # fixed-threshold SR teacher, 300 s here)
        "cifar10": dict(
            teacher_epochs=8,
            student_epochs=3,
            seeds=1,
            train_subset=10000,
            test_subset=2000,
            val_subset=2000,
            attack_samples=200,
            pgd_steps=5,
            student_augment=False,
            ablation_teachers=False,
        ),
    },
    "full": {
        # converged students on a CPU: 20 epochs of the cosine recipe (the quick students are 4-7
        # points short on Fashion-MNIST); larger attack samples for tighter robustness numbers
        "*": dict(
            teacher_epochs=20,
            student_epochs=20,
            seeds=5,  # five seeds (issue 32.6): a 90 % t interval is 2.13 standard errors wide, not 2.92
            train_subset=None,
            test_subset=None,
            val_subset=None,
            attack_samples=1000,
            pgd_steps=20,
        ),
        # the same 10k / 2k / 2k subset as quick, three seeds, every teacher; students augmented
        # (crop + flip) like their teacher, as every paper here trains them (the teacher then runs on
        # every batch: protocol v2, issue 31.12; the README's full CIFAR-10 sections predate it)
        "cifar10": dict(
            teacher_epochs=30,
            student_epochs=20,
            seeds=3,
            train_subset=10000,
            test_subset=2000,
            val_subset=2000,
            attack_samples=500,
        ),
    },
    "paper": {
        "*": dict(
            teacher_epochs=100,
            student_epochs=100,
            seeds=5,
            train_subset=None,
            test_subset=None,
            val_subset=None,
            attack_samples=2000,
            pgd_steps=20,
        ),
        "cifar10": dict(teacher_epochs=160, student_epochs=160),
        "cifar100": dict(teacher_epochs=240, student_epochs=240),
    },
}

#: the dry run's sizes (a switch on any profile: ``configure(..., dry_run=True)`` or ``$KD_DRY_RUN=1``);
#: each caps the profile's own size (a smaller one stays). Shapes are never changed.
DRY_RUN: dict[str, int] = dict(
    epochs=2,
    max_steps_per_epoch=2,
    seeds=2,
    train_subset=256,
    val_subset=64,
    test_subset=128,
    attack_samples=8,
    pgd_steps=2,
    train_pgd_steps=2,
)

#: what a notebook prints beside a dry run's settings
DRY_RUN_NOTE = "DRY RUN: the profile's shapes, every size cut; the numbers mean nothing"

#: the environment variable that turns the dry run on where a notebook's overrides do not name it
DRY_RUN_ENV = "KD_DRY_RUN"


def dry_run_from_env() -> bool:
    """``$KD_DRY_RUN`` as a bool: ``1``, ``true``, ``yes`` or ``on`` (any case) turn the dry run on."""
    return os.environ.get(DRY_RUN_ENV, "").strip().lower() in ("1", "true", "yes", "on")


DEFAULT_DATASET = {"smoke": "digits", "quick": "fashion_mnist", "full": "fashion_mnist", "paper": "fashion_mnist"}


@dataclass(frozen=True)
class Settings:
    """Everything a notebook needs to know about sizes, resolved for one dataset."""

    profile: str
    dataset: str
    teacher_model: str
    student_model: str
    teacher_recipe: Recipe
    student_recipe: Recipe
    seeds: tuple[int, ...]
    val_fraction: float = 0.1
    train_subset: int | None = None
    test_subset: int | None = None
    val_subset: int | None = None
    epsilons: tuple[float, ...] = _MNIST_EPS
    attack_samples: int = 500
    pgd_steps: int = 10
    #: steps of the PGD attacks inside training losses (ARD, RSLAD, faithful KD's PGD variant):
    #: a size the notebook passes to those methods (``steps=``), 10 as their code [public]
    train_pgd_steps: int = 10
    #: radius of the faithfulness evaluations (disagreement, confidence_gap, certified_gap):
    #: faithful.md's epsilon, 0.1 on MNIST and Fashion-MNIST [paper, Fig. 1], 2/255 on CIFAR
    faithful_eps: float = 0.1
    #: train the teachers that serve only an ablation (e.g. notebook 03's fixed-threshold SR
    #: teacher); a size the profile picks (off at quick on the CIFAR-10 subset, for time)
    ablation_teachers: bool = True
    device: str = "auto"
    #: NHWC weights and batches; None: on for convolutional models on the CPU (faster there)
    channels_last: bool | None = None
    progress: bool = True
    #: how a group of independent runs is trained (kdutils.parallel): "auto" ($KD_EXECUTOR, else
    #: serial on a GPU or at smoke, else processes), "serial", "processes" or "ray"
    executor: str = "auto"
    #: worker processes of the "processes" executor (0: one per CPU core)
    workers: int = 0
    #: intra-op threads per worker (0: cores // workers)
    threads: int = 0
    #: the dry run (see the module docstring): the profile's shapes with every size cut to :data:`DRY_RUN`
    dry_run: bool = False
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Every size and choice checked when the settings are made (by :func:`configure`, so in a
        notebook's set-up cell), before anything is loaded or trained: one
        :class:`~kdutils.errors.ParameterError` line naming the override and what it accepts."""
        for name in ("workers", "threads"):  # -1 is no "all cores" here: 0 is
            check_count(name, getattr(self, name), "0 for the default (one worker per core; cores // workers threads)")
        for name in ("attack_samples", "pgd_steps", "train_pgd_steps"):
            if not (is_count(getattr(self, name)) and getattr(self, name) >= 1):
                raise ParameterError(name, getattr(self, name), "an int >= 1")
        for name in ("train_subset", "test_subset", "val_subset"):
            v = getattr(self, name)
            if v is not None and not (is_count(v) and v >= 1):
                raise ParameterError(name, v, "an int >= 1, or None for all of it")
        eps = self.epsilons
        if not (isinstance(eps, (list, tuple)) and eps and all(_real(e) and 0 <= e <= 1 for e in eps)):
            raise ParameterError(
                "epsilons", eps, "a non-empty list of attack budgets in [0, 1] (pixel space), e.g. [0.0, 0.1, 0.2]"
            )
        object.__setattr__(self, "epsilons", tuple(eps))  # a list from a notebook: hashable, the same key
        if not (_real(self.faithful_eps) and 0 < self.faithful_eps <= 1):
            raise ParameterError("faithful_eps", self.faithful_eps, "a number in (0, 1] (pixel space), e.g. 0.1")
        if not (_real(self.val_fraction) and 0 <= self.val_fraction < 1):
            raise ParameterError("val_fraction", self.val_fraction, "a number in [0, 1)")
        for name in ("progress", "dry_run"):
            if not isinstance(getattr(self, name), bool):
                raise ParameterError(name, getattr(self, name), "True or False")
        if self.executor != "auto" and self.executor not in EXECUTORS:
            choices = ", ".join(repr(n) for n in ["auto", *EXECUTORS.names()])
            raise ParameterError("executor", self.executor, f"one of {choices}")

    def model_and_recipe(self, role: str, model: str | None = None, recipe: Recipe | None = None) -> tuple:
        """The one rule for a run's model and recipe: those given, else the role's (``teacher`` or
        ``student``) from these settings."""
        check_choice("role", role, ("teacher", "student"))
        own = (
            (self.teacher_model, self.teacher_recipe)
            if role == "teacher"
            else (self.student_model, self.student_recipe)
        )
        return model or own[0], recipe or own[1]

    def replace(self, **changes) -> "Settings":
        return dataclasses.replace(self, **changes)


#: overrides a notebook may pass besides Settings' own fields
_SHORTCUTS = (
    "epochs",
    "teacher_epochs",
    "student_epochs",
    "batch_size",
    "lr",
    "optimizer",
    "schedule",
    "augment",
    "max_steps_per_epoch",
)
_RECIPE_SHORTCUTS = ("batch_size", "lr", "optimizer", "schedule", "augment", "max_steps_per_epoch")


def override_names() -> list[str]:
    own = [f.name for f in dataclasses.fields(Settings) if f.name not in ("profile", "dataset")]
    return sorted(set(own) | set(_SHORTCUTS))


SEEDS_EXPECTED = (
    "an int n >= 1 (seeds 0..n-1), 0 for the profile's default, "
    "or a non-empty list of distinct non-negative ints such as [0, 1, 2]"
)


def is_count(value: object) -> bool:
    """Whether ``value`` is an int >= 0 (not a bool): the "first n; 0 for all" parameters
    (``max_pairs``, ``series_teachers``, ``ablation_seeds``, ``sweep_seeds``, ...)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 0


def _real(x: object) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def check_count(name: str, value: object, zero: str) -> int:
    """``value`` if it is an int >= 0 (not a bool), else a :class:`ParameterError` for ``name``;
    ``zero`` says what 0 means."""
    if not is_count(value):
        raise ParameterError(name, value, f"an int >= 0 ({zero})")
    return int(value)


def check_seeds(seeds: object) -> tuple[int, ...] | None:
    """The seeds ``seeds`` names: ``None`` for 0 (the profile's default), else a tuple of ints.

    An int n >= 1 means seeds 0..n-1; a list (or tuple, range) names the seeds themselves and
    must be non-empty, of distinct non-negative ints (-1 is the results' "no seed" marker).
    Anything else (``[]``, a negative int, a float, a string) raises
    :class:`~kdutils.errors.ParameterError` naming what is allowed.
    """
    if isinstance(seeds, numbers.Integral) and not isinstance(seeds, bool):
        if seeds < 0:
            raise ParameterError("seeds", seeds, SEEDS_EXPECTED)
        return tuple(range(int(seeds))) if seeds else None
    if isinstance(seeds, (list, tuple, range)):
        ok = all(isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= 0 for s in seeds)
        if seeds and ok and len(set(seeds)) == len(seeds):
            return tuple(int(s) for s in seeds)
    raise ParameterError("seeds", seeds, SEEDS_EXPECTED)


def configure(profile: str = "quick", dataset: str | None = None, **overrides) -> Settings:
    """Resolve a profile for a dataset, then apply overrides.

    ``seeds`` may be an int n >= 1 (seeds 0..n-1), 0 (the profile's default) or a non-empty
    list of distinct non-negative ints (:func:`check_seeds`). ``epochs`` sets the
    student's epochs; ``teacher_epochs`` the teacher's; ``batch_size``, ``lr``,
    ``optimizer``, ``schedule``, ``augment``, ``max_steps_per_epoch`` change both recipes.
    ``dry_run=True`` (default: ``$KD_DRY_RUN``) cuts every size to :data:`DRY_RUN` and keeps the
    profile's shapes (module docstring).
    """
    from ..inputs.data import DATASETS

    check_choice("profile", profile, PROFILES)
    dataset = dataset or DEFAULT_DATASET[profile]
    if not (isinstance(dataset, str) and dataset.startswith("image_folder:")):
        DATASETS.get(dataset)  # unknown dataset -> error naming the valid ones
    valid = override_names()
    for k in overrides:
        if k not in valid:
            raise UnknownNameError("override", k, valid)
    base = DATASET_DEFAULTS.get(dataset, _GENERIC)
    sizes = {**_SIZES[profile]["*"], **_SIZES[profile].get(dataset, {})}
    ov = dict(overrides)
    dry_run = ov.pop("dry_run", None)
    dry_run = dry_run_from_env() if dry_run is None else dry_run
    if not isinstance(dry_run, bool):
        raise ParameterError("dry_run", dry_run, "True or False")
    if dry_run:
        sizes = _dry_sizes(sizes)
    t_epochs = ov.pop("teacher_epochs", sizes["teacher_epochs"])
    s_epochs = ov.pop("student_epochs", ov.pop("epochs", sizes["student_epochs"]))
    recipe_changes = {k: ov.pop(k) for k in _RECIPE_SHORTCUTS if k in ov}
    for k in ("batch_size", "lr", "max_steps_per_epoch"):  # a profile (or the dry run) may size these too
        if k not in recipe_changes and k in sizes:
            recipe_changes[k] = sizes[k]
    recipe: Recipe = base["recipe"]
    seeds = check_seeds(ov.pop("seeds", 0)) or tuple(range(sizes["seeds"]))
    student_recipe = _scaled(recipe, s_epochs, recipe_changes)
    if "student_augment" in sizes and "augment" not in recipe_changes:
        student_recipe = student_recipe.replace(augment=sizes["student_augment"])
    fields = dict(
        profile=profile,
        dataset=dataset,
        teacher_model=base["teacher"],
        student_model=base["student"],
        teacher_recipe=_scaled(recipe, t_epochs, recipe_changes),
        student_recipe=student_recipe,
        seeds=seeds,
        train_subset=sizes["train_subset"],
        test_subset=sizes["test_subset"],
        val_subset=sizes["val_subset"],
        epsilons=tuple(base["epsilons"]),
        attack_samples=sizes["attack_samples"],
        pgd_steps=sizes["pgd_steps"],
        faithful_eps=base.get("faithful_eps", 0.1),
        ablation_teachers=sizes.get("ablation_teachers", True),
        dry_run=dry_run,
    )
    if dry_run:  # the attacks inside training losses (ARD, RSLAD, faithful KD's PGD variant)
        fields["train_pgd_steps"] = min(Settings.train_pgd_steps, DRY_RUN["train_pgd_steps"])
    fields.update(ov)
    return Settings(**fields)


def _dry_sizes(sizes: dict[str, Any]) -> dict[str, Any]:
    """A profile's sizes cut to :data:`DRY_RUN` by :func:`cut_to_dry_run`; a size the profile
    leaves out (``max_steps_per_epoch``) or sets to None (all of it) becomes the dry run's."""
    return cut_to_dry_run({**{k: None for k in _CUT_WHEN_NONE}, **sizes})


_EPOCHS = ("epochs", "teacher_epochs", "student_epochs")
_CUT_WHEN_NONE = ("train_subset", "val_subset", "test_subset", "max_steps_per_epoch")


def cut_to_dry_run(sizes: dict[str, Any]) -> dict[str, Any]:
    """A notebook's own sizes (``kdutils.faithful_setup.sizes``: overrides that
    :class:`~kdutils.NotebookContext` applies before the user's) cut like the profile's in a dry
    run: each size named in :data:`DRY_RUN` becomes the smaller of the two (a subset of None, all
    of it, becomes the dry run's); everything else (models, epsilons, warm-up shares) is kept.
    Without this a notebook's own ``pgd_steps = 20`` would count as an explicit override and
    win over the dry run."""
    out = dict(sizes)
    for k, v in sizes.items():
        cap = DRY_RUN["epochs"] if k in _EPOCHS else DRY_RUN.get(k)
        if cap is None:
            continue
        if v is None and k in _CUT_WHEN_NONE:
            out[k] = cap
        elif isinstance(v, numbers.Integral) and not isinstance(v, bool):
            out[k] = min(int(v), cap)
    return out


def merged_sizes(
    sizes: Callable[[str, str], Mapping[str, Any]] | None, profile: str, dataset: str, overrides: Mapping[str, Any]
) -> dict[str, Any]:
    """A notebook's own sizes for ``dataset`` (``sizes(profile, dataset)``), then ``overrides`` on top.

    ``epochs`` (the students' shortcut) in ``overrides`` replaces ``student_epochs`` of the sizes,
    which :func:`kdutils.configure` would otherwise prefer. In a dry run (``overrides["dry_run"]``,
    else ``$KD_DRY_RUN``) the notebook's sizes are cut first (:func:`cut_to_dry_run`).
    """
    own = dict(sizes(profile, dataset)) if sizes is not None else {}
    dry = overrides.get("dry_run")
    dry = dry_run_from_env() if dry is None else dry is True
    if dry:  # the notebook's own sizes are cut too; the user's overrides are not
        own = cut_to_dry_run(own)
    if "epochs" in overrides:
        own.pop("student_epochs", None)
    return {**own, **overrides}


def _scaled(recipe: Recipe, epochs: int, changes: dict) -> Recipe:
    """The recipe with ``epochs``; step milestones keep their place relative to the length."""
    r = recipe.replace(**changes)
    if r.schedule == "step" and r.milestones and epochs != r.epochs:
        ms = tuple(sorted({max(1, round(m * epochs / r.epochs)) for m in r.milestones}))
        return r.replace(epochs=epochs, milestones=ms)
    return r.replace(epochs=epochs)
