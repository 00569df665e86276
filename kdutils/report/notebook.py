"""What every paper notebook does around its story: one object, :class:`NotebookContext`.

A notebook's set-up cell becomes::

    ctx = kd.NotebookContext("01_cckd", profile=profile, datasets=datasets, seeds=seeds, device=device,
                             overrides=overrides, output_dir=output_dir, figures_dir=figures_dir,
                             progress=progress, force=force)

which resolves the profile for every dataset (:func:`kdutils.configure`), builds one
:class:`~kdutils.experiment.Experiment` per dataset, prints one summary line per dataset, and
holds

* ``ctx.results`` (:class:`~kdutils.results.Results`), ``ctx.out`` and ``ctx.figures`` (the
  folders for ``results.csv`` and the figures), ``ctx.runs`` and ``ctx.evals`` keyed by
  ``(dataset, label, seed)``;
* train-evaluate-record in one call: :meth:`~NotebookContext.teacher`,
  :meth:`~NotebookContext.student`, :meth:`~NotebookContext.students`;
* per-dataset timers (``with ctx.timing(ds): ...``), :meth:`~NotebookContext.save_figure`,
  and :meth:`~NotebookContext.environment_frame` for the last cell;
* the tidy frames the figures and claims need: :meth:`~NotebookContext.robustness_frame`
  (dataset, method, seed, attack, epsilon, value), :meth:`~NotebookContext.usage_frame`
  (per-epoch participation), :func:`margins` over a reference method (paired by seed),
  :meth:`~NotebookContext.metric_frame` (one row per run, one column per metric),
  :meth:`~NotebookContext.values` / :meth:`~NotebookContext.paired` (one value per seed, for
  the claim functions of :mod:`kdutils.claims`).

Nothing here decides a claim or defines a method: it only runs what the notebook names and
reshapes what came out.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..core.errors import ParameterError
from ..core.io import default_figures_dir, default_output_dir
from ..evaluation.evaluations import format_epsilon  # re-exported: the one epsilon label
from ..experiments.experiment import Experiment, Run, environment, scalar_metrics
from ..experiments.parallel import Job, train_group
from ..experiments.parameters import check_parameters
from ..inputs.runtime import cpu_numerics
from ..methods.label_revision import teacher_wrong  # the one definition of a teacher's mistake
from ..training.profiles import DRY_RUN_NOTE, LONGER_CHECK_PROFILES, Settings, check_seeds, configure, merged_sizes
from .results import Results

__all__ = ["NotebookContext", "margins", "format_epsilon", "show"]


def show(obj) -> None:
    """Display ``obj`` in a notebook (a frame as a table, a styled frame with its caption), print it
    elsewhere: for the paper modules' steps that show more than the one table a cell returns."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:  # pragma: no cover
        print(obj)
        return
    display(obj) if get_ipython() is not None else print(obj)


def margins(
    frame: pd.DataFrame,
    reference: str,
    *,
    keys: Iterable[str] = ("dataset", "attack", "epsilon"),
    scale: float = 100.0,
    exclude: Iterable[str] = (),
) -> pd.DataFrame:
    """Each method's value minus ``reference``'s, **paired by seed**, times ``scale`` (points).

    ``frame`` is tidy (``method``, ``seed``, ``value`` and ``keys``, e.g. a
    :meth:`NotebookContext.robustness_frame`). A row is matched with the reference's row of
    the same ``keys`` and seed; rows without one are dropped. The reference (and ``exclude``)
    leave the result; the columns stay the same.
    """
    keys = [k for k in keys if k in frame.columns]
    if reference not in set(frame["method"]):
        raise ValueError(
            f"margins: reference method {reference!r} is not in the frame (methods: {sorted(set(frame['method']))})"
        )
    ref = frame[frame["method"] == reference][[*keys, "seed", "value"]].rename(columns={"value": "_ref"})
    rest = frame[~frame["method"].isin([reference, *exclude])]
    out = rest.merge(ref, on=[*keys, "seed"], how="inner", sort=False)
    out["value"] = (out["value"] - out["_ref"]) * scale
    return out.drop(columns="_ref")[list(frame.columns)].reset_index(drop=True)


#: "converged": the run at twice the epochs within this much test accuracy of the normal one
LONGER_TOL = 0.003


def _with_predictions(only: Iterable[str]) -> list[str]:
    """An explicit list of evaluations, with ``predictions`` added where ``accuracy`` is in it (the
    per-image results every accuracy claim's interval uses)."""
    only = list(only)
    return only + ["predictions"] if "accuracy" in only and "predictions" not in only else only


