"""Notebook 03: self-regulated teachers and significance-based distillation.

Mishra and Sundaram, *Self Regulated Learning Mechanism for Data Efficient Knowledge Distillation*,
arXiv 2102.07125 (2021). The single home of the notebook's teachers and students, its pruning
experiment, its figures and its claims (each one comparison named in advance, with its rule); the
notebook ``notebooks/03_self_regulated.ipynb`` shows and calls them, and the cost plan is built from
them here. No implementation and no result numbers are public and the full text could not be read:
beyond the abstract [paper] almost every choice is this project's [ours], each one a parameter.

What each function does per dataset of the notebook's context (:class:`kdutils.NotebookContext`),
in the notebook's order: :func:`train_teachers`, :func:`significance`, :func:`show_weights`,
:func:`train_students`, :func:`accuracy_vs_samples`, :func:`pruning`, :func:`suite`,
:func:`claims`, :func:`check_lines`.
"""

from __future__ import annotations

import inspect
from typing import Any

import pandas as pd

from ..evaluation.evaluations import describe_attack_protocol, robust_key
from ..evaluation.selection import DropLeastSignificant, DropRandom, SignificanceWeights
from ..experiments import costs
from ..methods.significance import significance_weights
from ..report import claims as C
from ..report import exercises as X
from ..report import plots
from ..report.results import claims_frame, mean_std_cells, mean_std_table

NOTEBOOK = "03_self_regulated"
CITATION = (
    "Mishra and Sundaram, Self Regulated Learning Mechanism for Data Efficient Knowledge Distillation, "
    "arXiv 2102.07125 (2021)"
)
#: the notebook in a few words (the README's table, :func:`kdutils.report.published.overview`)
SHORT = "Mishra & Sundaram 2021, self-regulated KD"
TEACHES = "a self-regulated teacher's significance of each sample; data-efficient distillation"

#: teacher label -> method spec: the same architecture and recipe (seed 0); each run is recorded as
#: ``teacher <label>``
TEACHERS: dict[str, Any] = {
    "normal": "ce",  # the stored teacher of notebooks 00 and 01 (same configuration, same key)
    "SR (schedule)": "ce+sr",  # [paper] the SR teacher; [ours] notebook 01's gate on its cross-entropy
    "SR (fixed 0.9)": {"name": "sr", "inner": "ce", "beta": 0.9},  # [ours] confidence < 0.9 at every epoch
}
#: the teachers the notebook parameter ``fixed_threshold_teacher`` switches (an ablation)
ABLATION_TEACHERS = ["SR (fixed 0.9)"]
#: the SR teacher's run label: its participation counts are the significance s_i [paper]
SR_TEACHER = "teacher SR (schedule)"
#: label -> (method spec, teacher label or None, weighted by the SR teacher's significance): the
#: same student, recipe, epochs and seeds, every one evaluated against the normally trained teacher
STUDENTS: dict[str, tuple[Any, str | None, bool]] = {
    "student alone": ("ce", None, False),
    "KD (normal teacher)": ("kd", "normal", False),
    "KD (SR teacher)": ("kd", "SR (schedule)", False),
    "significance-based": ("significance", "SR (schedule)", True),  # [paper]; weights s_i / max s [ours]
    "regulated": ("kd+sr", "SR (schedule)", False),  # [paper]
    "hybrid": ("significance+sr", "SR (schedule)", True),  # [paper]
}
#: the three ways to distil of the paper, each compared with KD from the normal teacher [paper]
THREE = ("significance-based", "regulated", "hybrid")
#: the 2x-epochs convergence check at full: the student alone, KD and the headline method
LONGER = ("student alone", "KD (normal teacher)", "hybrid")
#: the pruning experiment [ours]: which k % of the training set the KD student (normal teacher) drops
HOWS = ("least significant", "random")
#: the notebook parameter ``prune_fractions``' default [ours]
PRUNE_FRACTIONS = [0.1, 0.3, 0.5]
#: the shared evaluation suite's metrics (robust accuracy at the grid's middle epsilon is added)
SUITE = ["accuracy", "ece", "agreement", "kl_teacher_student", "mu_s_train", "mu_f_train", "data_usage"]
#: figure stems (each saved as ``<stem>_<dataset>.png``); ``pruning`` only with ``prune_fractions``
FIGURES = ("significance_hist", "most_significant", "least_significant", "accuracy_vs_samples", "pruning")


