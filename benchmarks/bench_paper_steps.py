"""Benchmark: seconds per optimizer step of every kind of run the ``paper`` profile trains, measured,
against :mod:`kdutils.costs`' estimate and the student's own compute floor.

Usage::

    python benchmarks/bench_paper_steps.py [--notebooks 02,04] [--steps 30] [--warmup 5]
                                           [--device auto] [--csv out.csv]

:func:`kdutils.costs.plan_runs` lists the runs each notebook makes at ``paper`` (its default
datasets). Runs that differ only by seed (or by anything that does not change a step's work) share
a *kind*: dataset, student, teacher, method parameters, batch size, whether the teacher runs per
batch, the teacher's share of a batch (data selection). For each kind this script trains, through
:func:`kdutils.train.fit` (the trainer every notebook uses), the kind's student with the kind's
method and teacher on random images of the dataset's shape and classes: a warm-up ``fit`` of two
epochs of ``--warmup`` steps (cuDNN's first calls, the allocator), then a ``fit`` of two epochs of
``--steps`` steps whose second epoch is timed by its own clock (``history[1]["seconds"]``: the steps,
the scheduler, the 64-image validation pass and a device synchronisation; with two epochs the second
is past every warm-up and ramp of ``ibp`` and ``faithful``, so their bound passes are timed). Teachers' cached
training-set logits (no augmentation) are computed before the first epoch and not timed.

Beside it, the **floor**: the student's own forward, backward and optimizer step on one batch already
on the device (no teacher, no method, no data handling, no host reads), ``--steps`` times after
``--warmup``, synchronised at the end. The ratio trainer / floor is what the KD method and kdutils'
loop add.

Printed (and written with ``--csv``): one row per kind, with the planned optimizer steps of every
run of that kind, the measured seconds per step, the floor, the estimate of :mod:`kdutils.costs`
(its hours over its steps), and per notebook the training hours at the measured step times against
the estimate (training steps only: validation passes, teachers' logits and the evaluation suite are
left out, as the estimate leaves the evaluation out). Random images, so a method's data-dependent
work (the share of a batch CCKD-T+SR keeps, say) is what it is on noise. This is a measurement, not
a test: it never gates on a threshold and exits 0; a kind that fails is reported with its error.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import pandas as pd
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import kdutils as kd  # noqa: E402
from kdutils import costs  # noqa: E402
from kdutils.data import ImageData, make_split  # noqa: E402
from kdutils.methods.base import create_method  # noqa: E402
from kdutils.models import create_model  # noqa: E402
from kdutils.recipe import OPTIMIZERS  # noqa: E402
from kdutils.runtime import match_memory_format, place  # noqa: E402
from kdutils.testing import random_image_data  # noqa: E402
from kdutils.train import fit  # noqa: E402

KIND = costs.STEP_KIND


def _data(dataset: str, rows: int) -> ImageData:
    _, _, shape, classes = costs.DATASET_FACTS[dataset]
    return random_image_data(shape, classes, rows, name=dataset)


def _model(name: str, data: ImageData, device: torch.device) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(name, data.num_classes, data.in_channels, input_size=data.input_size).to(device)


def time_kind(kind: dict, recipe: kd.Recipe, steps: int, warmup: int, device: torch.device) -> dict:
    """Seconds per step of one kind through ``fit`` (the second epoch) and of its floor."""
    batch = kind["batch_size"]
    data = _data(kind["dataset"], max(batch * max(steps, warmup) + 64, 12 * costs.DATASET_FACTS[kind["dataset"]][3]))
    split = make_split(data, val_subset=64)
    student = _model(kind["model"], data, device)
    teacher = _model(kind["teacher"], data, device).eval() if kind["teacher"] else None
    method = create_method(json.loads(kind["method"]))
    rows = None
    if teacher is not None and kind["teacher_share"] < 1:
        g = torch.Generator().manual_seed(1)
        rows = torch.rand(len(split.train_y), generator=g) < kind["teacher_share"]
    # per-sample weights for every kind: only ``significance`` (alone or inside SR) reads them
    weights = torch.rand(len(split.train_y), generator=torch.Generator().manual_seed(2))
    for n in (warmup, steps):  # the warm-up fit, then the timed one (its second epoch)
        r = recipe.replace(epochs=2, max_steps_per_epoch=n, milestones=(), schedule="constant")
        res = fit(
            student,
            split,
            method,
            r,
            teacher=teacher,
            device=device,
            progress=False,
            teacher_rows=rows,
            sample_weight=weights,
        )
    timed = res.history[1]["seconds"] / steps
    # the floor: forward, backward and step of the student alone on one batch already on the device
    net = place(_model(kind["model"], data, device), device)
    opt = OPTIMIZERS.get(recipe.optimizer)(net.parameters(), recipe)
    xb = match_memory_format(net, split.train_x[:batch].to(device).float().div_(255))
    yb = split.train_y[:batch].to(device)
    net.train()
    for i in range(warmup + steps):
        if i == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(net(xb), yb).backward()
        opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    floor = (time.perf_counter() - t0) / max(steps, 1)
    return dict(s_per_step=timed, floor_s_per_step=floor)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--notebooks", default="", help="comma-separated notebooks or prefixes (default: every plan)")
    ap.add_argument("--steps", type=int, default=30, help="timed steps per kind")
    ap.add_argument("--warmup", type=int, default=5, help="warm-up steps per kind")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--csv", default="", help="write the per-kind table here")
    args = ap.parse_args(argv)
    names = sorted(costs.NOTEBOOK_PLANS)
    wanted = [w for w in args.notebooks.split(",") if w]
    notebooks = [n for n in names if not wanted or any(n.startswith(w) for w in wanted)]
    if not notebooks:
        raise SystemExit(f"no notebook matches {args.notebooks!r}; known: {', '.join(names)}")
    device = kd.resolve_device(args.device)
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print(f"device {device} ({gpu}), torch {torch.__version__}, {args.steps} timed steps after {args.warmup}")
    runs = pd.concat([costs.step_kinds(nb, "paper") for nb in notebooks], ignore_index=True)
    kinds = (
        runs.groupby(KIND, sort=False)
        .agg(
            notebooks=("notebook", lambda s: ",".join(sorted(set(n[:2] for n in s)))),
            runs=("steps", "size"),
            steps=("steps", "sum"),
            est_hours=("est_hours", "sum"),
            recipe=("recipe", "first"),
            method=("method", "first"),
        )
        .reset_index()
    )
    kinds = kinds.sort_values("est_hours", ascending=False, ignore_index=True)  # the costliest first
    measured = []
    for k in kinds.to_dict("records"):
        t0 = time.perf_counter()
        try:
            m = time_kind(k, k["recipe"], args.steps, args.warmup, device)
        except Exception as exc:  # a kind that fails is reported, the others still run
            m = dict(s_per_step=float("nan"), floor_s_per_step=float("nan"), error=f"{type(exc).__name__}: {exc}"[:200])
        name = json.loads(k["method"])["name"]
        print(
            f"  {k['dataset']:13s} {k['model']:11s} <- {k['teacher'] or '-':11s} {name:12s} share {k['teacher_share']:.1f}: "
            f"{m['s_per_step'] * 1e3:7.2f} ms/step, floor {m['floor_s_per_step'] * 1e3:6.2f} ms "
            f"({time.perf_counter() - t0:.1f} s){'  ' + m['error'] if 'error' in m else ''}",
            flush=True,
        )
        measured.append(m)
        if args.csv:  # after every kind: a stopped benchmark leaves what it measured
            pd.concat([kinds.iloc[: len(measured)].drop(columns="recipe"), pd.DataFrame(measured)], axis=1).to_csv(
                args.csv, index=False
            )
    kinds = pd.concat([kinds.drop(columns="recipe"), pd.DataFrame(measured)], axis=1)
    kinds["est_s_per_step"] = kinds["est_hours"] * 3600 / kinds["steps"]
    kinds["hours"] = kinds["steps"] * kinds["s_per_step"] / 3600
    if args.csv:
        kinds.to_csv(args.csv, index=False)
    t = costs.measured_hours(kinds, notebooks)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print()
        print(t.round(3).to_string(index=False))
        print(
            f"all: estimate {t['estimate_h'].sum():.1f} h, at the measured step times {t['measured_h'].sum():.1f} h "
            f"(training steps only, {device} {gpu})"
        )
    return kinds


if __name__ == "__main__":
    main()
