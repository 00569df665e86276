"""Benchmark: one Hinton-KD epoch on MNIST, LeNet-5 teacher -> LeNet-5-Half student.

Usage::

    python benchmarks/bench_kd_epoch.py [--epochs 1] [--batch-size 128]
                                        [--device cpu|cuda|auto] [--json out.json]
                                        [--repeats 3] [--variants plain-nw0,plain-nw2,kdutils,floor]

The same models (``kdutils.create_model``, same seeds, same normalisation inside the
model), the same optimizer (Adam, lr 1e-3) and the same loss (tau 4,
0.1 CE + 0.9 tau^2 KL) are timed four ways, each in its own subprocess so that the
peak resident set (``ru_maxrss``) is per variant:

* ``plain-nw0``  a plain PyTorch loop: torchvision ``MNIST`` + ``ToTensor``,
                 ``DataLoader(shuffle=True, num_workers=0)``, teacher forward every
                 step under ``no_grad`` in eval mode, student forward/backward, step;
* ``plain-nw2``  the same with ``num_workers=2, persistent_workers=True``;
* ``plain-nw0-tuned``  ``plain-nw0`` with the allocator setting kdutils applies
                 (``kdutils.runtime.tune_cpu_allocator``), to show how much of kdutils' lead
                 is that setting alone;
* ``kdutils``    ``kdutils.train.fit(..., create_method("kd"), Recipe(epochs, batch,
                 schedule="constant"), teacher=..., teacher_logits=...)`` on
                 ``make_split(load_dataset("mnist"), val_fraction=0.0)``, the teacher's logits
                 on the training set computed once before (as ``Experiment`` does: once per
                 teacher, shared by all its students); that precompute is timed on its own;
* ``floor``      the student's forward + backward + Adam step (same loss, against fixed
                 teacher logits) over the same batches, on float tensors already
                 batched on the device: no data loading, no teacher; with the same
                 allocator setting and memory format (channels-last on the CPU) as
                 kdutils, so it is the floor kdutils can reach.

Each variant runs ``--repeats`` times (round-robin over the variants) and the median
is reported. The "plain loop" reference is the faster of the two plain variants a user
would write (``plain-nw0``, ``plain-nw2``; named in the output). Seconds per epoch exclude
building the dataset (reported separately). Two speed-ups are printed: per KD epoch with the
teacher's logits already computed (every epoch of every student after the first pass of a
teacher), and for a single epoch that also pays for that pass.

This is a measurement, not a test: it never gates on a threshold. It exits 1 only when a variant
failed to run. ``--train-images N --repeats 1`` on a small MNIST copy (``--data-root``) is how the
test suite runs it (tests/test_benchmarks.py), so it cannot rot unnoticed.
"""

from __future__ import annotations

import argparse
import copy
import gzip
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TAU, CE_W, KD_W, LR = 4.0, 0.1, 0.9, 1e-3
# one normalisation for every model in every variant (inside the model: inputs are [0, 1])
MEAN, STD = (0.1307,), (0.3081,)
WARMUP_STEPS = 5
# glibc returns freed blocks >= 128 KiB to the kernel and faults them back in on the next
# step; --malloc-tuned keeps them (a diagnostic, applied to every variant alike)
MALLOC_TUNED = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824"
VARIANTS = ("plain-nw0", "plain-nw2", "plain-nw0-tuned", "kdutils", "floor")


# ---------------------------------------------------------------- shared helpers


def seed_everything(seed: int = 0) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_models(device: torch.device):
    """Teacher (seed 0) and student (seed 1): identical weights in every variant."""
    from kdutils.models import create_model

    torch.manual_seed(0)
    teacher = create_model("lenet5", 10, 1, input_size=28, mean=MEAN, std=STD).to(device)
    torch.manual_seed(1)
    student = create_model("lenet5_half", 10, 1, input_size=28, mean=MEAN, std=STD).to(device)
    return teacher, student