def pruned_label(how: str, k: float) -> str:
    """The run label of the KD student trained without the ``how`` (least significant, random) ``k``."""
    return f"KD minus {how} {k:g}"


def _check_fixed_threshold(fixed_threshold_teacher) -> None:
    """The notebook parameter ``fixed_threshold_teacher`` is True, False or ``"auto"``."""
    if fixed_threshold_teacher not in (True, False, "auto"):
        raise ValueError(f"fixed_threshold_teacher must be True, False or 'auto', got {fixed_threshold_teacher!r}")


def teachers(st, fixed_threshold_teacher: bool | str = "auto") -> dict[str, Any]:
    """The teachers trained on one dataset's settings: :data:`TEACHERS`, the ablation teachers only
    where ``fixed_threshold_teacher`` says so (``"auto"``: the settings' ``ablation_teachers``)."""
    _check_fixed_threshold(fixed_threshold_teacher)
    wanted = st.ablation_teachers if fixed_threshold_teacher == "auto" else fixed_threshold_teacher
    return {label: spec for label, spec in TEACHERS.items() if label not in ABLATION_TEACHERS or wanted}


def plan(st, prune_fractions=PRUNE_FRACTIONS, fixed_threshold_teacher: bool | str = "auto") -> list:
    """The runs the notebook trains on one dataset's settings (for :mod:`kdutils.costs`)."""
    ts = {
        label: costs.planned_teacher(st, f"teacher {label}", spec)
        for label, spec in teachers(st, fixed_threshold_teacher).items()
    }
    runs = list(ts.values())
    runs += [
        costs.planned_student(st, label, spec, s, ts[t] if t else None)
        for label, (spec, t, _) in STUDENTS.items()
        for s in st.seeds
    ]
    runs += [
        costs.planned_student(st, pruned_label(how, k), "kd", s, ts["normal"], rows_share=1 - k, variant=f"{how} {k}")
        for k in prune_fractions
        for s in st.seeds
        for how in HOWS
    ]
    return runs


#: the datasets a profile runs when the notebook names none (the profile's one dataset)
default_datasets = costs.profile_datasets

costs.register_plan(
    costs.NotebookPlan(
        NOTEBOOK,
        plan,
        default_datasets,
        {"prune_fractions": PRUNE_FRACTIONS, "fixed_threshold_teacher": "auto"},
        longer=LONGER,
    )
)


# ---------------------------------------------------------------- the notebook's steps
def train_teachers(ctx, fixed_threshold_teacher: bool | str = "auto") -> pd.DataFrame:
    """Per dataset: the normally trained teacher, the SR teacher and (where asked for) the
    fixed-threshold one, without the attacks; their accuracy, sample-epochs and data usage."""
    _check_fixed_threshold(fixed_threshold_teacher)
    for ds in ctx:
        with ctx.timing(ds):
            for label, spec in teachers(ctx.settings(ds), fixed_threshold_teacher).items():
                ctx.teacher(ds, f"teacher {label}", spec, robustness=False)
    return ctx.metric_frame(
        ["accuracy", "sample_epochs", "data_usage"], [f"teacher {t}" for t in TEACHERS], with_runs=True
    )


def significance(ctx) -> None:
    """The SR teacher's significance (participation counts): its histogram, and the training images
    it needed most and least per class (figures per dataset)."""
    for ds in ctx:
        sr, sp = ctx.runs[ds, SR_TEACHER, 0], ctx[ds].split
        fig = plots.significance_histogram(
            sr.participation, ctx.settings(ds).teacher_recipe.epochs, title=f"{ds}: significance"
        )
        ctx.save_figure(fig, f"significance_hist_{ds}")
        for which in ("most", "least"):
            fig = plots.significant_images(
                sp.train_x,
                sp.train_y,
                sr.participation,
                sp.classes,
                which=which,
                per_class=8,
                title=f"{ds}: the {which} significant training images per class",
                seed=0,
            )
            ctx.save_figure(fig, f"{which}_significant_{ds}")


def show_weights() -> None:
    """The significance weights, as they are in kdutils."""
    print(inspect.getsource(significance_weights))


