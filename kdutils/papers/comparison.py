"""Notebook 06: every method of the suite on one protocol, one leaderboard.

No paper of its own: the methods of notebooks 00-05, each with its paper's defaults (the source is
in each row), trained on the same teacher-student pair, recipe, seeds and evaluation suite, so
their numbers can be read side by side. Which methods: every method registered in
:mod:`kdutils.methods`, by the rows its file declares (:attr:`kdutils.methods.Method.leaderboard`,
:class:`kdutils.methods.base.Entry`); a method file with no declaration appears as one row named
after it with its defaults, and one that declares ``not_comparable`` is listed with its reason.
Adding a method is one file: it appears here with no change to this module or the notebook.

Two blocks, each with its own pair and its own reference rows (the student alone and KD on that
pair): ``standard`` (the profile's pair: LeNet-5 -> LeNet-5-Half on MNIST and Fashion-MNIST,
AlexNet -> AlexNet-Half on CIFAR-10) and ``interval`` (methods that need interval bounds: an
``ibp_small`` teacher trained with IBP and ``ibp_small`` students, notebook 04's pair, at the
profile's recipe). Runs with the key of a paper notebook's run (same pair, recipe, seed, method
and teacher) are read from the store, not trained again.

The leaderboard: per dataset, method x metric (mean ± std over seeds), and per metric family one
comparison named in advance, the method against the block's KD, paired by seed, its 90 %
interval (seeds and images for every family but calibration: ECE is no mean of per-image values), Holm-corrected across the block's methods
(:func:`kdutils.report.results.best_of_many`): *holds* (better than KD), *does not hold* (worse),
*inconclusive*. What each function does per dataset of the notebook's context, in the notebook's
order: :func:`entries_frame`, :func:`train`, :func:`leaderboard`, :func:`verdicts`,
:func:`figures`, :func:`check_lines`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..core.errors import UnknownNameError
from ..evaluation.data_selection import DataSelection
from ..evaluation.evaluations import at_eps, robust_key
from ..evaluation.selection import KeepRandom, SignificanceWeights
from ..experiments import costs
from ..methods import METHODS, create_method
from ..methods.base import BLOCKS, INTERVAL_SUFFIX, Entry, leaderboard_rows
from ..report import exercises as X
from ..report import plots
from ..report.results import HOLDS, INCONCLUSIVE, Verdict, _pct, best_of_many, claim_row, claims_frame, mean_std_cells

NOTEBOOK = "06_comparison"
CITATION = "every method of notebooks 00-05 on one protocol (no paper of its own; each row cites its method's)"
#: the notebook in a few words (the README's table, :func:`kdutils.report.published.overview`)
SHORT = "every method above"
TEACHES = "which method to use for what: one pair, one recipe, one leaderboard"

#: the reference of every comparison, and the student trained alone (each block trains both on its pair)
REFERENCE, ALONE = "KD", "student alone"
#: the interval block's pair: notebook 04's network, its teacher trained with IBP at the dataset's eps
INTERVAL_MODEL = "ibp_small"
#: the teachers: the pair's teacher (notebooks 00-02, 05), 03's self-regulated teacher, the interval pair's
TEACHER, SR_TEACHER, INTERVAL_TEACHER = "teacher", "teacher SR (schedule)", "teacher" + INTERVAL_SUFFIX
#: DS's scorer and keep ratio, and significance's weighting: notebooks 05's and 03's defaults [ours]
SELECTION = {"scorer": "influence", "keep": 0.7}
WEIGHTING = "max"
#: the evaluations of every student (the default suite; the interval block adds certified accuracy)
EVALS = ["accuracy", "data_usage", "agreement", "retention", "rank_agreement", "robustness"]
#: the 2x-epochs convergence check at full: the student alone and KD
LONGER = (ALONE, REFERENCE)
#: figure stems (each saved as ``<stem>_<dataset>.png``)
FIGURES = ("accuracy_vs_cost", "accuracy_vs_robustness", "calibration_vs_accuracy")
#: this notebook's own sizes per profile (``NotebookContext(..., sizes=sizes)``): smoke exists to check
#: code paths, and 06 trains every method, so its students train 3 epochs with 2 PGD steps inside
#: training, and the interval pair trains at eps 0.05 (an IBP teacher on 1.2k digits certifies little
#: at 0.1: notebook 04's smoke); full and paper are the profile itself
SIZES: dict[str, dict[str, Any]] = {
    "smoke": dict(student_epochs=3, train_pgd_steps=2, pgd_steps=2, attack_samples=32, faithful_eps=0.05),
    # quick: 3 PGD steps inside training (as notebook 04's quick) [ours, for time]: the four
    # adversarial rows then cost about 4x KD per step instead of 11x
    "quick": dict(train_pgd_steps=3),
}


#: the interval block's training rows per profile (None: the whole training split): at quick a random
#: 10k of the 54k rows (like notebook 04's quick subset) [ours, for time: faithful (IBP) bounds its
#: teacher at every step, about 3.5 min per run on 54k rows on 2 cores, so the block alone took
#: longer than the rest of the notebook]; the teacher and every student of the block train on them
INTERVAL_ROWS: dict[str, int | None] = {"smoke": None, "quick": 10000, "full": None, "paper": None}


def interval_selection(st) -> KeepRandom | None:
    """The interval block's training rows at ``st``'s profile (:data:`INTERVAL_ROWS`; seed 0, the
    same rows for the teacher and every student)."""
    n = INTERVAL_ROWS.get(st.profile)
    return KeepRandom(n, seed=0) if n else None


def sizes(profile: str, dataset: str) -> dict[str, Any]:
    """The :func:`kdutils.configure` overrides of notebook 06 at ``profile`` (any dataset)."""
    return dict(SIZES.get(profile, {}))


@dataclass(frozen=True)
class Need:
    """What a row needs besides its block's teacher: a description, and the run's keywords given the
    dataset's teachers (``{"teacher": run, "sr teacher": run}``)."""

    what: str
    kwargs: Callable[[Mapping[str, Any]], dict]


