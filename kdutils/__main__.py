"""Command line: ``python -m kdutils run [--profile P] [--only NAME] [--out DIR] [--figures DIR]``,
``python -m kdutils report [--out FILE | --check FILE | --update FILE]`` (the committed results
as Markdown, :mod:`kdutils.report.published`), ``python -m kdutils strip [--check]`` (notebooks
without outputs, as the repository keeps them) and ``python -m kdutils list``.

Executes the notebooks with papermill into ``<out>/<profile>/`` (default ``outputs/``), one
``results.csv`` beside each executed notebook, then prints a short summary. Figures go to
``figures/<notebook>/`` at ``quick`` and ``figures/<notebook>/full/`` at ``full`` (the committed
gallery) and to ``<out>/<profile>/figures/<notebook>/`` at ``smoke`` and ``paper``, so a smoke
batch never overwrites the gallery (``--figures DIR``: ``DIR/<notebook>/`` at every profile). Finished runs are reused
from the run store, so a second batch only re-evaluates notebooks (seconds, not minutes).

A notebook that fails does not stop the batch: the others run, and the batch ends with one
line per failed notebook (the cell, the error, the executed copy to open) and exit status 1.
A notebook that ran every cell but wrote no ``results.csv`` counts as failed too.

Relative paths (``--out``, ``--figures``, ``--notebooks``, ``-p output_dir=...``, other ``*_dir``
parameters, ``image_folder:PATH``) mean the caller's working folder: they are made absolute
before a kernel starts in ``notebooks/``.

``-p NAME=VALUE`` goes to each chosen notebook whose parameters cell has ``NAME`` (a batch of
every notebook can pass ``-p temperatures=...`` to 00 alone); a name that no chosen notebook has
stops the batch before anything runs, naming their parameters (papermill itself would only warn).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .core import events
from .core.io import default_output_dir, default_outputs
from .training.profiles import PROFILES


def notebooks(root: Path) -> list[Path]:
    """The notebooks ``NN_<name>.ipynb`` in ``root/notebooks`` (or in ``root`` itself, if it holds them)."""
    folder = root / "notebooks" if (root / "notebooks").is_dir() else root
    return sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))


def figures_folder(notebook: str, profile: str, out_root: Path, figures: Path | None = None) -> Path:
    """Where a batch puts a notebook's figures: ``DIR/<notebook>`` when ``--figures DIR`` is
    given, else :func:`kdutils.io.default_figures_dir` under ``out_root`` (the ``--out`` folder)."""
    from .core.io import default_figures_dir

    return figures / notebook if figures is not None else default_figures_dir(notebook, profile, out_root)


@dataclass
class Failure:
    """A notebook that stopped: where and why, and the executed copy that shows it."""

    notebook: str
    cell: str
    error: str
    executed: Path

    def line(self) -> str:
        return f"FAILED {self.notebook}, {self.cell}: {self.error} (executed copy: {self.executed})"


def _one_line(text: object, limit: int = 300) -> str:
    s = " ".join(str(text).split())
    return s if len(s) <= limit else s[: limit - 3] + "..."


@contextlib.contextmanager
def _kernel_transport():
    """Engine arguments for papermill: on POSIX the kernel talks over IPC sockets in a private
    temporary folder instead of TCP ports, so nothing is reachable from outside and ipykernel does
    not print "Kernel is running over TCP without encryption" for every notebook."""
    if os.name != "posix":
        yield {}
        return
    from traitlets.config import Config

    with tempfile.TemporaryDirectory(prefix="kdutils-kernel-") as d:  # 0700; the sockets are kernel-1..5
        yield {"config": Config({"KernelManager": {"transport": "ipc", "ip": os.path.join(d, "kernel")}})}


def run_notebook(
    nb: Path, out_dir: Path, profile: str, figures_dir: Path, params: dict | None = None, progress: bool = True
) -> Path:
    """Execute one notebook with papermill; returns the executed copy's path.

    A failing cell raises papermill's ``PapermillExecutionError`` (``cell_index``, ``exec_count``,
    ``ename``, ``evalue``); the executed copy is written either way.
    """
    import papermill as pm

    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / nb.name
    # progress bars off: in the executed copy they are dozens of text updates per group, and the
    # terminal streams the same progress (kdutils.events); -p progress=True keeps them
    p = {
        "profile": profile,
        "output_dir": str(default_output_dir(nb.stem, profile, out_dir.parent)),
        "figures_dir": str(figures_dir),
        "progress": False,
        **(params or {}),
    }
    with contextlib.ExitStack() as stack:
        transport = stack.enter_context(_kernel_transport())
        if progress:  # what the kernel trains, evaluates and warns, line by line (kdutils.events)
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="kdutils-events-"))
            path = Path(folder) / "events"
            stack.enter_context(_environ(events.ENV, str(path)))
            stack.enter_context(events.follow(path, lambda line: print("  " + line, flush=True)))
        pm.execute_notebook(
            str(nb),
            str(out),
            parameters=p,
            cwd=str(nb.parent),
            progress_bar=False,
            kernel_name="python3",
            **transport,
        )
    return out


@contextlib.contextmanager
def _environ(name: str, value: str):
    """Set an environment variable for the kernels started inside the block."""
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


def failure(nb: Path, executed: Path, exc: BaseException) -> Failure:
    """The one-line account of a notebook that raised ``exc``: the cell (numbered from 1 in the
    notebook as stored, and its ``In [n]`` in the executed copy), the error's type and message."""
    from papermill.exceptions import PapermillExecutionError

    if not isinstance(exc, PapermillExecutionError):
        return Failure(nb.stem, "outside its cells", _one_line(f"{type(exc).__name__}: {exc}"), executed)
    cell = f"cell {exc.cell_index}"  # papermill's index in the executed copy, which has the injected parameters
    try:
        import nbformat

        sources = [c.source for c in nbformat.read(str(nb), as_version=4).cells]
        if sources.count(exc.source) == 1:
            cell = f"cell {sources.index(exc.source) + 1}"
    except Exception:  # pragma: no cover  (the stored notebook unreadable now: keep papermill's index)
        pass
    if exc.exec_count is not None:
        cell += f" (In [{exc.exec_count}])"
    return Failure(nb.stem, cell, _one_line(f"{exc.ename}: {exc.evalue}"), executed)