class NotebookContext:
    """One notebook's datasets, experiments, results, folders and timers (see the module docstring).

    ``datasets``: empty for the profile's default; ``seeds``: 0 for the profile's default, an
    int n >= 1 for seeds 0..n-1, or a non-empty list of distinct non-negative ints (anything
    else stops with :class:`~kdutils.errors.ParameterError`); ``overrides``: any
    :func:`kdutils.configure` override; ``output_dir`` / ``figures_dir``: empty for
    ``outputs/<profile>/<notebook>`` and :func:`kdutils.io.default_figures_dir`
    (``figures/<notebook>`` at ``quick``, the gallery's profile, else
    ``outputs/<profile>/figures/<notebook>``); ``force``: retrain even when a finished run is
    stored. ``sizes``: a notebook's own sizes per dataset, ``sizes(profile, dataset) -> dict`` of
    :func:`kdutils.configure` overrides (e.g. :func:`kdutils.faithful_setup.sizes`: models,
    subsets, epochs, attack steps), applied before ``overrides``, which win (``epochs`` there
    replaces the sizes' ``student_epochs``). ``verbose=False`` prints nothing.

    Every parameter is checked first, by :func:`kdutils.parameters.check_parameters`: the common
    ones above and the notebook's own, given as ``parameters={"temperatures": temperatures}``, so
    a notebook makes no check of its own. ``default_datasets(profile)``: the paper's datasets when
    ``datasets`` is empty (else the profile's one dataset).
    """

    def __init__(
        self,
        notebook: str,
        *,
        profile: str = "quick",
        datasets: Iterable[str] = (),
        seeds: int | Iterable[int] = 0,
        device: str = "auto",
        overrides: Mapping[str, Any] | None = None,
        output_dir: str | Path = "",
        figures_dir: str | Path = "",
        progress: bool = True,
        force: bool = False,
        store=None,
        verbose: bool = True,
        sizes: Callable[[str, str], Mapping[str, Any]] | None = None,
        parameters: Mapping[str, Any] | None = None,
        default_datasets: Callable[[str], list[str]] | None = None,
    ):
        # every parameter is checked here, before anything loads or trains: the common ones, then
        # the notebook's own (``parameters``, by the rules of kdutils.parameters)
        check_parameters(profile=profile, datasets=datasets, seeds=seeds, device=device, overrides=overrides or {},
                         output_dir=output_dir, figures_dir=figures_dir, force=force, progress=progress,
                         **dict(parameters or {}))  # fmt: skip
        if not datasets and default_datasets is not None:  # the paper's own default per profile
            datasets = default_datasets(profile)
        self.t_start = time.perf_counter()
        self.notebook, self.profile, self.force = notebook, profile, bool(force)
        self.out = Path(output_dir) if output_dir else default_output_dir(notebook, profile)
        self.figures = Path(figures_dir) if figures_dir else default_figures_dir(notebook, profile)
        self.results = Results(notebook, profile)
        self.runs: dict[tuple[str, str, int], Run] = {}
        self._teacher_mistakes: dict[tuple[str, str], int] = {}
        #: (dataset, label, seed) -> the Job of each student, what the 2x-epochs check trains again
        self.jobs: dict[tuple[str, str, int], Job] = {}
        self.evals: dict[tuple[str, str, int], dict] = {}
        self.seconds: dict[str, float] = {}
        self._trained: set[str] = set()  # keys of the runs this context's groups trained in workers
        self._teacher_labels: dict[str, list[str]] = {}
        overrides = dict(overrides or {})
        chosen = check_seeds(list(seeds) if isinstance(seeds, Iterable) and not isinstance(seeds, str) else seeds)
        if chosen is not None:  # 0: the profile's default (or overrides' seeds)
            overrides["seeds"] = list(chosen)
        if isinstance(datasets, str):  # list("mnist") would be five unknown datasets
            raise ParameterError("datasets", datasets, f"a list of dataset names such as [{datasets!r}]")
        names = list(datasets) or [configure(profile).dataset]
        from . import plots  # matplotlib and seaborn only when a notebook starts, not on `import kdutils`

        plots.style()
        self.experiments: dict[str, Experiment] = {}
        for ds in names:
            st = configure(profile, ds, device=device, progress=progress, **merged_sizes(sizes, profile, ds, overrides))
            self.experiments[ds] = Experiment(st, store)
            self.seconds[ds] = 0.0
            if verbose:
                print(self.describe(ds))
        if verbose:
            first = self.experiments[names[0]]
            print("device:", first.device, "| run store:", first.store.root)

    # ---------------------------------------------------------------- access
    @property
    def datasets(self) -> list[str]:
        return list(self.experiments)

    def __getitem__(self, dataset: str) -> Experiment:
        try:
            return self.experiments[dataset]
        except KeyError:
            raise KeyError(f"dataset {dataset!r} is not in this notebook (datasets: {self.datasets})") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self.experiments)

    def items(self) -> Iterable[tuple[str, Experiment]]:
        return self.experiments.items()

    def settings(self, dataset: str) -> Settings:
        return self[dataset].settings

    def seeds(self, dataset: str) -> tuple[int, ...]:
        return self[dataset].settings.seeds

    def where(self, dataset: str) -> str:
        """The dataset's name for a claims table, with its note (e.g. a JPEG copy)."""
        note = self[dataset].split.note
        return dataset + (f" ({note})" if note else "")

    def describe(self, dataset: str) -> str:
        """The summary line printed for each dataset."""
        exp = self[dataset]
        st, sp = exp.settings, exp.split
        val = f"val {len(sp.val_y)} ({st.val_fraction:.0%} stratified hold-out of the training set"
        val += f", {st.val_subset} of it scored)" if st.val_subset is not None else ")"
        return (
            f"{dataset}: {st.teacher_model} -> {st.student_model}, seeds {list(st.seeds)}, "
            f"teacher {st.teacher_recipe.epochs} epochs, students {st.student_recipe.epochs} epochs, "
            f"train {len(sp.train_y)} / {val} / test {len(sp.test_y)}"
            + (f"  [{sp.note}]" if sp.note else "")
            + (f"  [{DRY_RUN_NOTE}]" if st.dry_run else "")
        )

    # ---------------------------------------------------------------- runs
    def teacher(
        self,
        dataset: str,
        label: str = "teacher",
        method: Any = "ce",
        *,
        robustness: bool = True,
        record: bool = True,
        only: Iterable[str] | None = None,
        seed: int = 0,
        **train_kw,
    ) -> Run:
        """The dataset's teacher trained with ``method`` (``seed``, 0 by default), evaluated and recorded
        as ``label`` at that seed.

        ``only``: exactly these evaluations (e.g. ``["accuracy", "certified", "pgd_robust"]``; then
        ``robustness`` is not consulted), else the default set.
        """
        exp = self[dataset]
        run = exp.teacher(seed, method=method, force=self.force, **train_kw)
        ev = exp.evaluate(run, robustness=robustness, **({"only": _with_predictions(only)} if only is not None else {}))
        self._keep(dataset, label, seed, run, ev, record, None)
        if label not in self._teacher_labels.setdefault(dataset, []):
            self._teacher_labels[dataset].append(label)
        return run

    def trained_now(self, run: Run) -> bool:
        """Whether ``run`` was trained by this context (here or by a group's workers), not read from an earlier one."""
        return not run.reused or run.key in self._trained

    def teacher_group(self, dataset: str, calls: Iterable[Mapping[str, Any]], *, desc: str = "") -> list[Run]:
        """:meth:`teacher` for each call (a dict of its arguments: ``label``, ``model``, ``method``,
        ``robustness``, ...), the teachers not yet stored trained side by side first by the
        settings' executor, as :meth:`student_group` does for students (a series of teachers of
        growing size is as independent as a group of students)."""
        calls = [dict(c) for c in calls]
        if not self.force and len(calls) > 1:
            exp = self[dataset]
            s = exp.settings
            jobs = []
            for c in calls:
                kw = {
                    k: v for k, v in c.items() if k not in ("label", "method", "robustness", "record", "seed", "only")
                }
                jobs.append(
                    Job(
                        c.get("method", "ce"),
                        c.get("seed", 0),
                        *s.model_and_recipe("teacher", kw.pop("model", None), kw.pop("recipe", None)),
                        role="teacher",
                        label=c.get("label", "teacher"),
                        evaluate={"robustness": c.get("robustness", True)},
                        **kw,
                    )
                )
            self._trained.update(
                train_group(exp, jobs, desc=desc or f"{self.notebook} {dataset} teachers", read_back=False) or []
            )
        return self._each(dataset, calls, self.teacher, desc or "teachers")

    def student(
        self,
        dataset: str,
        label: str,
        method: Any,
        *,
        seed: int,
        teacher: Run | None = None,
        eval_teacher: Run | None = None,
        robustness: bool = True,
        metrics: Iterable[str] | None = None,
        record: bool = True,
        only: Iterable[str] | None = None,
        **train_kw,
    ) -> Run:
        """Train (or reuse) one student, evaluate it and record it as ``label``.

        ``eval_teacher``: the teacher the evaluation compares with (agreement, retention);
        default ``teacher``. ``metrics``: record only these metrics in the results (default:
        every number of the evaluation). ``only``: run only these evaluations. ``train_kw``
        go to :meth:`Experiment.student` (``selection=``, ``weights=``, ``teacher_rows=``, ``model=``, ...).
        """
        exp = self[dataset]
        call = dict(label=label, method=method, seed=seed, teacher=teacher, eval_teacher=eval_teacher, **train_kw)
        job = self._job(exp, {**call, "robustness": robustness, "only": only})  # the run's one description
        self.jobs[dataset, label, seed] = job
        run = exp.train(**job.train_kwargs(), force=self.force)
        ev = exp.evaluate(run, **job.evaluate)
        self._keep(dataset, label, seed, run, ev, record, metrics)
        return run

    def students(
        self,
        dataset: str,
        methods: Mapping[str, Any],
        teacher: Run | None = None,
        *,
        robustness: bool | Collection[str] = True,
        **kw,
    ) -> dict[tuple[str, int], Run]:
        """:meth:`student` for every ``label: method`` and every seed of the dataset.

        ``robustness``: a bool, or the labels that get the (slow) robustness evaluation.
        Returns ``{(label, seed): run}``.
        """
        calls = []
        for label, spec in methods.items():
            rob = robustness if isinstance(robustness, bool) else label in robustness
            calls += [
                dict(label=label, method=spec, seed=seed, teacher=teacher, robustness=rob, **kw)
                for seed in self.seeds(dataset)
            ]
        runs = self.student_group(dataset, calls)
        return {(c["label"], c["seed"]): run for c, run in zip(calls, runs)}

    def student_group(self, dataset: str, calls: Iterable[Mapping[str, Any]], *, desc: str = "") -> list[Run]:
        """:meth:`student` for each call (a dict of its arguments: ``label``, ``method``, ``seed``,
        ``teacher``, ...), the runs not yet stored trained side by side first by the settings'
        executor (:mod:`kdutils.parallel`: worker processes on a CPU), each evaluated where it was
        trained; then every call reads its run and evaluation from the store, in order."""
        calls = [dict(c) for c in calls]
        if not self.force and len(calls) > 1:
            exp = self[dataset]
            jobs = [self._job(exp, c) for c in calls]
            self._trained.update(
                train_group(exp, jobs, desc=desc or f"{self.notebook} {dataset}", read_back=False) or []
            )
        return self._each(dataset, calls, self.student, desc or "runs")

    def _each(self, dataset: str, calls: list[dict], one: Any, what: str) -> list[Run]:
        """``one(dataset, **call)`` for each call under one bar, "<dataset>: <what> k/N [elapsed<left]"
        with the run's label and seed beside it: it counts what follows training too (reading
        each run back, its evaluations where they run here: every run at smoke or on a GPU), and
        empties itself when done (:func:`kdutils.runtime.progress_bar`)."""
        from ..inputs.data import display_name
        from ..inputs.runtime import progress_bar

        out = []
        with progress_bar(
            total=len(calls),
            desc=f"{display_name(dataset)}: {what}",
            disable=not self[dataset].progress or len(calls) < 2,
            leave=False,
        ) as bar:
            for c in calls:
                bar.set_postfix_str(f"{c.get('label', what)} s{c.get('seed', 0)}", refresh=False)
                out.append(one(dataset, **c))
                bar.update(1)
        return out

    @staticmethod
    def _job(exp: Experiment, call: Mapping[str, Any]) -> Job:
        """The :class:`~kdutils.parallel.Job` of one :meth:`student` call: the one description of a
        run, which a worker of a group trains and :meth:`student` reads back (or trains alone)."""
        c = dict(call)
        label, teacher = c.pop("label"), c.pop("teacher", None)
        ev_teacher = c.pop("eval_teacher", None)
        ev = {"teacher": ev_teacher if ev_teacher is not None else teacher, "robustness": c.pop("robustness", True)}
        if c.get("only") is not None:
            ev["only"] = _with_predictions(c.pop("only"))
        c.pop("only", None), c.pop("metrics", None), c.pop("record", None)
        return Job.student(exp.settings, c.pop("method"), c.pop("seed"), teacher=teacher, label=label, evaluate=ev, **c)

    def _keep(self, ds, label, seed, run, ev, record, metrics) -> None:
        self.runs[ds, label, seed], self.evals[ds, label, seed] = run, ev
        if record:
            numbers = scalar_metrics(ev)
            if metrics is not None:
                numbers = {k: numbers[k] for k in metrics}
            self.results.add(ds, label, seed, numbers, run=run.key, predictions=ev.get("test_predictions"))

    @contextlib.contextmanager
    def timing(self, dataset: str):
        """``with ctx.timing(ds): ...`` adds the block's wall time to the dataset's total."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[dataset] = self.seconds.get(dataset, 0.0) + time.perf_counter() - t0

    # ---------------------------------------------------------------- output
    def save_figure(self, fig, name: str, *, show: bool = True) -> Path:
        """Save ``fig`` as ``<figures>/<name>.png``; in a notebook, show it here (once) and close it.

        A dataset name inside ``name`` (``f"accuracy_{ds}"``) becomes its file stem
        (:func:`kdutils.data.dataset_stem`): ``image_folder:/data/pets`` -> ``accuracy_folder_pets``."""
        from ..inputs.data import dataset_stem
        from . import plots

        shown = None  # the dataset the figure is about: the one whose name ends its file name
        for ds in sorted(self.datasets, key=len, reverse=True):
            if ds != dataset_stem(ds):
                name = name.replace(ds, dataset_stem(ds))
            if shown is None and name.endswith("_" + dataset_stem(ds)):
                shown = ds
        from ..inputs.data import display_name

        plots.readable(fig, {**plots.READABLE, **{ds: display_name(ds) for ds in self.datasets}})
        plots.caption(fig, self.caption(shown))
        path = plots.save_figure(fig, self.figures, name)
        if show:
            try:
                from IPython import get_ipython
                from IPython.display import display
            except ImportError:  # pragma: no cover
                return path
            if get_ipython() is not None:
                import matplotlib.pyplot as plt

                # the saved file's name rides with the output, so a published copy of the executed
                # notebook can show the committed file instead of a second copy (kdutils.report.site)
                display(fig, metadata={"kdutils": {"figure": _figure_name(path)}})
                plt.close(fig)
        return path

    def caption(self, dataset: str | None = None) -> str:
        """The line every saved figure carries at its foot: the dataset's display name, the student
        and teacher, the profile, the epochs and the seeds (the profile alone without a dataset)."""
        from ..inputs.data import display_name

        if dataset is None:
            return f"{self.notebook} · {self.profile} profile"
        st = self.settings(dataset)
        seeds = list(self.seeds(dataset))
        seed_text = (
            f"seeds {seeds[0]}-{seeds[-1]}" if seeds == list(range(seeds[0], seeds[-1] + 1)) else f"seeds {seeds}"
        )
        note = self[dataset].split.note
        shown = display_name(dataset) + (
            f" ({note.split(' (')[0]})" if note else ""
        )  # "CIFAR-10 (JPEG copy of CIFAR10)"
        return (
            f"{shown} · {st.teacher_model} -> {st.student_model} · {self.profile} profile, "
            f"students {st.student_recipe.epochs} epochs, {seed_text}"
        )

    def bar_figures(
        self,
        stem: str,
        order: Iterable[str],
        title: Callable[[str], str],
        *,
        metric: str = "accuracy",
        ylabel: str = "test accuracy",
    ) -> None:
        """Per dataset: ``metric`` of the labels in ``order`` as bars with their spread over seeds,
        titled ``title(dataset)`` and saved as ``<stem>_<dataset>``."""
        from . import plots

        df, order = self.frame, list(order)
        for ds in self:
            d = df[(df.dataset == ds) & (df.metric == metric) & df.method.isin(order)]
            fig = plots.bar_with_spread(d, x="method", y="value", order=order, ylabel=ylabel, title=title(ds))
            self.save_figure(fig, f"{stem}_{ds}")

    def reliability_figures(self, labels: Iterable[str], *, ncols: int = 4) -> None:
        """Per dataset: the reliability diagrams (15 bins, with ECE) of the first seed of each of
        ``labels`` (a teacher, trained once, at its seed 0), titled and saved as ``reliability_<dataset>``."""
        from . import plots

        for ds in self:
            first = self.seeds(ds)[0]
            rel = {}
            for label in labels:
                ev = self.evals[ds, label, first] if (ds, label, first) in self.evals else self.evals[ds, label, 0]
                rel[label] = {**ev["reliability"], "ece": ev["ece"]}
            fig = plots.reliability_diagrams(rel, ncols=ncols)
            fig.suptitle(f"{ds}: reliability (seed {first})")
            self.save_figure(fig, f"reliability_{ds}")

    def save_results(self, claims: pd.DataFrame | None = None) -> Path:
        """Write ``results.csv`` (and each run's test predictions, ``predictions.csv``) into
        ``ctx.out`` and say where. When the figures go to the committed gallery (``quick`` and
        ``full`` with no ``figures_dir`` given), the results go to the committed
        ``results/<notebook>/<profile>/<dataset>.*`` as well (:meth:`kdutils.results.Results.publish`:
        the rows, the predictions, ``claims``' rows of that dataset, the provenance), which
        ``python -m kdutils report`` reads."""
        path = self.results.save(self.out)
        print(f"wrote {path} ({len(self.results)} rows)")
        folder = self.published_results_dir()
        if folder is not None:
            from .evidence import encode_predictions
            from .published import LABELS

            for ds in self.datasets:  # the test labels beside the predictions: the files stand alone
                labels = encode_predictions(self[ds].split.test_y.cpu().numpy())
                self.results.predictions[ds, LABELS, -1] = ("", labels)
            if claims is not None:
                by_where = {self.where(ds): ds for ds in self.datasets}
                claims = claims.assign(dataset_key=[by_where.get(w, w) for w in claims["dataset"]])
            files = self.results.publish(folder, self.provenance(), claims)
            print(f"wrote {len(files)} files of the committed results in {folder}")
        return path

    def published_results_dir(self) -> Path | None:
        """``results/<notebook>/<profile>`` when this execution writes the committed gallery (``quick``
        and ``full`` with the default figures folder), else None."""
        from ..core.io import GALLERY, default_results_dir

        gallery = default_figures_dir(self.notebook, self.profile)
        if self.profile not in GALLERY or self.figures.resolve() != gallery.resolve():
            return None  # smoke and paper: their figures are not the gallery's, nor their results
        return default_results_dir(self.notebook, self.profile)

    def provenance(self) -> dict[str, Any]:
        """What the committed results were measured with: commit, versions, device, CPU or GPU model,
        threads, workers, wall time, date, seeds, and the runs trained now against reused."""
        import datetime

        env = environment()
        unique = {r.key: r for r in self.runs.values()}.values()
        st = next(iter(self.experiments.values())).settings
        return {
            "notebook": self.notebook,
            "profile": self.profile,
            "seeds": {ds: list(self.seeds(ds)) for ds in self.datasets},
            "git_commit": env.get("git_commit"),
            "date": datetime.date.today().isoformat(),
            "python": env.get("python"),
            "torch": env.get("torch"),
            "foolbox": env.get("foolbox"),
            "device": str(next(iter(self.experiments.values())).device),
            "gpu": env.get("cuda"),
            "cpu": env.get("cpu"),
            "cpu_capability": env.get("cpu_capability"),
            "cpu_threads": env.get("cpu_threads"),
            "executor": st.executor,
            "workers": st.workers,
            "notebook_wall_s": round(time.perf_counter() - self.t_start, 1),
            "training_and_evaluation_s": {ds: round(self.seconds.get(ds, 0.0), 1) for ds in self.datasets},
            "runs_trained_now": sum(self.trained_now(r) for r in unique),
            "runs_reused": sum(not self.trained_now(r) for r in unique),
            # the stored runs' own training time (their epochs' seconds, summed), whenever they trained:
            # the wall time above is this execution's, which is seconds when every run is reused
            "runs_training_s": round(sum(float(h.get("seconds", 0.0)) for r in unique for h in r.history), 1),
        }

    @property
    def frame(self) -> pd.DataFrame:
        """The results so far (tidy: notebook, profile, dataset, method, seed, metric, value)."""
        return self.results.frame

    def environment_frame(self) -> pd.DataFrame:
        """What this execution ran on and how long it took: the last cell's table."""
        unique = {r.key: r for r in self.runs.values()}.values()
        timing: dict[str, Any] = {
            "notebook wall time (s)": round(time.perf_counter() - self.t_start, 1),
            "runs trained now": sum(self.trained_now(r) for r in unique),
            "runs reused": sum(not self.trained_now(r) for r in unique),
        }
        # a CPU's digits depend on its kind and the thread count each run trained at (runtime.cpu_numerics)
        cpu = [r.record.get("cpu_numerics") or {} for r in unique if r.record.get("device", "cpu") == "cpu"]
        if cpu:
            threads = Counter(c.get("cpu_threads", "not recorded") for c in cpu)
            timing["CPU runs by intra-op threads"] = ", ".join(f"{t}: {n}" for t, n in sorted(threads.items(), key=str))
            here = cpu_numerics()
            timing["CPU runs trained on another kind of CPU"] = sum(
                bool(c) and (c["cpu"], c["cpu_capability"]) != (here["cpu"], here["cpu_capability"]) for c in cpu
            )
        for ds in self.datasets:
            timing[f"{ds}: training + evaluation (s)"] = round(self.seconds.get(ds, 0.0), 1)
            for label in self._teacher_labels.get(ds, []):
                timing[f"{ds}: {label} s/epoch"] = round(self.runs[ds, label, 0].seconds_per_epoch, 2)
            teachers = set(self._teacher_labels.get(ds, []))
            secs = [r.seconds_per_epoch for (d, lb, _), r in self.runs.items() if d == ds and lb not in teachers]
            if secs:
                timing[f"{ds}: student s/epoch (mean)"] = round(sum(secs) / len(secs), 2)
        return pd.Series({**environment(), **timing}, name="value", dtype=object).to_frame()

    # ---------------------------------------------------------------- numbers and frames
    def values(self, dataset: str, method: str, metric: str = "accuracy") -> list[float]:
        """One value per seed (in the dataset's seed order) of ``metric`` for the runs labelled ``method``.

        For ``accuracy`` a :class:`~kdutils.report.evidence.SeedValues`: the list, and which test images
        each seed's model got right (from the ``predictions`` evaluation), so claim rules add the
        test-set noise to their interval; for a robust accuracy (``robust_pgd@0.1``) the same with
        which attacked images each seed's model keeps (the ``robust_images`` evaluation, computed on
        first use)."""
        seeds = [s for s in self.seeds(dataset) if (dataset, method, s) in self.evals]
        if not seeds:
            labels = sorted({lb for (d, lb, _) in self.evals if d == dataset})
            raise KeyError(f"no runs labelled {method!r} on {dataset} (labels: {labels})")
        return self._seed_values(dataset, method, seeds, metric)

    def _seed_values(self, dataset: str, method: str, seeds: Sequence[int], metric: str) -> list[float]:
        from .evidence import SeedValues

        evs = [self.evals[dataset, method, s] for s in seeds]
        missing = [s for s, ev in zip(seeds, evs) if metric not in ev]
        if missing:
            have = sorted(k for k, v in evs[0].items() if isinstance(v, (int, float)))
            raise KeyError(
                f"{method} on {dataset} has no {metric!r} at seeds {missing} (not evaluated for it; "
                f"robust accuracies need robustness=True); its metrics: {', '.join(have)}"
            )
        values = [float(ev[metric]) for ev in evs]
        records = [self._per_image(dataset, method, s, metric) for s in seeds]
        if any(r is None for r in records) or len({len(r) for r in records}) != 1:
            return values
        return SeedValues(values, np.stack(records))

    #: metrics measured on images the eval teacher picks (its mistakes, its correct points): two runs'
    #: records pair only when both were scored against one teacher
    _RETENTION = re.compile(r"mu_[sf]_(train|test)")
    _FAITHFUL = re.compile(r"(gap|certified_gap|crown_gap)_(?:mean_tc|faithful_tc@(.+))")

    #: per-test-image values against the eval teacher, rebuilt from both models' stored test logits
    _FROM_LOGITS = ("agreement", "rank_spearman_mean")

    def _teacher_bound(self, metric: str) -> bool:
        return bool(
            self._RETENTION.fullmatch(metric) or self._FAITHFUL.fullmatch(metric) or metric in self._FROM_LOGITS
        )

    def _per_image(self, dataset: str, method: str, seed: int, metric: str) -> np.ndarray | None:
        """The per-image record whose mean is ``metric`` of this run (None when ``metric`` has none):

        * ``accuracy``: its test predictions against the labels (``predictions``);
        * a robust accuracy (``robust_pgd@0.1``): which attacked images the run keeps (``robust_images``);
        * ``mu_s_*`` / ``mu_f_*``: which of the teacher's mistakes it fixes / successes it breaks
          (``retention_images``);
        * ``agreement`` and ``rank_spearman_mean``: per test image, from both models' test logits;
        * 04's student-independent faithfulness keys (``gap_mean_tc``, ``crown_gap_faithful_tc@0.1``, ...):
          the gap per teacher-correct point (1 where the student errs) or whether it is within delta,
          rebuilt from the stored gap values of the both-correct points and both models' test predictions.

        Records other than accuracy's are computed on first use (the two evaluations on request are
        cached with the run), compared with the recorded value (a warning and None, i.e. seed-only, when
        a rebuilt one differs; a warning when a recomputed one does) and recorded for the committed
        results (``<dataset>.images.csv``)."""
        from ..core.io import decode_predictions, decode_record
        from ..evaluation.evaluations import robust_images_at

        ev, run = self.evals[dataset, method, seed], self.runs[dataset, method, seed]
        if metric == "accuracy":
            if "test_predictions" not in ev:
                return None
            return decode_predictions(ev["test_predictions"]) == self[dataset].split.test_y.cpu().numpy()
        job = self.jobs.get((dataset, method, seed))
        teacher = (job.evaluate or {}).get("teacher") if job is not None else None
        if self._FAITHFUL.fullmatch(metric):
            text = self._faithful_record(dataset, method, seed, metric, teacher)
        elif metric in self._FROM_LOGITS:
            text = None if teacher is None else self._logit_record(dataset, run, teacher, metric)
        else:
            if metric.startswith("robust_"):
                name = "robust_images"
            elif self._RETENTION.fullmatch(metric) and teacher is not None:
                name = "retention_images"
            else:
                return None
            if name not in ev:
                ev.update(self[dataset].evaluate(run, teacher if name == "retention_images" else None, only=[name]))
            text = robust_images_at(ev, metric) if name == "robust_images" else ev[name].get(metric)
            if text is None:
                raise KeyError(f"{metric!r} has no per-image record in {name} of {method} seed {seed} on {dataset}")
        if text is None:
            return None
        record = decode_record(text)
        # the same computation: equal on a CPU up to the float32 of a value record (one image of a
        # million would move a share by 1e-6)
        if abs(float(record.mean()) - float(ev[metric])) > 1e-6:
            import warnings

            warnings.warn(
                f"{method} seed {seed} on {dataset}: per-image {metric} {record.mean():.6f} differs from the "
                f"recorded {float(ev[metric]):.6f} (a GPU's nondeterministic gradients change a few attacked "
                "images); the claim uses the per-image record",
                stacklevel=2,
            )
        self.results.add_images(dataset, method, seed, metric, text, run=run.key)
        return record

    def _logit_record(self, dataset: str, run: Run, teacher: Run, metric: str) -> str:
        """``agreement`` (whether the student's top class is the teacher's, per test image) or
        ``rank_spearman_mean`` (the Spearman correlation of their class rankings per test image),
        from the stored test logits of both (:mod:`kdutils.metrics`, as the evaluations compute them)."""
        from ..core.io import encode_predictions, encode_values
        from ..numerics import metrics as M

        exp = self[dataset]
        z, zt = exp.logits(run, "test").cpu(), exp.logits(teacher, "test").cpu()
        if metric == "agreement":
            return encode_predictions((z.argmax(1) == zt.argmax(1)).numpy().astype(np.uint8))
        return encode_values(M.rank_correlation(z, zt).double().numpy())

    def _faithful_record(self, dataset: str, method: str, seed: int, metric: str, teacher) -> str | None:
        """04's student-independent reading per teacher-correct point, rebuilt without recomputing
        (:func:`kdutils.evaluations._student_independent`): the gap of each both-correct point (stored
        as ``<prefix>_values``, clamped to [0, 1] as the claims' keys are) and 1 where the student errs;
        for ``..._faithful_tc@delta`` whether that is within delta. None (seed-only, with a warning) when
        the rebuilt record does not give back the recorded value."""
        import warnings

        from ..core.io import encode_predictions, encode_values
        from ..evaluation.evaluations import faithfulness_protocol

        prefix, delta = self._FAITHFUL.fullmatch(metric).groups()
        ev, run = self.evals[dataset, method, seed], self.runs[dataset, method, seed]
        if teacher is None or f"{prefix}_values" not in ev:
            return None
        exp = self[dataset]
        n = min(int(faithfulness_protocol(exp.settings)["n"]), len(exp.split.test_y))
        y = exp.split.test_y[:n].cpu()
        t_ok = exp.logits(teacher, "test")[:n].cpu().argmax(1) == y
        both = (exp.logits(run, "test")[:n].cpu().argmax(1) == y)[t_ok].numpy()
        vals = np.clip(np.asarray(ev[f"{prefix}_values"], dtype=np.float32), 0.0, 1.0)
        gap = np.ones(len(both), dtype=np.float32)
        if int(both.sum()) == len(vals):
            gap[both] = vals
        rec = gap.astype(np.float64) if delta is None else (gap <= np.float32(float(delta))).astype(np.float64)
        if int(both.sum()) != len(vals) or abs(float(rec.mean()) - float(ev[metric])) > 1e-9:
            warnings.warn(
                f"{method} seed {seed} on {dataset}: the per-point record of {metric} could not be rebuilt "
                "from the stored gaps and predictions; its comparisons stay seed-only",
                stacklevel=3,
            )
            return None
        return encode_values(rec) if delta is None else encode_predictions(rec.astype(np.uint8))

    def paired(self, dataset: str, a: str, b: str, metric: str = "accuracy") -> tuple[list[float], list[float]]:
        """``metric`` of ``a`` and of ``b`` on the seeds both have, paired by seed (with the per-image
        results for ``accuracy``, as :meth:`values`)."""
        seeds = [s for s in self.seeds(dataset) if (dataset, a, s) in self.evals and (dataset, b, s) in self.evals]
        va, vb = self._seed_values(dataset, a, seeds, metric), self._seed_values(dataset, b, seeds, metric)
        if self._teacher_bound(metric) and any(
            self._eval_teacher(dataset, a, s) != self._eval_teacher(dataset, b, s) for s in seeds
        ):
            return list(va), list(vb)  # scored against different teachers: not the same images, seed-only
        return va, vb

    def _eval_teacher(self, dataset: str, label: str, seed: int) -> str | None:
        """The key of the teacher a run was evaluated against (None without one)."""
        job = self.jobs.get((dataset, label, seed))
        teacher = (job.evaluate or {}).get("teacher") if job is not None else None
        return getattr(teacher, "key", None)

    def teacher_mistakes(self, dataset: str, teacher: str = "teacher") -> int:
        """How many training images the teacher (seed 0) gets wrong: the images mu_S is measured on, so
        the claims on it can count their sampling (:func:`kdutils.report.claims.retention_above`). Computed
        once per dataset and written to the results table (metric ``n_teacher_wrong_train`` of the
        teacher), so the interval can be recomputed from ``results/``."""
        cache = self._teacher_mistakes
        if (dataset, teacher) not in cache:
            exp, run = self[dataset], self.runs[dataset, teacher, 0]
            n = int(teacher_wrong(exp.logits(run, "train", persist=True).cpu(), exp.split.train_y.cpu()).sum())
            cache[dataset, teacher] = n
            self.results.add(dataset, teacher, 0, {"n_teacher_wrong_train": n}, run=run.key)
        return cache[dataset, teacher]

    def margin(self, dataset: str, teacher: str = "teacher", alone: str = "student alone"):
        """The non-inferiority margin at this dataset and profile (:func:`kdutils.report.evidence.scaled_margin`):
        a third of the gap from the student alone (mean over seeds) to its teacher (seed 0)."""
        from .evidence import scaled_margin

        return scaled_margin(self.evals[dataset, teacher, 0]["accuracy"], self.values(dataset, alone))

    def _selected(self, table: Mapping, methods: Iterable[str] | None, datasets: Iterable[str] | None):
        ms = None if methods is None else list(methods)
        dss = None if datasets is None else set(datasets)
        keys = [k for k in table if (ms is None or k[1] in ms) and (dss is None or k[0] in dss)]
        if ms is not None:  # the order of ``methods``
            keys.sort(key=lambda k: (self.datasets.index(k[0]), ms.index(k[1]), k[2]))
        return keys

    def robustness_frame(
        self,
        methods: Iterable[str] | None = None,
        *,
        datasets: Iterable[str] | None = None,
        evals: Mapping | None = None,
    ) -> pd.DataFrame:
        """Long format: dataset, method, seed, attack, epsilon, value (robust accuracy), every evaluated run."""
        evals = self.evals if evals is None else evals
        rows = [
            {"dataset": ds, "method": label, "seed": seed, "attack": attack, "epsilon": float(e), "value": float(v)}
            for (ds, label, seed) in self._selected(evals, methods, datasets)
            if "robustness" in evals[ds, label, seed]
            for attack, accs in evals[ds, label, seed]["robustness"].items()
            if attack != "epsilons"
            for e, v in zip(evals[ds, label, seed]["robustness"]["epsilons"], accs)
        ]
        return pd.DataFrame(rows, columns=["dataset", "method", "seed", "attack", "epsilon", "value"])

    def usage_frame(
        self,
        methods: Iterable[str] | None = None,
        *,
        datasets: Iterable[str] | None = None,
        runs: Mapping | None = None,
    ) -> pd.DataFrame:
        """Per-epoch participation: dataset, method, seed, epoch, value (share of the training rows)."""
        runs = self.runs if runs is None else runs
        rows = [
            {"dataset": ds, "method": label, "seed": seed, "epoch": h["epoch"], "value": float(h["participation"])}
            for (ds, label, seed) in self._selected(runs, methods, datasets)
            for h in runs[ds, label, seed].history
        ]
        return pd.DataFrame(rows, columns=["dataset", "method", "seed", "epoch", "value"])

    def metric_frame(
        self,
        metrics: Iterable[str] = ("accuracy", "data_usage"),
        methods: Iterable[str] | None = None,
        *,
        datasets: Iterable[str] | None = None,
        with_runs: bool = False,
    ) -> pd.DataFrame:
        """Wide: one row per run (dataset, method, seed), one column per metric (and the run's key and reuse)."""
        metrics = list(metrics)
        extra = ["key", "reused"] if with_runs else []
        rows = []
        for ds, label, seed in self._selected(self.evals, methods, datasets):
            row = {
                "dataset": ds,
                "method": label,
                "seed": seed,
                **{m: self.evals[ds, label, seed].get(m) for m in metrics},
            }
            if with_runs:
                run = self.runs[ds, label, seed]
                row.update(key=run.key, reused=run.reused)
            rows.append(row)
        return pd.DataFrame(rows, columns=["dataset", "method", "seed", *metrics, *extra])

    def tidy(
        self,
        arms: Iterable[tuple[str, Mapping[str, Any]]],
        metric: str = "accuracy",
        *,
        datasets: Iterable[str] | None = None,
    ) -> pd.DataFrame:
        """One row per (arm, seed): dataset, the arm's attributes, seed, value of ``metric``.

        ``arms`` pairs a run label with the attributes it stands for, e.g.
        ``("KD minus random 0.3", {"how": "random", "dropped": 0.3})``; a label may appear in
        several arms (the unpruned run as ``dropped = 0`` of every curve).
        """
        arms = list(arms)
        cols = list(dict.fromkeys(k for _, attrs in arms for k in attrs))
        dss = list(datasets) if datasets is not None else self.datasets
        rows = [
            {"dataset": ds, **attrs, "seed": s, "value": float(self.evals[ds, label, s][metric])}
            for ds in dss
            for label, attrs in arms
            for s in self.seeds(ds)
            if (ds, label, s) in self.evals
        ]
        return pd.DataFrame(rows, columns=["dataset", *cols, "seed", "value"])

    def convergence(self, dataset: str, methods: Iterable[str] | None = None, *, longer: Iterable[str] = ()) -> str:
        """Whether the students converged, for the claims table's "converged" column.

        ``longer``: the labels (the student alone, KD and the notebook's headline method) whose
        first seed is trained again at twice the epochs at the profiles of
        :data:`LONGER_CHECK_PROFILES` (:meth:`longer_runs`): "yes" when every longer run is within
        :data:`LONGER_TOL` (0.3 points) of the normal one's test accuracy, else "no", with each gain.
        Elsewhere, and after it, the plateau of the validation curves
        (:func:`kdutils.claims.convergence` of ``methods``, default all but teachers), which a
        cosine schedule nearly guarantees and so is shown, never trusted alone."""
        from .claims import convergence

        teachers = set(self._teacher_labels.get(dataset, []))
        ms = None if methods is None else set(methods)
        hist = [
            r.history
            for (d, lb, _), r in self.runs.items()
            if d == dataset and lb not in teachers and (ms is None or lb in ms)
        ]
        plateau = convergence(hist)
        longer = [lb for lb in longer if any(k[0] == dataset and k[1] == lb for k in self.jobs)]
        if not longer:
            return plateau
        if self.profile not in LONGER_CHECK_PROFILES:
            return f"{plateau}; 2x-epochs check at {', '.join(LONGER_CHECK_PROFILES)} only"
        gains = self.longer_runs(dataset, longer)
        ok = all(abs(g) < LONGER_TOL for g in gains.values())
        text = ", ".join(f"{lb} {g * 100:+.2f}" for lb, g in gains.items())
        return f"{'yes' if ok else 'no'}: at 2x epochs, seed {self.seeds(dataset)[0]}: {text} points; {plateau}"

    def longer_runs(self, dataset: str, labels: Iterable[str], factor: int = 2) -> dict[str, float]:
        """Train the first seed of each label again with ``factor`` x its epochs (same method, teacher,
        recipe otherwise; stored like any run), record it as ``"<label> (2x epochs)"`` and return
        ``{label: its test accuracy - the normal run's}``."""
        import dataclasses

        exp, seed, out = self[dataset], self.seeds(dataset)[0], {}
        for label in labels:
            job = self.jobs[dataset, label, seed]
            kw = job.train_kwargs()
            kw["recipe"] = dataclasses.replace(kw["recipe"], epochs=kw["recipe"].epochs * factor)
            kw["label"] = f"{label} ({factor}x epochs)"
            run = exp.train(**kw, force=self.force)
            ev = exp.evaluate(run, only=["accuracy", "predictions"])
            self._keep(dataset, f"{label} ({factor}x epochs)", seed, run, ev, True, ["accuracy", "val_accuracy"])
            out[label] = float(ev["accuracy"]) - float(self.evals[dataset, label, seed]["accuracy"])
        return out

    def differences(self, pairs: Mapping[str, str], metric: str = "accuracy", **kw) -> pd.DataFrame:
        """``{a: b}``: ``a - b`` per dataset, paired by seed, as :func:`kdutils.results.best_of_many` rows
        (estimate and interval in points, Holm-corrected over the pairs), with a ``dataset`` column."""
        from .results import best_of_many

        parts = [
            best_of_many({f"{a} - {b}": self.paired(ds, a, b, metric) for a, b in pairs.items()}, **kw).assign(
                dataset=ds
            )
            for ds in self.datasets
        ]
        out = pd.concat(parts, ignore_index=True)
        return out[["dataset", *[c for c in out.columns if c != "dataset"]]]

    def best_of_many(
        self,
        frame: pd.DataFrame,
        reference: str,
        *,
        keys: Iterable[str] = ("attack", "epsilon"),
        exclude: Iterable[str] = (),
        top: int | None = None,
        **kw,
    ) -> pd.DataFrame:
        """Exploration per dataset: :func:`kdutils.results.best_of_many` over every method x ``keys``
        margin over ``reference`` in ``frame`` (paired by seed, Holm-corrected), with a ``dataset``
        column; ``top``: the best rows of each dataset only. It never decides a claim."""
        from .results import best_of_many

        parts = []
        for ds in [d for d in self.datasets if (frame["dataset"] == d).any()]:
            pairs = self.comparison_pairs(frame[frame["dataset"] == ds], reference, keys=keys, exclude=exclude)
            t = best_of_many(pairs, **kw)
            parts.append((t if top is None else t.head(top)).assign(family=len(pairs)).assign(dataset=ds))
        if not parts:
            return pd.DataFrame()
        out = pd.concat(parts, ignore_index=True)
        return out[["dataset", *[c for c in out.columns if c != "dataset"]]]

    def margins(self, frame: pd.DataFrame, reference: str, **kw) -> pd.DataFrame:
        """:func:`margins` (each method minus ``reference``, paired by seed, in points)."""
        return margins(frame, reference, **kw)

    def comparison_pairs(
        self,
        frame: pd.DataFrame,
        reference: str,
        *,
        keys: Iterable[str] = ("attack", "epsilon"),
        exclude: Iterable[str] = (),
    ) -> dict[str, tuple[list[float], list[float]]]:
        """``{"<method>, <key values>": (method's values, reference's values)}``, paired by seed.

        ``frame`` is tidy (method, seed, value and ``keys``) and holds one dataset, e.g.
        ``robustness_frame(...)`` restricted to epsilon > 0: the family that
        :func:`kdutils.results.best_of_many` explores.
        """
        keys = list(keys)
        ref = frame[frame["method"] == reference]
        out: dict[str, tuple[list[float], list[float]]] = {}
        rest = frame[~frame["method"].isin([reference, *exclude])]
        for (method, *kv), g in rest.groupby(["method", *keys], sort=False):
            r = ref
            for k, v in zip(keys, kv):
                r = r[r[k] == v]
            m = g.merge(r[["seed", "value"]], on="seed", suffixes=("", "_ref")).sort_values("seed")
            if "epsilon" in keys:
                grid = sorted(set(frame["epsilon"]))
                kv = [
                    format_epsilon(v, grid) if k == "epsilon" else (v.upper() if k == "attack" else v)
                    for k, v in zip(keys, kv)
                ]
            name = ", ".join([str(method), *(f"eps {v}" if k == "epsilon" else str(v) for k, v in zip(keys, kv))])
            out[name] = (m["value"].tolist(), m["value_ref"].tolist())
        return out


def _figure_name(path: Path) -> str:
    """A saved figure's path as the site looks it up: ``figures/...`` from the project root when it is
    inside the project's gallery, else ``<notebook folder>/<file>``."""
    from ..core.io import project_root

    path = Path(path).resolve()
    try:
        return path.relative_to(project_root()).as_posix()
    except ValueError:
        return f"{path.parent.name}/{path.name}"
