"""Notebook 01: Confidence Conditioned Knowledge Distillation (CCKD-L, CCKD-T, self-regulation).

Mishra and Sundaram, *Confidence Conditioned Knowledge Distillation*, arXiv 2107.06993 (2021)
(``docs/papers/cckd.md``). The single home of the notebook's arms and ablations, its figures
and its four claims (each one comparison named in advance, with its rule); the notebook
``notebooks/01_cckd.ipynb`` shows and calls them, and the cost plan is built from them here.
Sources of each choice: [paper] the abstract, Fig. 1 and Algorithm 1; [public] the
re-implementation ``yuranusduke/Confidence-Conditioned-Knowledge-Distillation``; [ours] this
project's decisions (each a parameter; the ones that matter most are the ablations below).
"""

from __future__ import annotations

import inspect
from typing import Any

import pandas as pd

from ..evaluation.evaluations import describe_attack_protocol, format_epsilon, robust_key
from ..experiments import costs
from ..methods import create_method, self_regulation
from ..methods.confidence_conditioned import cckd_l_loss, cckd_t_target, teacher_confidence
from ..report import claims as C
from ..report import exercises as X
from ..report import plots
from ..report.results import claims_frame, mean_std_cells, mean_std_table

NOTEBOOK = "01_cckd"
CITATION = "Mishra and Sundaram, Confidence Conditioned Knowledge Distillation, arXiv 2107.06993 (2021)"
#: the notebook in a few words (the README's table, :func:`kdutils.report.published.overview`)
SHORT = "Mishra & Sundaram 2021, CCKD"
TEACHES = "trusting the teacher per sample by its confidence; self-regulation that skips learnt samples"

#: label -> method spec: the same student, recipe, epochs and seeds; only the loss differs ("x+sr":
#: x inside the self-regulation gate)
#: the 2x-epochs convergence check at full: the student alone, KD and the headline method
LONGER = ("student alone", "KD", "CCKD-T+SR")
ARMS: dict[str, Any] = {
    "student alone": "ce",
    "KD": "kd",
    "CCKD-L": "cckd_l",
    "CCKD-T": "cckd_t",
    "CCKD-T+SR": "cckd_t+sr",
    "CCKD-L+SR": "cckd_l+sr",
    "KD+SR": "kd+sr",
}
#: the ablations of the choices that matter most (the notebook parameter ``ablations``), each with its source
ABLATIONS: dict[str, Any] = {
    "CCKD-T+SR, delta = p_S[y]": {"name": "sr", "inner": "cckd_t", "delta": "true_prob"},  # [ours]
    "CCKD-T+SR, delta at tau = 1": {"name": "sr", "inner": "cckd_t", "delta_tau": 1.0},  # [ours]
    "CCKD-L, lambda at tau = 1": {"name": "cckd_l", "lambda_tau": 1.0},  # [public]
    "CCKD-T, lambda at tau = 1": {"name": "cckd_t", "lambda_tau": 1.0},  # [public]
    "CCKD-L, kd_scale = 1": {"name": "cckd_l", "kd_scale": 1.0},  # [ours]
}
#: each ablation -> the default it is compared with (paired by seed)
ABLATION_OF = {
    "CCKD-T+SR, delta = p_S[y]": "CCKD-T+SR",
    "CCKD-T+SR, delta at tau = 1": "CCKD-T+SR",
    "CCKD-L, lambda at tau = 1": "CCKD-L",
    "CCKD-T, lambda at tau = 1": "CCKD-T",
    "CCKD-L, kd_scale = 1": "CCKD-L",
}
ABLATION_ORDER = [
    "CCKD-T+SR",
    "CCKD-T+SR, delta = p_S[y]",
    "CCKD-T+SR, delta at tau = 1",
    "CCKD-L",
    "CCKD-L, lambda at tau = 1",
    "CCKD-L, kd_scale = 1",
    "CCKD-T",
    "CCKD-T, lambda at tau = 1",
]
#: the teacher-error retention metrics [paper]
RETENTION = ["mu_s_train", "mu_f_train", "mu_s_test", "mu_f_test"]
#: figure stems (each saved as ``<stem>_<dataset>.png``); ``ablations`` only with the ablations
FIGURES = ("accuracy", "sr_usage", "retention", "robustness", "robust_margin", "reliability", "ablations")