def summary(out_dir: Path, names: list[str]) -> str:

    from .report.results import read_results

    lines = []
    for name in names:
        path = default_output_dir(name, out_dir.name, out_dir.parent) / "results.csv"
        if not path.exists():
            lines.append(f"{name}: no results.csv")
            continue
        df = read_results(path)
        acc = df[df["metric"] == "accuracy"]
        tab = acc.groupby(["dataset", "method"], sort=False)["value"].agg(["mean", "std", "count"])
        tab = (tab * [100, 100, 1]).round(2)
        lines.append(f"{name}  ({path})\n{tab.to_string()}")
    return "\n\n".join(lines)


#: notebook parameters that name a path (besides any ``*_dir``): made absolute before a kernel starts
_PATH_PARAMS = {"output_dir", "figures_dir", "data_root", "runs_root"}
_IMAGE_FOLDER = "image_folder:"


def _absolute(path: str | Path) -> Path:
    """``path`` against the caller's working folder (a kernel runs in ``notebooks/``, where a
    relative path would mean something else)."""
    return Path(os.path.abspath(Path(path).expanduser()))


def absolute_paths(params: dict) -> dict:
    """``params`` with every relative path made absolute against the caller's working folder:
    ``output_dir``, ``figures_dir`` and other ``*_dir`` parameters, and the path of an
    ``image_folder:PATH`` dataset (alone or in a list of datasets)."""

    def fix_dataset(v):
        if isinstance(v, str) and v.startswith(_IMAGE_FOLDER) and v[len(_IMAGE_FOLDER) :]:
            return _IMAGE_FOLDER + str(_absolute(v[len(_IMAGE_FOLDER) :]))
        return v

    out = {}
    for k, v in params.items():
        if (k in _PATH_PARAMS or k.endswith("_dir")) and isinstance(v, str) and v:
            v = str(_absolute(v))
        elif k in ("dataset", "datasets"):
            v = [fix_dataset(d) for d in v] if isinstance(v, (list, tuple)) else fix_dataset(v)
        out[k] = v
    return out