#: the needs an :class:`~kdutils.methods.base.Entry` may name
NEEDS: dict[str, Need] = {
    "sr teacher": Need("distils from notebook 03's self-regulated teacher", lambda t: {"teacher": t["sr teacher"]}),
    "significance": Need(
        "weighted by that teacher's significance (s_i / max s)",
        lambda t: {"weights": SignificanceWeights(t["sr teacher"], WEIGHTING)},
    ),
    "selection": Need(
        "the teacher supervises the 70 % of rows the influence scorer keeps (notebook 05's DS)",
        lambda t: {"teacher_rows": DataSelection(t["teacher"], **SELECTION)},
    ),
}

#: metric families: (the metric that decides, higher is better); named before any run
FAMILIES: dict[str, tuple[str, bool]] = {
    "accuracy": ("accuracy", True),
    "calibration": ("ece", False),
    "fidelity": ("agreement", True),
    "robustness": ("pgd", True),  # PGD at the dataset's eps (:func:`robust_eps`)
    "teacher errors": ("mu_s_train", True),
}


# ---------------------------------------------------------------- the rows
def entries() -> list[Entry]:
    """Every row of the leaderboard, in the registry's order (the student alone and KD first):
    each registered method's declared rows, or one row named after it with its defaults. Labels
    are unique; a row's needs must be in :data:`NEEDS`."""
    rows = leaderboard_rows()
    seen: set[str] = set()
    for e in rows:
        if e.label in seen:
            raise ValueError(f"two leaderboard rows are labelled {e.label!r}: labels must be unique")
        seen.add(e.label)
        for n in e.needs:
            if n not in NEEDS:
                raise UnknownNameError(f"need of leaderboard row {e.label!r}", n, NEEDS)
    first = {REFERENCE: 1, ALONE: 0}
    return sorted(rows, key=lambda e: first.get(e.label, 2))  # stable: the registry's order after


