"""Notebook 04's (faithful KD) sizes per profile and dataset, from one place.

faithful.md asks for models IBP can bound tightly (the IBP CNNs of Gowal et al. 2018), a
certifiably robust teacher and attacks inside training (ARD, RSLAD, the PGD variant of faithful
KD). Those cost far more per step than notebook 00-03's LeNets, so this notebook picks its own
sizes, per profile and dataset, as :func:`kdutils.configure` overrides (:func:`sizes`, passed to
:class:`kdutils.NotebookContext` as ``sizes=``; the notebook's ``overrides`` still win). Profiles
pick sizes, never code paths: every profile runs the same cells.

* :data:`SIZES`: models, training subset, epochs, the attack steps inside training
  (``train_pgd_steps``) and in the evaluations (``pgd_steps``), the evaluation points
  (``attack_samples``) and the faithfulness radius ``faithful_eps``;
* :data:`RAMPS`: the warm-up and ramp fractions of IBP training and of faithful KD's
  eps / mu schedule [ours: Gowal et al.'s MNIST fractions, 1/30 and 1/6 of 60k steps, collapse
  the teacher to a constant when training has only a few hundred steps, so the short profiles
  ramp over a longer share of training];
* :data:`VARIANT_SEEDS`: how many seeds the PGD-estimated faithful variant trains (it costs
  about 5x the IBP one per step);
* :data:`DEFAULT_DATASETS`: the datasets a profile runs when the notebook names none.

Where the numbers come from: faithful.md (eps 0.1 on MNIST and Fashion-MNIST [paper, Fig. 1],
2/255 on CIFAR-10; teacher "large", students "small" and "medium" [ours]) and, for ``quick``, a
timing of one niced run on this project's 2-core machine (the notebook's environment section).
"""

from __future__ import annotations

from typing import Any

from ..training.profiles import PROFILES

__all__ = [
    "SIZES",
    "RAMPS",
    "VARIANT_SEEDS",
    "DEFAULT_DATASETS",
    "TEACHER_CANDIDATES",
    "sizes",
    "ramps",
    "variant_seeds",
    "default_datasets",
    "teacher_candidates",
    "choose_teacher",
]

#: per profile, per dataset ("*": any other) the configure overrides of this notebook
SIZES: dict[str, dict[str, dict[str, Any]]] = {
    # digits (8x8, zero-padded to the models' minimum size): an IBP teacher is not certified at
    # eps 0.1 on 1.2k images in a few epochs (about 12 % certified), so smoke uses eps 0.05
    # (ibp_small, 8 epochs: 92 % clean, 66 % certified); ibp_medium costs 10x on padded digits
    "smoke": {
        "*": dict(
            teacher_model="ibp_small",
            student_model="ibp_small",
            faithful_eps=0.05,
            teacher_epochs=8,
            student_epochs=3,
            train_pgd_steps=2,
            pgd_steps=3,
            attack_samples=48,
        ),
    },
    # 2 CPU cores, under 15 min per dataset: a 10k-image training subset (stratified), 1k
    # validation images scored per epoch, the full 10k test set for accuracy and the first 500
    # test images for the attacks and bounds; 3-step PGD inside training, 5 in the evaluations.
    # Teacher: chosen by the notebook on the validation split among TEACHER_CANDIDATES (ibp_small,
    # the students' own architecture, first; ibp_medium about 5x its forward FLOPs); the
    # choice and its numbers are in the notebook's "Choosing the teacher" table and in
    # results/04_faithful/<profile>/<dataset>.csv (the "teacher candidate ..." rows). An earlier
    # choice of ibp_small read test-set certified accuracy: protocol v2 replaced it. With PyTorch's
    # default initialisation IBP training collapsed ibp_medium to a constant on this subset; the IBP
    # initialisation (kdutils.models.ibp_init_, Shi et al. 2021) trains it.
    "quick": {
        "*": dict(
            teacher_model="ibp_small",
            student_model="ibp_small",
            faithful_eps=0.1,
            train_subset=10000,
            val_subset=1000,
            teacher_epochs=4,
            student_epochs=3,
            train_pgd_steps=3,
            pgd_steps=5,
            attack_samples=500,
        ),
    },
    # quick's 10k subset trained long enough to plateau (like the full CIFAR-10 subset of
    # kdutils.profiles): teacher 30 epochs, students 20, PGD-5 inside training, PGD-20 and 1,000
    # points in the evaluations; the quick teacher, for the reason above. Estimated from quick's
    # measured per-run times (04_mnist: KD 7 s, ARD 32 s, RSLAD 33 s, faithful IBP 26 s, faithful
    # PGD 99 s for 3 epochs of 10k with PGD-3) scaled by epochs and attack steps: about 55 min per
    # dataset on 2 cores with the worker pool; measured there beside other work, 7 of MNIST's 19
    # runs took about 80 min (faithful PGD about 40-55 s per epoch); quiet, unmeasured. Run on
    # one H100 (2026-11-26, 8 workers per dataset, both at once): 5.5 min per dataset, plateau
    # +0.1 points over the last 4 of 20 epochs (docs/results-notes.md, notebook 04). The paper's full 60k and PGD-10
    # inside training cost about 100x quick, days on a CPU: that is the paper profile's job.
    "full": {
        "*": dict(
            teacher_model="ibp_small",
            student_model="ibp_small",
            faithful_eps=0.1,
            train_subset=10000,
            val_subset=1000,
            teacher_epochs=30,
            student_epochs=20,
            train_pgd_steps=5,
            pgd_steps=20,
            attack_samples=1000,
        ),
    },
    # the spec's models (not run: no GPU here; whether ibp_large trains under IBP with these ramps
    # is unverified); IBP training's length as the profile's (100 epochs; CIFAR-10 160)
    "paper": {
        "*": dict(
            teacher_model="ibp_large", student_model="ibp_small", faithful_eps=0.1, train_pgd_steps=10, pgd_steps=20
        ),
        "cifar10": dict(
            teacher_model="ibp_large",
            student_model="ibp_medium",
            faithful_eps=2 / 255,
            train_pgd_steps=10,
            pgd_steps=20,
        ),
    },
}
# CIFAR-10 at the short profiles: their sizes at faithful.md's CIFAR-10 epsilon, 2/255
for _profile in ("smoke", "quick", "full"):
    SIZES[_profile]["cifar10"] = {**SIZES[_profile]["*"], "faithful_eps": 2 / 255}

