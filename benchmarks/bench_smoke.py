"""How long each notebook takes at ``smoke``, the way a new user meets it: a fresh clone, an empty run
store, one notebook at a time (nothing else running), executed end to end by papermill as a Run All
would, kernel start included.

    .venv/bin/python benchmarks/bench_smoke.py                    # every notebook, about 8 min on 2 cores
    .venv/bin/python benchmarks/bench_smoke.py --only 04 --only 06
    .venv/bin/python benchmarks/bench_smoke.py --plan                 # the clone and the list only

Writes ``benchmarks/results/smoke_times.csv`` (one row per notebook: seconds, runs trained, commit,
date, CPU, threads) and ``benchmarks/results/smoke_times.md`` (the same as a table; the README links
it). The clone is of the committed ``HEAD``: uncommitted changes are not measured.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results"
#: above this a notebook's smoke is too slow for what it is for (checking code paths; issue 33)
LIMIT_S = 120


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def measure(clone: Path, notebook: Path, work: Path) -> dict:
    """Execute ``notebook`` of ``clone`` at smoke on an empty store; its wall time and runs trained."""
    import papermill as pm

    store = work / f"runs_{notebook.stem}"
    env = {"KD_RUNS_ROOT": str(store), "PYTHONPATH": str(clone), "MPLBACKEND": "Agg"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        t0 = time.perf_counter()
        pm.execute_notebook(
            str(notebook),
            str(work / notebook.name),
            cwd=str(notebook.parent),
            kernel_name="python3",
            progress_bar=False,
            parameters={
                "profile": "smoke",
                "output_dir": str(work / notebook.stem),
                "figures_dir": str(work / "figures" / notebook.stem),
                "progress": False,
            },
        )
        seconds = time.perf_counter() - t0
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    runs = sum(1 for p in store.iterdir() if (p / "record.json").exists()) if store.exists() else 0
    return {"notebook": notebook.stem, "seconds": round(seconds, 1), "runs_trained": runs}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", action="append", default=[], help="notebook name or prefix (repeatable)")
    ap.add_argument("--out", type=Path, default=OUT, help="folder for smoke_times.csv and .md")
    ap.add_argument("--plan", action="store_true", help="clone and list the notebooks it would execute, no more")
    args = ap.parse_args(argv)
    import pandas as pd
    import torch
    from tqdm.auto import tqdm

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    with tempfile.TemporaryDirectory() as tmp:
        clone = Path(tmp) / "clone"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        notebooks = sorted((clone / "notebooks").glob("[0-9][0-9]_*.ipynb"))
        if args.only:
            notebooks = [nb for nb in notebooks if any(nb.stem.startswith(o) for o in args.only)]
        if not notebooks:
            print(f"no notebook matches {args.only}", file=sys.stderr)
            return 2
        if args.plan:
            print("would measure at smoke:", ", ".join(nb.stem for nb in notebooks))
            return 0
        rows = [measure(clone, nb, Path(tmp)) for nb in tqdm(notebooks, desc="smoke")]
    facts = {
        "commit": commit.strip(),
        "date": date.today().isoformat(),
        "cpu": _cpu(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    df = pd.DataFrame([{**r, **facts} for r in rows])
    args.out.mkdir(parents=True, exist_ok=True)
    old = args.out / "smoke_times.csv"
    if old.exists():  # --only: the other notebooks keep their last measurement (with its own commit and date)
        kept = pd.read_csv(old)
        df = pd.concat([kept[~kept.notebook.isin(df.notebook)], df]).sort_values("notebook", kind="stable")
    df.to_csv(old, index=False)
    rows = df.to_dict("records")
    lines = [
        "# Notebooks at `smoke`: measured wall time",
        "",
        f"`python benchmarks/bench_smoke.py` (last run at commit {facts['commit']} on {facts['date']}): a fresh clone, an empty run",
        f"store, one notebook at a time, nothing else running; {facts['cpu']}, {facts['cores']} cores, torch",
        f"{facts['torch']} with {facts['torch_threads']} intra-op threads. Kernel start included. Smoke is for checking",
        f"code paths: over {LIMIT_S} s a notebook's smoke sizes are cut (issue 33).",
        "",
        "| notebook | seconds | runs trained | within 2 min | commit |",
        "| --- | --- | --- | --- | --- |",
        *(
            f"| `{r['notebook']}` | {r['seconds']:.0f} | {r['runs_trained']} | {'yes' if r['seconds'] <= LIMIT_S else 'no'} "
            f"| {r['commit']} |"
            for r in rows
        ),
        "",
    ]
    (args.out / "smoke_times.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