def left_out() -> dict[str, str]:
    """The registered methods that declare themselves not comparable: name -> their reason."""
    return {n: METHODS.get(n).not_comparable for n in METHODS.names() if METHODS.get(n).not_comparable}


def _reference_rows() -> list[Entry]:
    by_label = {e.label: e for e in entries()}
    return [by_label[ALONE], by_label[REFERENCE]]


def label_in(entry: Entry, block: str) -> str:
    """The row's label in ``block`` (the interval block's rows carry :data:`INTERVAL_SUFFIX`)."""
    return entry.label + (INTERVAL_SUFFIX if block == "interval" and not entry.label.endswith(INTERVAL_SUFFIX) else "")


def arms(block: str | None = None) -> dict[str, tuple[Entry, str]]:
    """label -> (row, block) of every student the notebook trains (``block``: only that block's).
    Each block has the student alone and KD on its pair."""
    out: dict[str, tuple[Entry, str]] = {}
    for b in BLOCKS if block is None else [block]:
        rows = [e for e in entries() if e.block == b and e.label not in (ALONE, REFERENCE)]
        for e in [*_reference_rows(), *rows]:
            out[label_in(e, b)] = (e, b)
    return out


def reference(block: str) -> str:
    return label_in(_reference_rows()[1], block)


def interval_teacher_spec(st) -> dict:
    """The interval pair's teacher: IBP training at the dataset's eps (the method's schedule)."""
    return {"name": "ibp", "eps": st.faithful_eps}


def _model(block: str, st) -> str:
    return INTERVAL_MODEL if block == "interval" else st.student_model


def plan(st) -> list:
    """The runs the notebook trains on one dataset's settings (for :mod:`kdutils.costs`)."""
    sel = interval_selection(st)
    share = min(1.0, sel.count / costs.train_rows(st)) if sel else 1.0
    t = {
        "teacher": costs.planned_teacher(st, TEACHER),
        "sr teacher": costs.planned_teacher(st, SR_TEACHER, "ce+sr"),
        "interval": costs.planned_teacher(
            st, INTERVAL_TEACHER, interval_teacher_spec(st), model=INTERVAL_MODEL, rows_share=share
        ),
    }
    runs = list(t.values())
    for label, (e, block) in arms().items():
        spec = e.method_spec(st)
        teacher = t["interval"] if block == "interval" else t["sr teacher"] if "sr teacher" in e.needs else t["teacher"]
        kept = SELECTION["keep"] if "selection" in e.needs else 1.0
        runs += [
            costs.planned_student(
                st,
                label,
                spec,
                s,
                teacher if create_method(spec).needs_teacher else None,
                model=_model(block, st),
                teacher_share=kept,
                rows_share=share if block == "interval" else 1.0,
                variant=" ".join(e.needs),
            )
            for s in st.seeds
        ]
    return runs


costs.register_plan(costs.NotebookPlan(NOTEBOOK, plan, costs.profile_datasets, {}, sizes=sizes, longer=LONGER))
#: the datasets a profile runs when the notebook names none (the profile's one dataset)
default_datasets = costs.profile_datasets


# ---------------------------------------------------------------- the notebook's steps
def entries_frame(ctx=None) -> pd.DataFrame:
    """Each row: label, block, method with every parameter (on the context's first dataset's settings:
    eps and attack steps; without a context, smoke's), what else it needs, and its source; the
    methods left out follow, with their reason."""
    from ..training.profiles import configure

    st = ctx.settings(ctx.datasets[0]) if ctx is not None else configure("smoke")
    rows = [
        {
            "label": label,
            "block": block,
            "method": str(create_method(e.method_spec(st)).params()),
            "needs": "; ".join(NEEDS[n].what for n in e.needs),
            "source": e.source,
        }
        for label, (e, block) in arms().items()
    ]
    rows += [
        {"label": n, "block": "left out", "method": "", "needs": "", "source": why} for n, why in left_out().items()
    ]
    return pd.DataFrame(rows)