def notebook_parameters(nb: Path) -> list[str]:
    """The names of ``nb``'s parameters cell (the cell tagged ``parameters``), in order."""
    import papermill as pm

    return list(pm.inspect_notebook(str(nb)))


def route_parameters(params: dict, nbs: list[Path]) -> dict[str, dict]:
    """Which ``-p`` parameters go to which notebook: each notebook gets those of its parameters
    cell. A name that no chosen notebook has is a mistake (papermill would only warn and run the
    default): :class:`~kdutils.errors.UnknownNameError` naming the chosen notebooks' parameters,
    with the nearest name when there is one (``dataset`` for ``datasets``)."""
    import difflib

    from .core.errors import UnknownNameError

    have = {nb.stem: notebook_parameters(nb) for nb in nbs}
    known = sorted({n for names in have.values() for n in names})
    for name in params:
        if name not in known:
            err = UnknownNameError("parameter", name, known)
            err.args = (f"unknown parameter {name!r} for {', '.join(have)}; valid choices: {', '.join(known)}",)
            near = difflib.get_close_matches(name, known, n=1)
            if near:
                owners = [nb for nb, names in have.items() if near[0] in names]
                err.args = (f"{err.args[0]} (did you mean {near[0]!r}? {', '.join(owners)} takes it)",)
            raise err
    return {nb: {k: v for k, v in params.items() if k in names} for nb, names in have.items()}


#: the notebook metadata kept in the repository: what a save in JupyterLab adds beyond it (the
#: Python version, widget state, ...) is removed by :func:`strip_notebook`
KEPT_METADATA = {"kernelspec", "language_info"}


def strip_notebook(path: Path) -> bool:
    """Make a notebook file what the repository keeps (an nbstripout-style clean): no outputs, no
    execution counts, no widget state or other metadata beyond the kernelspec and
    ``language_info = {"name": "python"}``, no per-cell metadata but tags. True when it changed."""
    import json

    text = path.read_text(encoding="utf-8")
    nb = json.loads(text)
    nb["metadata"] = {k: v for k, v in nb.get("metadata", {}).items() if k in KEPT_METADATA}
    if "language_info" in nb["metadata"]:
        nb["metadata"]["language_info"] = {"name": "python"}
    for cell in nb.get("cells", []):
        tags = cell.get("metadata", {}).get("tags")
        cell["metadata"] = {"tags": tags} if tags else {}
        if cell.get("cell_type") == "code":
            cell["outputs"], cell["execution_count"] = [], None
    new = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
    if new != text:
        path.write_text(new, encoding="utf-8")
    return new != text