def train_students(ctx, weighting: str = "max") -> pd.DataFrame:
    """Per dataset: every student of :data:`STUDENTS` x seed, each from its teacher, weighted by the
    SR teacher's significance (``weighting``) where it says so, evaluated against the normal
    teacher; the table of accuracy and data usage (%), mean ± std over seeds."""
    for ds in ctx:
        with ctx.timing(ds):
            normal, sr = ctx.runs[ds, "teacher normal", 0], ctx.runs[ds, SR_TEACHER, 0]
            ctx.student_group(
                ds,
                [
                    dict(
                        label=label,
                        method=spec,
                        seed=seed,
                        eval_teacher=normal,
                        teacher=ctx.runs[ds, f"teacher {tlabel}", 0] if tlabel else None,
                        weights=SignificanceWeights(sr, weighting) if weighted else None,
                    )
                    for label, (spec, tlabel, weighted) in STUDENTS.items()
                    for seed in ctx.seeds(ds)
                ],
            )
    df = ctx.frame
    return mean_std_cells(
        df[df.method.isin(list(STUDENTS))], ["accuracy", "data_usage"], scale=100.0, digits=2, order=list(STUDENTS)
    )


def accuracy_vs_samples(ctx) -> None:
    """Accuracy against data usage, one point per student and seed (a figure per dataset)."""
    points = ctx.metric_frame(["accuracy", "data_usage"], list(STUDENTS))
    for ds in ctx:
        fig = plots.accuracy_vs_usage(
            points[points.dataset == ds], order=list(STUDENTS), title=f"{ds}: accuracy vs data used"
        )
        ctx.save_figure(fig, f"accuracy_vs_samples_{ds}")


def pruning(ctx, prune_fractions=PRUNE_FRACTIONS) -> pd.DataFrame | None:
    """The pruning experiment [ours]: per dataset the KD student (normal teacher) without the least
    significant and without a random k % of the training set (seed s drops random draw s), for each
    k of ``prune_fractions``; the pruning curve (a figure per dataset) and the accuracy table, mean
    ± std (None without ``prune_fractions``)."""
    for ds in ctx:
        with ctx.timing(ds):
            normal, sr = ctx.runs[ds, "teacher normal", 0], ctx.runs[ds, SR_TEACHER, 0]
            ctx.student_group(
                ds,
                [
                    dict(
                        label=pruned_label(how, k),
                        method="kd",
                        seed=seed,
                        teacher=normal,
                        robustness=False,
                        selection=selection,
                        metrics=("accuracy", "data_usage"),
                    )
                    for k in prune_fractions
                    for seed in ctx.seeds(ds)
                    for how, selection in zip(HOWS, (DropLeastSignificant(k, sr, seed=seed), DropRandom(k, seed=seed)))
                ],
            )
    if not prune_fractions:
        return None
    arms = [("KD (normal teacher)", {"how": how, "dropped": 0.0}) for how in HOWS]
    arms += [(pruned_label(how, k), {"how": how, "dropped": k}) for k in prune_fractions for how in HOWS]
    prune = ctx.tidy(arms, "accuracy")
    for ds in ctx:
        fig = plots.pruning_curve(prune[prune.dataset == ds], title=f"{ds}: KD student after pruning the training set")
        ctx.save_figure(fig, f"pruning_{ds}")
    return mean_std_table(ctx.frame, "accuracy", order=list(dict.fromkeys(label for label, _ in arms)))