def robust_eps(st) -> float:
    """The epsilon of the robustness columns: the grid's value nearest the dataset's ``faithful_eps``
    (the one the adversarial methods train at)."""
    return min(st.epsilons, key=lambda e: abs(e - st.faithful_eps))


def train(ctx) -> dict:
    """Per dataset: the three teachers, then every student x seed (each block on its pair, each row
    with what it needs), evaluated against its block's teacher; training FLOPs and seconds recorded
    beside the evaluation's numbers."""
    teachers = {}
    for ds in ctx:
        st = ctx.settings(ds)
        with ctx.timing(ds):
            t = {
                "teacher": ctx.teacher(ds, TEACHER),
                "sr teacher": ctx.teacher(ds, SR_TEACHER, "ce+sr", robustness=False),
                "interval": ctx.teacher(
                    ds,
                    INTERVAL_TEACHER,
                    interval_teacher_spec(st),
                    model=INTERVAL_MODEL,
                    selection=interval_selection(st),
                ),
            }
            teachers[ds] = t
            calls = []
            for label, (e, block) in arms().items():
                kw: dict[str, Any] = {"teacher": t["interval"] if block == "interval" else t["teacher"]}
                for n in e.needs:
                    kw.update(NEEDS[n].kwargs(t))
                spec = e.method_spec(st)
                if not create_method(spec).needs_teacher:
                    kw["eval_teacher"], kw["teacher"] = kw["teacher"], None
                if block == "interval":
                    kw["model"] = INTERVAL_MODEL
                    if (sel := interval_selection(st)) is not None:
                        kw["selection"] = sel
                only = EVALS + (["certified"] if block == "interval" else [])
                calls += [dict(label=label, method=spec, seed=s, only=only, **kw) for s in ctx.seeds(ds)]
            ctx.student_group(ds, calls)
        _record_costs(ctx, ds)
    return teachers


def _record_costs(ctx, ds: str) -> None:
    """Per student run: its training FLOPs (:func:`kdutils.costs.planned_frame` of this notebook's
    plan on the context's settings; the teacher's cached logits not included) and training seconds."""
    st = ctx.settings(ds)
    planned = costs.planned_frame(plan(st), {ds: st})
    flops = planned[planned.role == "student"].groupby(["label", "seed"]).flops.first()
    for label in arms():
        for s in ctx.seeds(ds):
            run = ctx.runs.get((ds, label, s))
            if run is None:
                continue
            numbers = {"train_seconds": float(run.record.get("train_seconds", math.nan))}
            if (label, s) in flops.index:
                numbers["train_tflop"] = float(flops[label, s]) / 1e12
            ctx.results.add(ds, label, s, numbers, run=run.key)


#: the leaderboard's columns: metric -> its heading
def columns(st) -> dict[str, str]:
    e = robust_eps(st)
    from ..evaluation.evaluations import format_epsilon

    eps = format_epsilon(e, st.epsilons)
    return {
        "accuracy": "accuracy",
        "nll": "NLL",
        "ece": "ECE",
        "agreement": "agreement",
        "rank_spearman_mean": "rank corr.",
        robust_key("fgsm", e): f"FGSM {eps}",
        robust_key("pgd", e): f"PGD {eps}",
        "mu_s_train": "teacher-wrong train acc.",
        "sample_epochs": "sample-epochs",
        "train_seconds": "train s",
        "train_tflop": "train TFLOP",
        at_eps("certified", e): f"certified (IBP) {eps}",
    }


def leaderboard(ctx) -> pd.DataFrame:
    """Method x metric, mean ± std over seeds (n = 1 where one seed), both blocks, per dataset."""
    tables = []
    for ds in ctx:
        cols = columns(ctx.settings(ds))
        df = ctx.frame[(ctx.frame.dataset == ds) & ctx.frame.method.isin(list(arms()))]
        t = mean_std_cells(df, list(cols), digits=4, order=list(arms()))
        tables.append(t.rename(columns=cols))
    return pd.concat(tables) if tables else pd.DataFrame()