def report(args, root: Path) -> int:
    """``python -m kdutils report``: see its ``--help``."""
    from .report import published as P

    results = _absolute(args.results) if args.results else root / "results"
    if not results.is_dir():
        print(f"error: no results folder at {results} (--results DIR)", file=sys.stderr)
        return 2
    from .papers import PAPERS

    about = {nb: (m.SHORT, m.TEACHES) for nb, m in PAPERS.items()}
    smoke = root / "benchmarks" / "results" / "smoke_times.csv"
    try:
        if args.check:
            stale = P.stale_blocks(Path(args.check).read_text(), results, about, smoke)
            for name in stale:
                print(
                    f"stale report block in {args.check}: {name} (run: python -m kdutils report --update {args.check})"
                )
            return 1 if stale else 0
        if args.update:
            path = Path(args.update)
            old = path.read_text()
            new = P.update_blocks(old, results, about, smoke)
            if new != old:
                path.write_text(new)
            print(f"{args.update}: {'updated' if new != old else 'already up to date'}")
            return 0
        text = P.render(results)
    except (OSError, ValueError) as exc:  # a missing file or results set, an unknown block kind or metric
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
        print(f"wrote {args.out}")
    else:
        print(text, end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    from .core.errors import UnknownNameError
    from .core.io import project_root

    ap = argparse.ArgumentParser(
        prog="python -m kdutils", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="execute notebooks with papermill")
    r.add_argument("--profile", default="quick", help=f"one of {', '.join(PROFILES)} (default quick)")
    r.add_argument(
        "--only", action="append", default=[], help="notebook name or prefix (repeatable), e.g. 00_kd_baseline or 00"
    )
    r.add_argument("--out", default=None, help="output folder (default <project>/outputs)")
    r.add_argument(
        "--figures",
        default=None,
        help="figures folder, DIR/<notebook>/ (default: the committed gallery at quick and full, figures/<notebook>/[full/]; "
        "<out>/<profile>/figures/<notebook>/ at smoke and paper)",
    )
    r.add_argument("--notebooks", default=None, help="folder of the notebooks (default <project>/notebooks)")
    r.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        help="extra notebook parameter NAME=VALUE (VALUE parsed as Python literal)",
    )
    sub.add_parser("list", help="list the notebooks")
    rp = sub.add_parser(
        "report",
        help="the committed results (results/) as Markdown tables, without training",
        description="Print every committed results set (results/<notebook>/<profile>/<dataset>.*) as Markdown: "
        "test accuracy per method and the claims table. --check FILE: exit 1 when a report block of FILE "
        "(<!-- report: NOTEBOOK/PROFILE/DATASET accuracy|claims -->) differs from the results; --update FILE "
        "rewrites those blocks; --out FILE writes the whole report there instead of printing it.",
    )
    rp.add_argument("--results", default=None, help="the results folder (default <project>/results)")
    rp.add_argument("--out", default=None, help="write the report to this file (e.g. docs/results.md)")
    rp.add_argument("--check", default=None, metavar="FILE", help="fail when FILE's report blocks are stale")
    rp.add_argument("--update", default=None, metavar="FILE", help="rewrite FILE's report blocks")
    sp = sub.add_parser(
        "strip",
        help="clear outputs and extra metadata from notebooks before committing them",
        description="Clear every output, execution count, widget state and metadata beyond the kernelspec from "
        "the notebooks (default: the project's notebooks/). --check: change nothing, exit 1 if one would change.",
    )
    sp.add_argument("paths", nargs="*", help="notebook files (default: notebooks/[0-9][0-9]_*.ipynb)")
    sp.add_argument("--check", action="store_true", help="only report the notebooks that are not clean")
    st = sub.add_parser(
        "site",
        help="the results site: README, docs and executed notebooks as static HTML that works offline",
        description="Build site/ (open site/index.html; math with no network). Executed notebooks come from "
        "docs/executed/ (committed) and each --executed DIR (a batch's --out). --publish DIR copies a batch's "
        "executed notebooks into docs/executed/, cleaned (one parameters cell, relative paths, figures from "
        "the committed gallery), and builds nothing.",
    )
    st.add_argument("--out", default="site", help="the site folder (default site/)")
    st.add_argument("--executed", action="append", default=[], metavar="DIR", help="a batch's output folder")
    st.add_argument("--publish", default=None, metavar="DIR", help="publish a batch's executed notebooks")
    args = ap.parse_args(argv)

    root = project_root()
    if args.cmd == "report":
        return report(args, root)
    if args.cmd == "site":
        from .report import site

        try:
            import jupyter_server_mathjax  # noqa: F401
            import markdown  # noqa: F401
            import nbconvert  # noqa: F401
        except ImportError as exc:
            print(
                f"error: the site needs the 'site' extra ({exc.name} is missing): pip install -e '.[site]' "
                "(make site installs it)",
                file=sys.stderr,
            )
            return 2

        for d in [*args.executed, *([args.publish] if args.publish else [])]:
            if not Path(d).is_dir():
                print(f"error: no folder {d} (give a batch's --out, e.g. outputs/)", file=sys.stderr)
                return 2
        if args.publish:
            for f in site.publish(_absolute(args.publish), root=root):
                print(f"published {f.relative_to(root)}")
            return 0
        try:
            built = site.build(_absolute(args.out), root=root, executed=[_absolute(d) for d in args.executed])
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        n = sum(len(v) for v in built.executed.values())
        print(f"wrote {len(built.pages)} pages ({n} executed notebooks) to {built.out} in {built.seconds:.1f} s")
        return 0
    if args.cmd == "strip":
        paths = [Path(p) for p in args.paths] or notebooks(root / "notebooks")
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            print(f"error: no notebook file {', '.join(missing)}", file=sys.stderr)
            return 2
        dirty = []
        for p in paths:
            if args.check:
                import shutil

                with tempfile.TemporaryDirectory() as d:
                    tmp = Path(d) / p.name
                    shutil.copy(p, tmp)
                    if strip_notebook(tmp):
                        dirty.append(p)
            elif strip_notebook(p):
                dirty.append(p)
        for p in dirty:
            print(f"{p}: {'not clean (run: python -m kdutils strip)' if args.check else 'stripped'}")
        return 1 if args.check and dirty else 0
    nbs = notebooks(_absolute(getattr(args, "notebooks", None) or root / "notebooks"))
    if args.cmd == "list":
        print("\n".join(p.stem for p in nbs))
        return 0
    if args.profile not in PROFILES:
        print(f"error: {UnknownNameError('profile', args.profile, PROFILES)}", file=sys.stderr)
        return 2
    if args.only:
        chosen = [p for p in nbs if any(p.stem == o or p.stem.startswith(o) for o in args.only)]
        if not chosen:
            print(
                f"error: {UnknownNameError('notebook', ', '.join(args.only), [p.stem for p in nbs])}", file=sys.stderr
            )
            return 2
        nbs = chosen
    params = {}
    for kv in args.param:
        import ast

        k, _, v = kv.partition("=")
        try:
            params[k] = ast.literal_eval(v)
        except (ValueError, SyntaxError):
            params[k] = v
    params = absolute_paths(params)
    try:
        routed = route_parameters(params, nbs)
    except UnknownNameError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out_root = _absolute(args.out) if args.out else default_outputs()
    out_dir = out_root / args.profile
    figures = _absolute(args.figures) if args.figures else None
    timings, failures = [], []
    for nb in nbs:
        t0 = time.perf_counter()
        print(f"== {nb.stem} ({args.profile})", flush=True)
        fig = figures_folder(nb.stem, args.profile, out_root, figures)
        skipped = sorted(set(params) - set(routed[nb.stem]))
        if skipped:
            print(f"  (not a parameter of {nb.stem}, not passed to it: {', '.join(skipped)})", flush=True)
        try:
            run_notebook(nb, out_dir, args.profile, fig, routed[nb.stem])
        except Exception as exc:  # papermill's execution error, a dead kernel, ...: the next notebook runs
            failures.append(failure(nb, out_dir / nb.name, exc))
            print(failures[-1].line(), flush=True)
        else:  # every cell ran, but a batch is for its results: none written is a failure too
            results = default_output_dir(nb.stem, args.profile, out_root) / "results.csv"
            if not results.exists():
                failures.append(Failure(nb.stem, "after its last cell", f"it wrote no {results}", out_dir / nb.name))
                print(failures[-1].line(), flush=True)
        timings.append((nb.stem, time.perf_counter() - t0))
    failed = {f.notebook for f in failures}
    done = [n for n, _ in timings if n not in failed]
    if done:
        print()
        print(summary(out_dir, done))
    print()
    for name, secs in timings:
        print(f"{name}: {secs:.1f} s -> {out_dir / (name + '.ipynb')}" + (" (failed)" if name in failed else ""))
    for f in failures:
        print(f.line())
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
