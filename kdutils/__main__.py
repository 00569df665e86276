"""Command line: ``python -m kdutils run [--profile P] [--only NAME] [--out DIR]``.

Executes the notebooks with papermill into ``<out>/<profile>/`` (default
``outputs/``), figures into ``figures/<notebook>/``, one ``results.csv`` beside each
executed notebook, then prints a short summary. Finished runs are reused from the run
store, so a second batch only re-evaluates notebooks (seconds, not minutes).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .profiles import PROFILES


def notebooks(root: Path) -> list[Path]:
    return sorted(p for p in (root / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def run_notebook(
    nb: Path, out_dir: Path, profile: str, figures_root: Path, params: dict | None = None, progress: bool = True
) -> Path:
    """Execute one notebook with papermill; returns the executed copy's path."""
    import papermill as pm

    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / nb.name
    p = {
        "profile": profile,
        "output_dir": str(out_dir / nb.stem),
        "figures_dir": str(figures_root / nb.stem),
        **(params or {}),
    }
    pm.execute_notebook(
        str(nb), str(out), parameters=p, cwd=str(nb.parent), progress_bar=progress, kernel_name="python3"
    )
    return out


def summary(out_dir: Path, names: list[str]) -> str:

    from .results import read_results

    lines = []
    for name in names:
        path = out_dir / name / "results.csv"
        if not path.exists():
            lines.append(f"{name}: no results.csv")
            continue
        df = read_results(path)
        acc = df[df["metric"] == "accuracy"]
        tab = acc.groupby(["dataset", "method"], sort=False)["value"].agg(["mean", "std", "count"])
        tab = (tab * [100, 100, 1]).round(2)
        lines.append(f"{name}  ({path})\n{tab.to_string()}")
    return "\n\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from .errors import UnknownNameError
    from .io import project_root

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
    r.add_argument("--figures", default=None, help="figures folder (default <project>/figures)")
    r.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        help="extra notebook parameter NAME=VALUE (VALUE parsed as Python literal)",
    )
    sub.add_parser("list", help="list the notebooks")
    args = ap.parse_args(argv)

    root = project_root()
    nbs = notebooks(root)
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
    out_dir = Path(args.out) if args.out else root / "outputs"
    out_dir = out_dir / args.profile
    figures = Path(args.figures) if args.figures else root / "figures"
    timings = []
    for nb in nbs:
        t0 = time.perf_counter()
        print(f"== {nb.stem} ({args.profile})", flush=True)
        run_notebook(nb, out_dir, args.profile, figures, params)
        timings.append((nb.stem, time.perf_counter() - t0))
    print()
    print(summary(out_dir, [n for n, _ in timings]))
    print()
    for name, secs in timings:
        print(f"{name}: {secs:.1f} s -> {out_dir / (name + '.ipynb')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