def _metric(family: str, st) -> str:
    metric = FAMILIES[family][0]
    return robust_key(metric, robust_eps(st)) if metric in ("fgsm", "pgd") else metric


def verdicts(ctx, level: float = 0.9) -> pd.DataFrame:
    """Each method against its block's KD, per metric family (:data:`FAMILIES`: the metric that
    decides, named in advance), paired by seed, Holm-corrected across the block's methods: a
    claims table (``holds``: better than KD; ``does not hold``: worse; ``inconclusive``)."""
    rows = []
    for ds in ctx:
        st = ctx.settings(ds)
        for block in BLOCKS:
            ref = reference(block)
            others = [lb for lb in arms(block) if lb != ref and (ds, lb, ctx.seeds(ds)[0]) in ctx.evals]
            if (ds, ref, ctx.seeds(ds)[0]) not in ctx.evals or not others:
                continue
            for family, (_, higher) in FAMILIES.items():
                metric = _metric(family, st)
                if metric not in set(ctx.frame.metric):
                    continue
                pairs = {lb: ctx.paired(ds, lb, ref, metric) for lb in others}
                table = best_of_many(pairs, level=level, higher_is_better=higher)
                rule = (
                    f"{metric} ({'higher' if higher else 'lower'} is better): paired by seed, {_pct(level)} interval"
                    + _with_images_text(pairs)
                    + f", Holm over the {len(pairs)} methods of the {block} block (the interval is unadjusted;"
                    " the Holm-adjusted p decides)"
                )
                for r in table.itertuples(index=False):
                    v = Verdict(r.corrected, r.estimate / 100, r.low / 100, r.high / 100, level, r.n, 0.0, rule)
                    rows.append(
                        claim_row(
                            f"{r.comparison} beats {ref} on {family}",
                            "[ours] notebook 06's leaderboard",
                            "",
                            v,
                            dataset=ctx.where(ds),
                            profile=ctx.profile,
                            measured=_measured(r, metric, higher),
                        )
                    )
    return claims_frame(rows)


def _with_images_text(pairs: Mapping[str, tuple]) -> str:
    """What the rule's interval covers besides the seeds: the images' sampling where both sides of a
    comparison keep per-image records (every family but calibration: ECE is no mean of per-image
    values), and how many comparisons do when not all (a method scored against another teacher is
    not on the same images)."""
    n = sum(all(getattr(v, "correct", None) is not None for v in pair) for pair in pairs.values())
    if n == len(pairs):
        return " with the images' sampling"
    if n == 0:
        return ""
    return (
        f" with the images' sampling for {n} of the {len(pairs)} methods (the others over seeds only: "
        "scored against another teacher, or no per-image record)"
    )


def _measured(r, metric: str, higher: bool) -> str:
    sign = "" if higher else " (reduction)"
    if not np.isfinite(r.low):
        return f"{r.estimate:+.2f} points{sign}, n = {r.n}" + (f"; {r.note}" if r.note else "")
    p = r.p_holm_below if r.corrected == "does not hold" else r.p_holm  # the p of the side that decided
    return f"{r.estimate:+.2f} [{r.low:+.2f}, {r.high:+.2f}] points{sign}, n = {r.n}, Holm p = {p:.3f}"


