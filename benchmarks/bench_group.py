"""Benchmark: a group of independent KD students, serial against kdutils' worker pool.

Usage::

    python benchmarks/bench_group.py [--students 6] [--epochs 3] [--dataset mnist]
                                     [--variants serial,pool,floor] [--json out.json]

A notebook trains many independent students after one teacher (methods x seeds). The group
here is ``--students`` Hinton-KD students (LeNet-5 teacher -> LeNet-5-Half, seeds 0..n-1,
the ``quick`` recipe: Adam, batch 128, no augmentation) of ``--epochs`` epochs each, on the
full MNIST training split (no validation hold-out), timed three ways, each on a fresh run store:

* ``serial``  what a notebook did before kdutils.parallel: one run after the other in this
              process with every core as intra-op threads (torch's default here);
* ``pool``    ``kdutils.train_group`` with the ``processes`` executor: one worker per core,
              one intra-op thread each (the default on a CPU); includes starting the workers
              and each worker's dataset load;
* ``floor``   the students' own compute at full occupancy: one process per core, each doing
              its share of the students' forward + backward + Adam steps on float batches
              already in memory against fixed teacher logits (no data handling, no teacher,
              no evaluation, no store); the same allocator setting and memory format as kdutils.

The teacher (trained once, 1 epoch: its quality does not matter here) and its training-set
logits are shared by all variants and not timed. Printed: wall seconds per variant, students
per minute, the pool's speed-up over serial, and each variant's ratio to the floor.

This is a measurement, not a test: it never gates on a threshold and exits 0. The test suite runs
it at a tiny size (``--students 2 --epochs 1 --dataset digits``: tests/test_benchmarks.py).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import kdutils as kd  # noqa: E402
from kdutils.methods.kd import kd_loss  # noqa: E402
from kdutils.runtime import match_memory_format, place, tune_cpu_allocator  # noqa: E402


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        return os.cpu_count() or 1


def _settings(args, executor: str) -> kd.Settings:
    return kd.configure(
        "quick",
        args.dataset,
        epochs=args.epochs,
        teacher_epochs=1,
        val_fraction=0.0,
        progress=False,
        device="cpu",
        executor=executor,
        seeds=list(range(args.students)),
    )


def _jobs(s: kd.Settings, teacher: kd.Run) -> list[kd.Job]:
    return [kd.Job.student(s, "kd", seed, teacher=teacher, label=f"kd s{seed}") for seed in s.seeds]


def _floor_worker(args_tuple) -> float:
    """One process's share of the floor: ``n`` students' steps on in-memory batches."""
    data_x, data_y, logits, n, epochs, batch, seed0, shape = args_tuple
    torch.set_num_threads(1)
    tune_cpu_allocator()
    x = data_x.float().div_(255.0)
    t0 = time.perf_counter()
    for i in range(n):
        torch.manual_seed(seed0 + i)
        net = kd.create_model("lenet5_half", shape[0], shape[1], input_size=shape[2])
        place(net, torch.device("cpu"), None)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        g = torch.Generator().manual_seed(seed0 + i)
        for _ in range(epochs):
            perm = torch.randperm(len(data_y), generator=g)
            for j in range(0, len(perm), batch):
                idx = perm[j : j + batch]
                xb = match_memory_format(net, x[idx])
                s = net(xb)
                t, y = logits[idx], data_y[idx]
                loss = kd_loss(s, t, y, tau=4.0, ce_weight=0.1, kd_weight=0.9).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    return time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--students", type=int, default=6)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--variants", default="serial,pool,floor")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    variants = args.variants.split(",")
    cores = _cores()
    out: dict = {
        "students": args.students,
        "epochs": args.epochs,
        "dataset": args.dataset,
        "cores": cores,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "variants": {},
    }
    with tempfile.TemporaryDirectory(prefix="bench-group-") as tmp:
        base = kd.RunStore(Path(tmp) / "teacher")
        exp = kd.Experiment(_settings(args, "serial"), base)
        teacher = exp.teacher()
        logits = exp.logits(teacher, "train", persist=True)
        n_train = len(exp.split.train_y)
        print(
            f"{args.students} KD students x {args.epochs} epochs on {args.dataset} ({n_train} training images), "
            f"{cores} cores, torch {torch.__version__}",
            flush=True,
        )
        for v in variants:
            if v == "floor":
                share = [args.students // cores + (1 if i < args.students % cores else 0) for i in range(cores)]
                sp = exp.split
                shape = (sp.num_classes, sp.in_channels, sp.input_size)
                work = [
                    (sp.train_x, sp.train_y, logits, n, args.epochs, 128, sum(share[:i]), shape)
                    for i, n in enumerate(share)
                    if n
                ]
                with mp.get_context("spawn").Pool(len(work)) as pool:
                    secs = max(pool.map(_floor_worker, work))  # compute only: process start not counted
            else:
                store = kd.RunStore(Path(tmp) / v)
                store.root.mkdir(parents=True)
                for p in base.root.iterdir():  # the teacher and its logits, not timed
                    os.symlink(p, store.root / p.name)
                executor = "serial" if v == "serial" else "processes"
                e = kd.Experiment(_settings(args, executor), store)
                t = e.load_run(teacher.key)
                if v == "serial":
                    torch.set_num_threads(cores)
                t0 = time.perf_counter()
                runs = kd.train_group(e, _jobs(e.settings, t))
                secs = time.perf_counter() - t0
                # every student is trained by this call (in this process or by the pool's workers):
                # none may come from the store, or the variant timed nothing
                assert not any(r.reused for r in runs), [r.key for r in runs if r.reused]
            out["variants"][v] = {"seconds": secs, "students_per_minute": 60 * args.students / secs}
            print(f"  {v:7s} {secs:7.1f} s  ({60 * args.students / secs:.2f} students/min)", flush=True)
    vs = out["variants"]
    if "serial" in vs and "pool" in vs:
        out["pool_speedup"] = vs["serial"]["seconds"] / vs["pool"]["seconds"]
        print(f"pool / serial speed-up: {out['pool_speedup']:.2f}x")
    if "floor" in vs:
        for v in vs:
            vs[v]["ratio_to_floor"] = vs[v]["seconds"] / vs["floor"]["seconds"]
            print(f"{v}: {vs[v]['ratio_to_floor']:.2f}x the floor")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