def arms(ablations: bool = True) -> dict[str, Any]:
    """Every arm the notebook trains: :data:`ARMS`, and :data:`ABLATIONS` when asked for."""
    return {**ARMS, **(ABLATIONS if ablations else {})}


def plan(st, ablations: bool = True) -> list:
    """The runs the notebook trains on one dataset's settings (for :mod:`kdutils.costs`)."""
    t = costs.planned_teacher(st, "teacher")
    return [t] + [
        costs.planned_student(st, label, spec, s, t) for label, spec in arms(ablations).items() for s in st.seeds
    ]


#: the datasets a profile runs when the notebook names none (the profile's one dataset)
default_datasets = costs.profile_datasets

costs.register_plan(costs.NotebookPlan(NOTEBOOK, plan, default_datasets, {"ablations": True}, longer=LONGER))


# ---------------------------------------------------------------- the notebook's steps
def show_pieces() -> None:
    """The losses and the self-regulation gate, as they are in kdutils."""
    for f in (
        teacher_confidence,
        cckd_l_loss,
        cckd_t_target,
        self_regulation.sr_gate,
        self_regulation.eta_schedule,
    ):
        print(inspect.getsource(f))


def arms_frame(ablations: bool = True) -> pd.DataFrame:
    """Each arm's label and its method's full parameters."""
    return pd.DataFrame([{"label": k, "method": str(create_method(v).params())} for k, v in arms(ablations).items()])


def train(ctx, ablations: bool = True) -> dict:
    """Per dataset: the teacher, then every arm x seed (the arms of :data:`ARMS` also under attack)."""
    teachers = {}
    for ds in ctx:
        with ctx.timing(ds):
            teachers[ds] = t = ctx.teacher(ds)
            print(
                f"{ds}: teacher {t.key} test accuracy {ctx.evals[ds, 'teacher', 0]['accuracy']:.4f} "
                f"({'reused' if t.reused else 'trained'})"
            )
            ctx.students(ds, arms(ablations), t, robustness=list(ARMS))
    return teachers


def accuracy(ctx, ablations: bool = True) -> pd.DataFrame:
    """Test accuracy per arm (a figure per dataset); the table of mean ± std over seeds."""
    ctx.bar_figures("accuracy", ARMS, lambda ds: f"{ds}: {ctx.settings(ds).student_model} students")
    df = ctx.frame
    return mean_std_table(df[df.method != "teacher"], "accuracy", order=list(arms(ablations)))


def sr_usage(ctx, ablations: bool = True) -> pd.DataFrame:
    """Share of the training samples in a backward pass per epoch (KD and the SR arms), and in total."""
    labels = ["KD", "CCKD-T+SR", "CCKD-L+SR", "KD+SR", *[a for a in arms(ablations) if a in ABLATIONS and "+SR" in a]]
    usage = ctx.usage_frame(labels)
    for ds in ctx:
        fig = plots.usage_curves(usage[usage.dataset == ds], title=f"{ds}: SR data usage per epoch")
        ctx.save_figure(fig, f"sr_usage_{ds}")
    df = ctx.frame
    return mean_std_table(df[df.method.isin(labels)], "data_usage", order=labels)


def retention(ctx) -> pd.DataFrame:
    """mu_S and mu_F on the training set (a figure per dataset, each panel saying how many images its
    share is of); all four, mean ± std."""
    df, distilled = ctx.frame, list(ARMS)[1:]
    for ds in ctx:
        wrong, n = ctx.teacher_mistakes(ds), len(ctx[ds].split.train_y)
        fig = plots.bar_panels(
            df[(df.dataset == ds) & df.method.isin(distilled)],
            ["mu_s_train", "mu_f_train"],
            order=distilled,
            titles=[
                f"{ds}: mu_s_train, on the {wrong:,} training images the teacher gets wrong",
                f"{ds}: mu_f_train, on the {n - wrong:,} it gets right",
            ],
        )
        ctx.save_figure(fig, f"retention_{ds}")
    return mean_std_cells(df[df.method.isin(distilled)], RETENTION, order=distilled)