def verdict_grid(table: pd.DataFrame) -> pd.DataFrame:
    """The verdicts as method x family (one cell per claim: better / worse / inconclusive / not testable)."""
    words = {HOLDS: "better", "does not hold": "worse", INCONCLUSIVE: "inconclusive"}
    parts = table.claim.str.extract(r"^(?P<method>.+) beats (?P<ref>.+) on (?P<family>.+)$")
    grid = parts.assign(dataset=table.dataset, cell=table.verdict.map(lambda v: words.get(v, v)))
    out = grid.pivot_table(index=["dataset", "method"], columns="family", values="cell", aggfunc="first", sort=False)
    order = {m: i for i, m in enumerate(arms())}  # the leaderboard's order (best_of_many sorts by estimate)
    rows = sorted(out.index, key=lambda k: (list(dict.fromkeys(grid.dataset)).index(k[0]), order.get(k[1], len(order))))
    return out.reindex(rows)[[f for f in FAMILIES if f in set(parts.family)]]


def figures(ctx) -> None:
    """Per dataset: accuracy against training cost (TFLOP, log scale, the Pareto front marked), accuracy
    against PGD accuracy at the robustness epsilon, ECE against accuracy; one point per method
    (mean over seeds), both blocks, one colour per method."""
    for ds in ctx:
        st = ctx.settings(ds)
        df = ctx.frame[(ctx.frame.dataset == ds) & ctx.frame.method.isin(list(arms()))]
        means = df.groupby(["method", "metric"]).value.mean().unstack()
        means = means.reindex([m for m in arms() if m in means.index])
        pgd = robust_key("pgd", robust_eps(st))
        eps = pgd.split("@")[-1]
        for stem, x, y, xlabel, ylabel, what in (
            ("accuracy_vs_cost", "train_tflop", "accuracy", "training cost (TFLOP per run, log scale)",
             "test accuracy", "accuracy vs training cost (dashed: the Pareto front)"),
            ("accuracy_vs_robustness", "accuracy", pgd, "test accuracy", f"PGD accuracy at eps {eps}",
             f"accuracy vs PGD accuracy at eps {eps}"),
            ("calibration_vs_accuracy", "accuracy", "ece", "test accuracy", "ECE (lower is better)",
             "calibration vs accuracy"),
        ):  # fmt: skip
            if x not in means or y not in means:
                continue
            front = stem == "accuracy_vs_cost"
            fig = plots.method_scatter(
                means[x], means[y], xlabel=xlabel, ylabel=ylabel, pareto=front, logx=front,
                title=f"{ds}: {what}, mean over seeds",
            )  # fmt: skip
            ctx.save_figure(fig, f"{stem}_{ds}")


def check_lines(ctx, table: pd.DataFrame) -> None:
    """The numbers a re-execution must print again (the nbval check)."""
    for ds in ctx:
        for label in arms():
            if (ds, label, ctx.seeds(ds)[0]) in ctx.evals:
                accs = " ".join(f"{ctx.evals[ds, label, s]['accuracy']:.4f}" for s in ctx.seeds(ds))
                print(f"{ds} {label:>32}: {accs}")
    print("verdicts:", list(table["verdict"]))


# ---------------------------------------------------------------- exercises (issue 35)
EXERCISES = [
    X.Exercise(
        "06.1",
        "Before running: which method of the standard block will have the highest test accuracy? Check with "
        "`answer='<label>'` and `ctx=ctx`.",
        "At quick the correlation methods (DIST, CMKD) lead on Fashion-MNIST; at smoke anything can; the leaderboard's "
        "verdicts say which differences from KD are more than noise.",
        checker=X.predict_best(lambda ctx: list(arms("standard"))),
    ),
    X.Exercise(
        "06.2",
        "Is the fastest method also on the Pareto front of accuracy against training cost? Read the figure.",
        "The student alone is the cheapest point and on the front by construction; the question is what each extra "
        "TFLOP buys.",
    ),
    X.Exercise(
        "06.3",
        "Add a method in one file (the README's `toy_kd`), restart the kernel and re-run: does it appear in the "
        "leaderboard with no change to this notebook? Check with `answer='toy_kd'`.",
        "Yes: the leaderboard reads the method registry (a test does the same); a method that cannot be compared "
        "declares `not_comparable` with a reason.",
        checker=X.registered("toy_kd"),
        minutes=5,
    ),
]
