"""The estimated cost of the ``paper`` profile per notebook, as the README's markdown table.

Usage::

    python benchmarks/paper_cost.py [--profile paper] [--detail NOTEBOOK] [--dry-run] [--measured [CSV]]

Prints :func:`kdutils.costs.markdown_table` (runs, epochs, training images per epoch, optimizer
steps, training PFLOPs, H100 hours) for every notebook plan in :mod:`kdutils.costs`, each notebook
at its default datasets for the profile (what ``make reproduce PROFILE=paper`` runs). Counting
only: FLOPs come from ``torch.utils.flop_counter`` on the ``meta`` device, hours from the stated
assumptions in :mod:`kdutils.costs` (a share of the H100's TF32 peak and a per-step floor);
nothing is trained (the estimate; ``--measured`` adds the H100-measured step times). ``--detail`` prints one notebook's rows per
label; ``--dry-run`` the same table for the dry run (``configure(..., dry_run=True)``); ``--measured``
also the hours at the seconds per step measured on a GPU (``bench_paper_steps.py --csv``, default
the H100's table in ``benchmarks/results/``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from kdutils import costs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="paper")
    ap.add_argument("--detail", default="", help="a notebook: its rows per label instead of the table")
    ap.add_argument("--dry-run", action="store_true", help="the dry run's sizes")
    ap.add_argument(
        "--measured",
        nargs="?",
        const=costs.MEASURED_STEP_TIMES,
        default="",
        help="also the hours at the step times measured on a GPU (bench_paper_steps.py --csv; default "
        f"{costs.MEASURED_STEP_TIMES})",
    )
    args = ap.parse_args()
    overrides = {"dry_run": True} if args.dry_run else {}
    if args.detail:
        with pd.option_context("display.width", 250, "display.max_columns", 20, "display.max_rows", 500):
            print(costs.estimate(args.detail, args.profile, **overrides).drop(columns="flops").round(3))
        return
    print(costs.markdown_table(costs.estimate_table(profile=args.profile, **overrides)))
    print()
    print(
        f"Sustained throughput {costs.SUSTAINED_FLOPS / 1e12:.1f} TFLOP/s ({costs.UTILISATION:.0%} of the H100 SXM's "
        f"dense TF32 peak, {costs.H100_TF32_DENSE / 1e12:.1f} TFLOP/s); step floor {costs.STEP_FLOOR_S * 1e3:g} ms; "
        "training = 3 x forward FLOPs. Estimated, not measured."
    )
    if args.measured:
        print()
        print(
            costs.measured_markdown_table(costs.read_step_times(Path(__file__).resolve().parent.parent / args.measured))
        )


if __name__ == "__main__":
    main()