def robustness(ctx) -> pd.DataFrame:
    """Robust accuracy and each arm's margin over KD, paired by seed (figures per dataset); returns
    the exploration: every arm x attack x epsilon margin over KD, Holm-corrected per dataset."""
    rob = ctx.robustness_frame(list(ARMS))
    margin = ctx.margins(rob, "KD", exclude=["student alone"])
    for ds in ctx:
        print(f"{ds}: {describe_attack_protocol(ctx.settings(ds))}")
        ctx.save_figure(
            plots.robustness_curves(rob[rob.dataset == ds], title=f"{ds}: robust accuracy"), f"robustness_{ds}"
        )
        fig = plots.margin_curves(
            margin[margin.dataset == ds], reference="KD", title=f"{ds}: margin over KD (paired by seed)"
        )
        ctx.save_figure(fig, f"robust_margin_{ds}")
    return ctx.best_of_many(rob[rob.epsilon > 0], "KD", exclude=["student alone"])


def reliability(ctx) -> pd.DataFrame:
    """Reliability diagrams of the first seed of each arm (a figure per dataset); ECE over seeds."""
    ctx.reliability_figures(list(ARMS), ncols=4)
    df = ctx.frame
    return mean_std_table(df[df.method.isin(list(ARMS))], "ece", order=list(ARMS), scale=1.0, digits=4)