def suite(ctx) -> pd.DataFrame:
    """The shared evaluation suite of the students against the normal teacher (the attack protocol
    printed first), FGSM and PGD at the middle of each dataset's epsilon grid; mean ± std."""
    for ds in ctx:
        print(f"{ds}: {describe_attack_protocol(ctx.settings(ds))}")
    mid = sorted({ctx.settings(ds).epsilons[len(ctx.settings(ds).epsilons) // 2] for ds in ctx})
    df = ctx.frame
    return mean_std_cells(
        df[df.method.isin(list(STUDENTS))],
        SUITE + [robust_key(a, e) for a in ("fgsm", "pgd") for e in mid],
        order=list(STUDENTS),
    )


def claims(ctx, prune_fractions=PRUNE_FRACTIONS) -> pd.DataFrame:
    """The claims, each checked by comparisons named in advance (the rules are :mod:`kdutils.claims`'
    and are printed in the table):

    1. like state-of-the-art KD [paper]: significance-based, regulated and hybrid each non-inferior
       to KD from the normal teacher;
    2. significantly fewer samples [paper]: each of the three at most 90 % of KD's sample-epochs;
    3. participation measures significance [ours, with ``prune_fractions``]: at every k, dropping
       the least significant k % costs less accuracy than dropping a random k % (paired by seed).
    """
    rows = []
    for ds in ctx:
        where, conv = ctx.where(ds), ctx.convergence(ds, list(STUDENTS), longer=LONGER)
        like = C.non_inferior_each(
            {f"{m} vs KD": ctx.paired(ds, m, "KD (normal teacher)") for m in THREE},
            margin=ctx.margin(ds, teacher="teacher normal"),
        )
        rows.append(
            like.row(
                "the three methods perform like state-of-the-art KD",
                "[paper] abstract",
                "none given",
                dataset=where,
                profile=ctx.profile,
                converged=conv,
            )
        )
        fewer = C.data_efficient_each({m: ctx.values(ds, m, "data_usage") for m in THREE})
        rows.append(
            fewer.row(
                "... while using significantly fewer samples",
                "[paper] abstract",
                "none given",
                dataset=where,
                profile=ctx.profile,
                converged=conv,
            )
        )
        if prune_fractions:
            pruned = C.significance_pruning(
                {k: ctx.values(ds, pruned_label("least significant", k)) for k in prune_fractions},
                {k: ctx.values(ds, pruned_label("random", k)) for k in prune_fractions},
            )
            rows.append(
                pruned.row(
                    "participation measures a sample's significance (our experiment: dropping the least "
                    "significant k % costs less than dropping a random k %)",
                    "[ours] experiment",
                    "none given",
                    dataset=where,
                    profile=ctx.profile,
                    converged=conv,
                )
            )
    return claims_frame(rows)


def check_lines(ctx, table: pd.DataFrame) -> None:
    """The numbers a re-execution must print again (the nbval check)."""
    for ds in ctx:
        sig = ctx.runs[ds, SR_TEACHER, 0].participation
        print(
            f"{ds}: teachers "
            + ", ".join(
                f"{k} {ctx.evals[ds, f'teacher {k}', 0]['accuracy']:.4f}"
                for k in TEACHERS
                if (ds, f"teacher {k}", 0) in ctx.evals
            )
            + f"; significance sum {int(sig.sum())}, zeros {int((sig == 0).sum())}"
        )
        for label in STUDENTS:
            seeds = ctx.seeds(ds)
            print(
                f"  {label:>20}: "
                + " ".join(f"{ctx.evals[ds, label, s]['accuracy']:.4f}" for s in seeds)
                + "  sample-epochs "
                + " ".join(str(ctx.runs[ds, label, s].sample_epochs) for s in seeds)
            )
    print("verdicts:", list(table["verdict"]))


# ---------------------------------------------------------------- exercises (issue 35)
EXERCISES = [
    X.Exercise(
        "03.1",
        "Predict the verdict of '... while using significantly fewer samples' (the three methods at least 10 % "
        "below KD's sample-epochs), then check with `table=table`.",
        "Holds for the regulated and hybrid students (the SR gate skips samples); the significance-weighted student "
        "still sees every sample, so the rule's 'each of' is what decides.",
        checker=X.predict_verdict("fewer samples"),
    ),
    X.Exercise(
        "03.2",
        "Pruning: after dropping the least significant 30 % of the training set, is the KD student's accuracy "
        "higher or lower than after dropping a random 30 %? Predict, then check with `ctx=ctx`.",
        "Not what the paper's intuition suggests at a few epochs: the least significant images are the easy ones, "
        "and dropping them can cost as much as a random drop (the committed quick runs: does not hold at 50 %).",
        checker=X.predict_direction("KD minus least significant 0.3", "KD minus random 0.3"),
    ),
    X.Exercise(
        "03.3",
        "Set `weighting = 'sqrt'` and compare the significance-based student with the default.",
        "Square-root weights are flatter: the student sees more of the rare, hard images; differences stay small at quick.",
        minutes=3,
    ),
]