def kd_loss_plain(s: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Hinton KD the way one writes it by hand: 0.1 CE + 0.9 tau^2 KL(p_T || p_S)."""
    ce = F.cross_entropy(s, y)
    kl = F.kl_div(F.log_softmax(s / TAU, dim=1), F.log_softmax(t / TAU, dim=1), reduction="batchmean", log_target=True)
    return CE_W * ce + KD_W * TAU * TAU * kl


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def children_peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0


def data_root(args) -> Path:
    """``--data-root``, else kdutils' data root (``$KD_DATA_ROOT`` or ``data/``)."""
    from kdutils.io import data_root as default

    return Path(args.data_root) if args.data_root else default()


def train_images(args) -> int:
    """How many training images an epoch covers: ``--train-images`` (the first N), else all 60000."""
    return args.train_images or 60000


def mnist_uncompressed_copy(args) -> str:
    """torchvision's MNIST wants uncompressed IDX files in <root>/MNIST/raw/: gunzip into a temp dir."""
    tmp = tempfile.mkdtemp(prefix="bench_mnist_")
    raw = Path(tmp) / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for gz in sorted((data_root(args) / "MNIST" / "raw").glob("*.gz")):
        with gzip.open(gz, "rb") as src, open(raw / gz.name[:-3], "wb") as dst:
            shutil.copyfileobj(src, dst)
    return tmp


# ---------------------------------------------------------------- variants


def run_plain(args, device: torch.device, num_workers: int) -> dict:
    import torchvision
    from torch.utils.data import DataLoader
    from torchvision.transforms import ToTensor

    seed_everything(0)
    tmp = mnist_uncompressed_copy(args)
    try:
        t0 = time.perf_counter()
        ds = torchvision.datasets.MNIST(tmp, train=True, download=False, transform=ToTensor())
        if args.train_images:
            ds = torch.utils.data.Subset(ds, range(args.train_images))
        load_s = time.perf_counter() - t0
        teacher, student = make_models(device)
        teacher.eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        pin = device.type == "cuda"
        loader = DataLoader(
            ds,
            batch_size=args.batch_size,
            shuffle=True,
            num_workers=num_workers,
            persistent_workers=num_workers > 0,
            pin_memory=pin,
            generator=torch.Generator().manual_seed(0),
        )

        def train_steps(model, opt, loader, max_steps=None):
            model.train()
            n = 0
            for x, y in loader:
                x, y = x.to(device, non_blocking=pin), y.to(device, non_blocking=pin)
                with torch.no_grad():
                    t = teacher(x)
                s = model(x)
                loss = kd_loss_plain(s, t, y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                n += 1
                if max_steps is not None and n >= max_steps:
                    break
            return n

        # warm-up on a throw-away copy of the student (also starts the persistent workers)
        warm = copy.deepcopy(student)
        train_steps(warm, torch.optim.Adam(warm.parameters(), lr=LR), loader, WARMUP_STEPS)
        del warm
        sync(device)

        opt = torch.optim.Adam(student.parameters(), lr=LR)
        steps = 0
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(args.epochs):
            steps += train_steps(student, opt, loader)
        sync(device)
        total, cpu = time.perf_counter() - t0, time.process_time() - c0
        del loader  # shut the workers down so their peak RSS is visible as RUSAGE_CHILDREN
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out = {
        "seconds_per_epoch": total / args.epochs,
        "cpu_per_wall": cpu / total,
        "steps": steps,
        "dataset_load_s": load_s,
        "num_workers": num_workers,
        "note": f"torchvision MNIST + ToTensor, DataLoader(num_workers={num_workers}"
        + (", persistent_workers=True" if num_workers else "")
        + ")",
    }
    if num_workers:
        time.sleep(0.5)
        out["worker_peak_rss_mb"] = children_peak_rss_mb()
    return out


def run_kdutils(args, device: torch.device) -> dict:
    from kdutils.data import load_dataset, make_split
    from kdutils.methods import create_method
    from kdutils.metrics import predict_logits
    from kdutils.train import Recipe, fit

    seed_everything(0)
    t0 = time.perf_counter()
    data = load_dataset("mnist", data_root(args))
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    split = make_split(data, val_fraction=0.0, train_subset=args.train_images or None)
    split_s = time.perf_counter() - t0
    assert len(split.train_y) == train_images(args) and len(split.val_y) == 0, split.describe()
    teacher, student = make_models(device)
    recipe = Recipe(epochs=args.epochs, batch_size=args.batch_size, schedule="constant")
    method = create_method("kd")

    # warm-up: a short fit on a small stratified subset, with a throw-away student copy
    small = make_split(data, val_fraction=0.0, train_subset=min(WARMUP_STEPS * args.batch_size, train_images(args)))
    fit(copy.deepcopy(student), small, method, recipe.replace(epochs=1), teacher=teacher, device=device, progress=False)
    sync(device)

    # the teacher-logit precompute: once per teacher (Experiment stores it with the teacher's run)
    t0 = time.perf_counter()
    logits = predict_logits(teacher, split.train_x, device=device)
    sync(device)
    precompute_s = time.perf_counter() - t0

    t0, c0 = time.perf_counter(), time.process_time()
    res = fit(student, split, method, recipe, teacher=teacher, teacher_logits=logits, device=device, progress=False)
    sync(device)
    fit_s, cpu = time.perf_counter() - t0, time.process_time() - c0
    loop_s = sum(h["seconds"] for h in res.history)
    return {
        "seconds_per_epoch": fit_s / args.epochs,
        "seconds_per_epoch_incl_precompute": (fit_s + precompute_s) / args.epochs,
        "cpu_per_wall": cpu / fit_s,
        "steps": args.epochs * -(-len(split.train_y) // args.batch_size),
        "dataset_load_s": load_s,
        "make_split_s": split_s,
        "predict_logits_s": precompute_s,
        "fit_s": fit_s,
        "fit_epoch_loops_s": loop_s,
        "fit_outside_epoch_loops_s": fit_s - loop_s,
        "final_loss": res.history[-1]["loss"],
        "note": "fit() call with the teacher's logits computed once before (timed apart)",
    }


def run_floor(args, device: torch.device) -> dict:
    from kdutils.runtime import match_memory_format, set_memory_format, tune_cpu_allocator

    tune_cpu_allocator()  # the same process setting kdutils' fit() applies
    seed_everything(0)
    teacher, student = make_models(device)
    del teacher
    set_memory_format(student, device)  # the same weight layout fit() picks
    n, bs = train_images(args), args.batch_size
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    t = torch.randn(n, 10, generator=g)  # stands in for precomputed teacher logits
    batches = [
        (
            match_memory_format(student, x[i : i + bs].to(device).contiguous()),
            y[i : i + bs].to(device),
            t[i : i + bs].to(device),
        )
        for i in range(0, n, bs)
    ]

    def train_steps(model, opt, bl):
        model.train()
        for xb, yb, tb in bl:
            loss = kd_loss_plain(model(xb), tb, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    warm = copy.deepcopy(student)
    train_steps(warm, torch.optim.Adam(warm.parameters(), lr=LR), batches[:WARMUP_STEPS])
    del warm
    sync(device)
    opt = torch.optim.Adam(student.parameters(), lr=LR)
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(args.epochs):
        train_steps(student, opt, batches)
    sync(device)
    total, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {
        "seconds_per_epoch": total / args.epochs,
        "cpu_per_wall": cpu / total,
        "steps": args.epochs * len(batches),
        "note": "student fwd+bwd+Adam on pre-batched on-device tensors, no loading, no teacher",
    }


def run_variant(args) -> dict:
    import torchvision  # noqa: F401

    import kdutils.train  # noqa: F401  (same imports in every variant before the baseline RSS)

    device = pick_device(args.device)
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    rss_start = peak_rss_mb()  # torch, torchvision, kdutils imported; nothing loaded yet
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    if args.variant == "plain-nw0":
        out = run_plain(args, device, 0)
    elif args.variant == "plain-nw0-tuned":
        from kdutils.runtime import tune_cpu_allocator

        tune_cpu_allocator()
        out = run_plain(args, device, 0)
        out["note"] += " + kdutils' allocator setting"
    elif args.variant == "plain-nw2":
        out = run_plain(args, device, 2)
    elif args.variant == "kdutils":
        out = run_kdutils(args, device)
    elif args.variant == "floor":
        out = run_floor(args, device)
    else:
        raise SystemExit(f"unknown variant {args.variant!r}")
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    out["variant"] = args.variant
    out["peak_rss_mb"] = peak_rss_mb()
    out["rss_after_imports_mb"] = rss_start
    # whole-process counters (setup and warm-up included): page faults and CPU time
    out["minor_page_faults"] = ru1.ru_minflt - ru0.ru_minflt
    out["major_page_faults"] = ru1.ru_majflt - ru0.ru_majflt
    out["user_s"] = ru1.ru_utime - ru0.ru_utime
    out["sys_s"] = ru1.ru_stime - ru0.ru_stime
    if device.type == "cuda":
        out["cuda_max_allocated_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return out


# ---------------------------------------------------------------- driver


def _median(v: list[float]) -> float:
    v = sorted(v)
    m = len(v) // 2
    return v[m] if len(v) % 2 else 0.5 * (v[m - 1] + v[m])


def summarise(runs: list[dict]) -> dict:
    """Median over the repeats of every numeric field; min / max of seconds per epoch; max of peak RSS."""
    out: dict = {"variant": runs[0]["variant"], "note": runs[0].get("note", ""), "repeats": len(runs)}
    for k, v in runs[0].items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out[k] = _median([r[k] for r in runs])
    sec = [r["seconds_per_epoch"] for r in runs]
    out["seconds_per_epoch_min"], out["seconds_per_epoch_max"] = min(sec), max(sec)
    out["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    out["all_seconds_per_epoch"] = sec
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument(
        "--repeats", type=int, default=3, help="rounds over all variants (round-robin); the median is reported"
    )
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset of " + ",".join(VARIANTS))
    ap.add_argument(
        "--malloc-tuned",
        action="store_true",
        help="run every variant with GLIBC_TUNABLES raising glibc's mmap/trim thresholds (a diagnostic: "
        "takes the per-step page-fault cost out of all variants alike)",
    )
    ap.add_argument("--data-root", default="", help="folder holding MNIST/raw/*.gz (default: $KD_DATA_ROOT or data/)")
    ap.add_argument("--train-images", type=int, default=0, help="the first N training images only (0: all 60000)")
    ap.add_argument("--variant", default=None, help=argparse.SUPPRESS)  # internal: run one variant, print JSON
    args = ap.parse_args(argv)

    if args.variant:
        print("@@RESULT@@" + json.dumps(run_variant(args)), flush=True)
        return 0

    device = pick_device(args.device)
    variants = [s.strip() for s in args.variants.split(",") if s.strip()]
    print(
        f"KD epoch on MNIST ({train_images(args)} train images), lenet5 -> lenet5_half, batch {args.batch_size}, "
        f"epochs {args.epochs}, device {device}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} intra-op threads, {os.cpu_count()} CPUs, {args.repeats} round(s)",
        flush=True,
    )
    child_env = dict(os.environ)
    if args.malloc_tuned:
        child_env["GLIBC_TUNABLES"] = MALLOC_TUNED
        print(f"every variant runs with GLIBC_TUNABLES={MALLOC_TUNED}", flush=True)
    runs: dict[str, list[dict]] = {v: [] for v in variants}
    errors: dict[str, str] = {}
    for rnd in range(args.repeats):
        for v in variants:  # round-robin, so a slow patch of the machine hits every variant alike
            if v in errors:
                continue
            cmd = [
                sys.executable,
                str(Path(__file__).resolve()),
                "--variant",
                v,
                "--epochs",
                str(args.epochs),
                "--batch-size",
                str(args.batch_size),
                "--device",
                args.device,
                "--data-root",
                str(data_root(args)),
                "--train-images",
                str(args.train_images),
            ]
            p = subprocess.run(cmd, capture_output=True, text=True, cwd=str(ROOT), env=child_env)
            line = next((ln for ln in p.stdout.splitlines() if ln.startswith("@@RESULT@@")), None)
            if p.returncode != 0 or line is None:
                errors[v] = (p.stderr or p.stdout)[-3000:]
                print(
                    f"  round {rnd + 1}: {v} FAILED (exit {p.returncode}):\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}",
                    flush=True,
                )
                continue
            r = json.loads(line[len("@@RESULT@@") :])
            runs[v].append(r)
            print(
                f"  round {rnd + 1}: {v:<10} {r['seconds_per_epoch']:7.2f} s/epoch  (cpu/wall {r['cpu_per_wall']:.2f})",
                flush=True,
            )

    ok = {v: summarise(rs) for v, rs in runs.items() if rs and v not in errors}
    plains = [k for k in ("plain-nw0", "plain-nw2") if k in ok]  # what a user writes (no tuning)
    best_plain = min(plains, key=lambda k: ok[k]["seconds_per_epoch"]) if plains else None
    ref = ok[best_plain]["seconds_per_epoch"] if best_plain else None

    print()
    hdr = f"{'variant':<11} {'s/epoch':>8} {'(min-max)':>13} {'plain/variant':>14} {'peak RSS MB':>12} {'faults/step':>12}"
    if device.type == "cuda":
        hdr += f" {'CUDA max MB':>12}"
    print(hdr)
    print("-" * len(hdr))
    for k in variants:
        if k not in ok:
            print(f"{k:<11} {'FAILED':>8}")
            continue
        r = ok[k]
        ratio = f"{ref / r['seconds_per_epoch']:.2f}x" if ref else "-"
        spread = f"{r['seconds_per_epoch_min']:.2f}-{r['seconds_per_epoch_max']:.2f}"
        fps = r["minor_page_faults"] / max(r["steps"], 1)
        row = f"{k:<11} {r['seconds_per_epoch']:>8.2f} {spread:>13} {ratio:>14} {r['peak_rss_mb']:>12.0f} {fps:>12.0f}"
        if device.type == "cuda":
            row += f" {r.get('cuda_max_allocated_mb', float('nan')):>12.0f}"
        if "worker_peak_rss_mb" in r:
            row += f"  (+ 2 workers, each up to {r['worker_peak_rss_mb']:.0f} MB)"
        print(row)
    print()
    base = [r["rss_after_imports_mb"] for r in ok.values()]
    if base:
        print(
            f"(s/epoch: median of {args.repeats}; peak RSS includes ~{_median(base):.0f} MB for importing "
            f"torch/torchvision/kdutils; faults/step: minor page faults of the whole subprocess / timed steps)"
        )
    if best_plain:
        print(f"plain loop reference = {best_plain}: {ok[best_plain]['note']}")
        for k in plains:
            print(f"  {k}: building the torchvision dataset {ok[k]['dataset_load_s']:.2f} s (not in s/epoch)")
    if "kdutils" in ok:
        r = ok["kdutils"]
        print(
            f"kdutils: load_dataset {r['dataset_load_s']:.2f} s, make_split {r['make_split_s']:.2f} s (not in s/epoch); "
            f"predict_logits(teacher, train_x) alone {r['predict_logits_s']:.2f} s;\n"
            f"  fit() {r['fit_s']:.2f} s = epoch loop(s) {r['fit_epoch_loops_s']:.2f} s "
            f"+ outside the loop (setup, validation) {r['fit_outside_epoch_loops_s']:.2f} s"
        )
    if "kdutils" in ok and ref:
        r = ok["kdutils"]
        print(
            f"kdutils speed-up over the plain loop: {ref / r['seconds_per_epoch']:.2f}x per KD epoch "
            f"(teacher logits computed once per teacher)"
        )
        print(
            f"                                      {ref / r['seconds_per_epoch_incl_precompute']:.2f}x for one epoch "
            f"that also computes the teacher's logits ({r['predict_logits_s']:.2f} s)"
        )
    if "kdutils" in ok and "floor" in ok:
        fl = ok["floor"]["seconds_per_epoch"]
        print(
            f"kdutils overhead above the compute floor: {100.0 * (ok['kdutils']['seconds_per_epoch'] - fl) / fl:.0f} %"
        )
    if args.json:
        meta = {
            "torch": torch.__version__,
            "device": str(device),
            "cpus": os.cpu_count(),
            "threads": torch.get_num_threads(),
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "repeats": args.repeats,
            "plain_reference": best_plain,
            "glibc_tunables": MALLOC_TUNED if args.malloc_tuned else os.environ.get("GLIBC_TUNABLES"),
        }
        Path(args.json).write_text(json.dumps({"meta": meta, "summary": ok, "runs": runs, "errors": errors}, indent=2))
        print(f"wrote {args.json}")
    if errors:  # a variant that did not run is no measurement: say so in the exit status too
        print(f"FAILED variants: {', '.join(errors)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