def ablations_tables(ctx) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each ablation minus its default (paired by seed, Holm-corrected: exploration), the accuracy
    and data usage of each, and a figure per dataset."""
    ctx.bar_figures("ablations", ABLATION_ORDER, lambda ds: f"{ds}: ablations")
    df = ctx.frame
    cells = mean_std_cells(
        df[df.method.isin(ABLATION_ORDER)], ["accuracy", "data_usage"], scale=100.0, digits=2, order=ABLATION_ORDER
    )
    return ctx.differences(ABLATION_OF).round(4), cells


def claims(ctx, explore: pd.DataFrame) -> pd.DataFrame:
    """The four claims of the abstract [paper], each one comparison named in advance (the rules
    are :mod:`kdutils.claims`' and are printed in the table):

    1. generalisation: CCKD-L and CCKD-T each non-inferior to KD and to the student alone;
    2. data efficiency: CCKD-T+SR's sample-epochs below 90 % of KD's, and it non-inferior to CCKD-T;
    3. retention: CCKD-T+SR's mu_S on the training set above 0.5 (the interval covers the seeds and the
       sampling of the teacher-wrong training images it is measured on);
    4. robustness: CCKD-T+SR - KD under FGSM at the named epsilon reaches the paper's margin; the
       best margin of the exploration is shown beside it, Holm-corrected, and never decides.
    """
    rows = []
    for ds in ctx:
        where, conv = ctx.where(ds), ctx.convergence(ds, list(ARMS), longer=LONGER)
        pairs = {f"{a} vs {b}": ctx.paired(ds, a, b) for a in ("CCKD-L", "CCKD-T") for b in ("KD", "student alone")}
        rows.append(
            C.non_inferior_each(pairs, margin=ctx.margin(ds)).row(
                "CCKD generalises at least as well as other methods",
                "[paper] abstract",
                "none given",
                dataset=where,
                profile=ctx.profile,
                converged=conv,
            )
        )
        eff = C.data_efficient_and_non_inferior(
            ctx.values(ds, "CCKD-T+SR", "data_usage"),
            *ctx.paired(ds, "CCKD-T+SR", "CCKD-T"),
            name="CCKD-T+SR",
            ref_name="CCKD-T",
            margin=ctx.margin(ds),
        )
        rows.append(
            eff.row(
                "CCKD is data efficient (self-regulation)",
                "[paper] abstract",
                "none given",
                dataset=where,
                profile=ctx.profile,
                converged=conv,
            )
        )
        ret = C.retention_above(ctx.values(ds, "CCKD-T+SR", "mu_s_train"), n_images=ctx.teacher_mistakes(ds))
        rows.append(
            ret.row(
                "students do not retain most of the teacher's training-set mistakes (CCKD-T+SR)",
                "[paper] abstract; mu_S [paper]",
                "none given",
                dataset=where,
                profile=ctx.profile,
                converged=conv,
            )
        )
        eps, points = C.robust_setting(ds, ctx.settings(ds).epsilons)
        eps_text = format_epsilon(eps, ctx.settings(ds).epsilons)
        rm = C.robust_margin(
            *ctx.paired(ds, "CCKD-T+SR", "KD", robust_key("fgsm", eps)),
            points=points,
            label=f"CCKD-T+SR - KD, FGSM, eps {eps_text}",
        )
        best = explore[explore.dataset == ds].iloc[0]
        rows.append(
            rm.row(
                "more robust than KD under adversarial attack",
                "[paper] abstract",
                f">= {points:g} points" + ("" if ds in C.ROBUST_CLAIMS else " (MNIST's, for this dataset)"),
                dataset=where,
                profile=ctx.profile,
                converged=conv,
                measured=(
                    f"{rm.measured}; exploration, best of {best.family}: {best.comparison} "
                    f"{best.estimate:+.2f} points (Holm-corrected: {best.corrected})"
                ),
            )
        )
        ctx.results.add(
            ds,
            "claim:robust_margin_points",
            None,
            {"best_margin": best.estimate, "named_margin": rm.verdict.estimate * 100},
        )
    return claims_frame(rows)


def check_lines(ctx, table: pd.DataFrame) -> None:
    """The numbers a re-execution must print again (the nbval check)."""
    for ds in ctx:
        print(f"{ds}: teacher {ctx.evals[ds, 'teacher', 0]['accuracy']:.4f}")
        for label in ARMS:
            seeds = ctx.seeds(ds)
            print(
                f"  {label:>14}: acc "
                + " ".join(f"{ctx.evals[ds, label, s]['accuracy']:.4f}" for s in seeds)
                + "  sample-epochs "
                + " ".join(str(ctx.runs[ds, label, s].sample_epochs) for s in seeds)
            )
    print("verdicts:", list(table["verdict"]))


# ---------------------------------------------------------------- exercises (issue 35)
EXERCISES = [
    X.Exercise(
        "01.1",
        "Predict: is self-regulation data efficient here (the claim 'CCKD is data efficient': at least 10 % "
        "fewer sample-epochs than KD)? Check with `answer=...` and `table=table`.",
        "It holds at every profile run so far: SR skips the samples the student already gets right with confidence.",
        checker=X.predict_verdict("data efficient"),
    ),
    X.Exercise(
        "01.2",
        "Drop the teacher's confidence: does CCKD-L (trust the teacher per sample) get a higher or lower test "
        "accuracy than plain KD? Predict 'higher' or 'lower', then check with `ctx=ctx`.",
        "No fixed answer: at a few epochs the difference is within the seeds' noise; the generalisation claim's "
        "interval says whether it is real. Ask which way lambda moves the loss on the teacher's mistakes.",
        checker=X.predict_direction("CCKD-L", "KD"),
    ),
    X.Exercise(
        "01.3",
        "Add a method in one file: copy the README's `toy_kd` into `kdutils/methods/toy_kd.py`, restart the kernel "
        "and check with `answer='toy_kd'`; then train it: `ctx.students(ctx.datasets[0], {'toy': 'toy_kd'}, teachers[ctx.datasets[0]])`.",
        "The method is registered with no other change (and appears in notebook 06's leaderboard); a test does the same.",
        checker=X.registered("toy_kd"),
        minutes=5,
    ),
]