#: (warmup, ramp) as fractions of training, for IBP training and for faithful KD's schedule
RAMPS: dict[str, tuple[float, float]] = {
    "smoke": (0.1, 0.5),
    "quick": (0.1, 0.5),
    "full": (0.1, 0.5),  # 2.3k teacher steps on the 10k subset: still short, quick's shares [ours]
    "paper": (1 / 30, 1 / 6),
}

#: seeds of the PGD-estimated faithful variant; None: all the notebook's seeds
VARIANT_SEEDS: dict[str, int | None] = {"smoke": None, "quick": 1, "full": None, "paper": None}

#: the teacher architectures notebook 04 chooses among, per profile, simplest first (protocol v2, item 2:
#: architecture choices on the validation split, never the test set) [ours]. The profile's
#: ``teacher_model`` (:data:`SIZES`) is the first; :func:`choose_teacher` decides. smoke has one (the
#: medium CNN costs 10x on padded digits); paper keeps the spec's large teacher.
TEACHER_CANDIDATES: dict[str, tuple[str, ...]] = {
    "smoke": ("ibp_small",),
    "quick": ("ibp_small", "ibp_medium"),
    "full": ("ibp_small", "ibp_medium"),
    "paper": ("ibp_large",),
}

#: a profile's datasets when the notebook names none (quick: MNIST, the paper's Fig. 1)
DEFAULT_DATASETS: dict[str, list[str]] = {"smoke": [], "quick": ["mnist"], "full": ["mnist"], "paper": ["cifar10"]}


def _check(profile: str) -> None:
    if profile not in PROFILES:
        from ..core.errors import UnknownNameError

        raise UnknownNameError("profile", profile, PROFILES)


def sizes(profile: str, dataset: str) -> dict[str, Any]:
    """The :func:`kdutils.configure` overrides of notebook 04 for ``dataset`` at ``profile``."""
    _check(profile)
    table = SIZES[profile]
    return dict(table.get(dataset, table["*"]))


def ramps(profile: str) -> tuple[float, float]:
    """(warmup, ramp) fractions of training for IBP training and faithful KD at ``profile``."""
    _check(profile)
    return RAMPS[profile]


def variant_seeds(profile: str, seeds: tuple[int, ...], chosen: int = 0) -> tuple[int, ...]:
    """The seeds the PGD-estimated faithful variant trains: the first ``chosen`` of ``seeds``
    (0: the profile's :data:`VARIANT_SEEDS`, None there: all of them)."""
    _check(profile)
    n = chosen or VARIANT_SEEDS[profile] or len(seeds)
    return tuple(seeds[: max(1, n)])


def default_datasets(profile: str) -> list[str]:
    """The datasets to run when none are named (quick: ``["mnist"]``; smoke: ``[]``, digits)."""
    _check(profile)
    return list(DEFAULT_DATASETS[profile])


def teacher_candidates(profile: str, dataset: str, teacher_model: str | None = None) -> tuple[str, ...]:
    """The teacher architectures notebook 04 chooses among at ``profile`` (:data:`TEACHER_CANDIDATES`),
    led by ``teacher_model`` (the settings', e.g. a user's override) when it is not one of them."""
    _check(profile)
    cands = TEACHER_CANDIDATES[profile]
    if teacher_model is None:
        teacher_model = sizes(profile, dataset)["teacher_model"]
    return cands if teacher_model in cands else (teacher_model, *cands)


def choose_teacher(scores: "list[tuple[str, float, int]]") -> tuple[str, str]:
    """The one-standard-error rule on the validation split [ours; the rule: Breiman et al. 1984,
    Hastie, Tibshirani and Friedman, *The Elements of Statistical Learning*, 2nd ed., Sec. 7.10]:
    of ``scores`` = ``[(model, validation certified accuracy, validation images), ...]`` listed
    simplest first, the first whose certified accuracy is at least the best one's minus its standard
    error sqrt(p (1 - p) / n). Returns ``(model, why)``.

    Why this rule: a larger teacher costs several times the small one per step (and faithful KD
    propagates its bounds at every student step), so it is used only where the validation split
    says it certifies measurably more; a difference inside one standard error is not that.
    """
    if not scores:
        raise ValueError("choose_teacher needs at least one (model, certified accuracy, images) score")
    for m, p, n in scores:
        if not (0.0 <= p <= 1.0) or int(n) < 1:
            raise ValueError(f"{m}: certified accuracy {p} must be in [0, 1] over n >= 1 images (got n = {n})")
    best_model, best, n_best = max(scores, key=lambda s: s[1])
    se = (best * (1.0 - best) / n_best) ** 0.5
    for m, p, _n in scores:
        if p >= best - se - 1e-12:
            if m == best_model:
                return m, f"{m}: the highest validation certified accuracy ({best:.3f})"
            return m, (
                f"{m}: within one standard error ({se:.3f}) of the highest validation certified accuracy "
                f"({best_model} {best:.3f} against {p:.3f}); the simpler candidate"
            )
    raise AssertionError("unreachable: the best candidate is within its own standard error")
