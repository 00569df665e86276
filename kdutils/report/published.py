"""The committed results, read back: ``python -m kdutils report``.

A notebook executed at ``quick`` or ``full`` into the gallery publishes its numbers under
``results/<notebook>/<profile>/`` (:meth:`kdutils.results.Results.publish`), one set of files per
dataset: ``<dataset>.csv`` (every number per run and seed, with the run's key),
``<dataset>.predictions.csv`` (each run's predicted class per test image), ``<dataset>.claims.csv``
(the claims table's rows) and ``<dataset>.provenance.json`` (commit, versions, machine, wall
time). This module turns those files, and nothing else (no model, no training), into the Markdown
the README and ``docs/results.md`` show:

* :func:`accuracy_table`: test accuracy per method, mean ± std over seeds and the seed count,
  recomputed from the per-seed rows;
* :func:`claims_table`: the verdicts with their intervals (seeds and test images), the seed-only
  interval beside them, the margin's sensitivity and convergence;
* :func:`recheck`: every accuracy comparison of two methods, recomputed from the per-image
  predictions with :func:`kdutils.report.evidence.two_noise_interval` (what a reader can redo by hand),
  and every compared robust accuracy from ``<dataset>.images.csv`` (which attacked images each run keeps);
* :func:`render`: all of it per notebook, profile and dataset.

**README blocks.** A README section between ``<!-- report: NOTEBOOK/PROFILE/DATASET KIND -->``
and ``<!-- /report -->`` (KIND ``accuracy``, ``claims`` or ``metrics:NAME,NAME,...``) is :func:`block`'s output for those
files; ``python -m kdutils report --check README.md`` fails when one differs (a test runs it), and
``--update README.md`` rewrites them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .results import format_mean_std, read_results

#: the claims table's columns shown, in order (those a table has)
CLAIM_SHOWN = ["claim", "measured", "seed-only interval", "margin sensitivity", "converged", "verdict"]
KINDS = ("accuracy", "claims", "findings", "metrics:NAME,NAME,...")
NO_CLAIMS = "(no claims table published for these results)\n"
#: metrics shown in % (the others as they are, three decimals)
PERCENT = ("accuracy", "val_accuracy", "certified@", "crown_certified@", "robust_", "pgd_robust@")
#: the row of ``<dataset>.predictions.csv`` that holds the test labels (seed -1)
LABELS = "(test labels)"
_BLOCK = re.compile(r"<!-- report: (\S+)/(\S+)/(\S+) (\S+) -->\n(.*?)<!-- /report -->", re.S)


@dataclass(frozen=True)
class Published:
    """One notebook x profile x dataset of the committed results."""

    notebook: str
    profile: str
    dataset: str
    folder: Path

    def file(self, ext: str) -> Path | None:
        """``<dataset>.<ext>`` or its gzipped form, whichever is there (None if neither)."""
        for p in (self.folder / f"{self.dataset}.{ext}", self.folder / f"{self.dataset}.{ext}.gz"):
            if p.exists():
                return p
        return None

    @property
    def rows(self) -> pd.DataFrame:
        return read_results(self.file("csv"))

    @property
    def provenance(self) -> dict:
        p = self.file("provenance.json")
        return json.loads(p.read_text()) if p else {}

    @property
    def claims(self) -> pd.DataFrame | None:
        """The published claims table (None when the notebook published none)."""
        f = self.file("claims.csv")
        return pd.read_csv(f, keep_default_na=False) if f is not None else None

    @property
    def name(self) -> str:
        return f"{self.notebook}/{self.profile}/{self.dataset}"


def published(root: str | Path) -> Iterator[Published]:
    """Every committed results set under ``root`` (``results/``), sorted by notebook, profile, dataset."""
    root = Path(root)
    for csv in sorted(root.glob("*/*/*.csv")) + sorted(root.glob("*/*/*.csv.gz")):
        stem = csv.name.removesuffix(".gz").removesuffix(".csv")
        if "." in stem:  # <dataset>.predictions.csv, <dataset>.claims.csv
            continue
        yield Published(csv.parent.parent.name, csv.parent.name, stem, csv.parent)


def find(root: str | Path, notebook: str, profile: str, dataset: str) -> Published:
    for p in published(root):
        if (p.notebook, p.profile, p.dataset) == (notebook, profile, dataset):
            return p
    have = ", ".join(p.name for p in published(root)) or "none"
    raise FileNotFoundError(f"no committed results for {notebook}/{profile}/{dataset} under {root}; there are: {have}")


def _md(df: pd.DataFrame) -> str:
    """A plain Markdown table (no dependency on tabulate): ``|`` in cells escaped."""
    cols = list(df.columns)
    esc = lambda v: str(v).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["| " + " | ".join(esc(c) for c in cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(esc(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def accuracy_table(p: Published) -> str:
    """Test accuracy per method (in the order the notebook recorded them): seeds, mean ± std in %."""
    df = p.rows
    acc = df[(df.metric == "accuracy") & ~df.method.str.startswith("claim:")]
    rows = []
    for method, g in acc.groupby("method", sort=False):
        v = g.sort_values("seed")["value"].to_numpy(dtype=float)
        rows.append({"method": method, "seeds": len(v), "test accuracy (%)": _cell(v, percent=True)})
    return _md(pd.DataFrame(rows, columns=["method", "seeds", "test accuracy (%)"]))


def _cell(v: np.ndarray, percent: bool) -> str:
    """Mean ± std over seeds (:func:`kdutils.results.format_mean_std`), in % or as it is."""
    if not len(v):
        return ""
    sd = float(v.std(ddof=1)) if len(v) > 1 else float("nan")
    return format_mean_std(float(v.mean()), sd, scale=100.0 if percent else 1.0, digits=2 if percent else 3, n=len(v))


def metrics_table(p: Published, metrics: list[str]) -> str:
    """Method x ``metrics``: mean ± std over seeds (``(n = 1)`` for a single run; blank where a method
    has no such metric); metrics of :data:`PERCENT` in %, the others as they are."""
    df = p.rows
    df = df[~df.method.str.startswith("claim:")]
    known = set(df.metric)
    unknown = [m for m in metrics if m not in known]
    if unknown:
        raise ValueError(f"{p.name} has no metric {', '.join(unknown)}; valid choices: {', '.join(sorted(known))}")
    rows = []
    for method, g in df[df.metric.isin(metrics)].groupby("method", sort=False):
        row = {"method": method}
        for m in metrics:
            v = g[g.metric == m].sort_values("seed")["value"].to_numpy(dtype=float)
            pct = m.startswith(PERCENT)
            row[f"{m} (%)" if pct else m] = _cell(v, pct)
        rows.append(row)
    return _md(pd.DataFrame(rows))


def claims_table(p: Published) -> str:
    """The claims table as the notebook decided it (its intervals cover seeds and test images where
    the per-image predictions exist); blank where no claims were published."""
    df = p.claims
    if df is None:
        return NO_CLAIMS
    return _md(df[[c for c in CLAIM_SHOWN if c in df.columns]])


def predictions(p: Published) -> dict[tuple[str, int], np.ndarray]:
    """``{(method, seed): predicted class per test image}`` from ``<dataset>.predictions.csv``."""
    from .evidence import decode_predictions

    f = p.file("predictions.csv")
    if f is None:
        return {}
    df = pd.read_csv(f, keep_default_na=False)
    return {(m, int(s)): decode_predictions(t) for m, s, t in zip(df.method, df.seed, df.test_predictions)}


def images(p: Published) -> dict[tuple[str, int, str], np.ndarray]:
    """``{(method, seed, metric): value per image}`` from ``<dataset>.images.csv`` (the per-image records
    behind compared metrics other than accuracy: 0/1 for robust accuracy, mu_S and faithful shares, the
    gap per point for 04's mean gap); empty when there is none."""
    from ..core.io import decode_record

    f = p.file("images.csv")
    if f is None:
        return {}
    df = pd.read_csv(f, keep_default_na=False)
    return {(m, int(s), k): decode_record(t) for m, s, k, t in zip(df.method, df.seed, df.metric, df.correct)}


def recheck(p: Published, a: str, b: str, metric: str = "accuracy") -> dict:
    """Recompute ``metric(a) - metric(b)``'s intervals from the committed files alone: the seed-only
    paired t (the per-seed rows) and the two-noise interval, after checking that the per-image records
    give back each recorded value: for ``accuracy`` the per-image predictions against the published
    test labels (:data:`LABELS`), for another metric (a robust accuracy, ``robust_fgsm@0.1``) its
    0/1 records in ``<dataset>.images.csv``. ``{"seeds", "seed_only", "two_noise"}`` (no
    ``two_noise`` without the records)."""
    from .evidence import two_noise_interval
    from .results import paired_interval

    df = p.rows
    rows = df[df.metric == metric]
    va = rows[rows.method == a].set_index("seed")["value"]
    vb = rows[rows.method == b].set_index("seed")["value"]
    seeds = sorted(set(va.index) & set(vb.index))
    out = {"seeds": seeds, "seed_only": paired_interval(va[seeds], vb[seeds])}
    if metric == "accuracy":
        preds = predictions(p)
        if (LABELS, -1) not in preds or not all((m, s) in preds for m in (a, b) for s in seeds):
            return out
        y = preds[LABELS, -1]
        ca = np.stack([preds[a, s] == y for s in seeds])
        cb = np.stack([preds[b, s] == y for s in seeds])
    else:
        recs = images(p)
        if not all((m, s, metric) in recs for m in (a, b) for s in seeds):
            return out
        ca = np.stack([recs[a, s, metric] for s in seeds])
        cb = np.stack([recs[b, s, metric] for s in seeds])
    # the file's 6 significant digits
    if not (np.allclose(ca.mean(1), va[seeds], atol=1e-5) and np.allclose(cb.mean(1), vb[seeds], atol=1e-5)):
        raise ValueError(f"{p.name}: the per-image records do not reproduce the recorded {metric} of {a} and {b}")
    out["two_noise"] = two_noise_interval(ca, cb)
    return out


def findings_text(p: Published) -> str:
    """The claims that hold or do not hold, one sentence each with its interval, generated from the
    committed claims table (:func:`kdutils.claims.findings`, ``decided_only``), never typed."""
    from .claims import findings

    df = p.claims
    return NO_CLAIMS if df is None else str(findings(df, decided_only=True)) + "\n"


def block(p: Published, kind: str) -> str:
    """One README block's body: the ``accuracy``, ``claims``, ``findings`` or ``metrics:a,b,...``
    block, with a line saying where from."""
    if kind not in KINDS[:3] and not kind.startswith("metrics:"):
        raise ValueError(f"unknown report block kind {kind!r}; valid choices: {', '.join(KINDS)}")
    prov = p.provenance
    seeds = prov.get("seeds", {})
    seeds = seeds.get(p.dataset, seeds) if isinstance(seeds, dict) else seeds
    where = (
        f"*From `results/{p.name}.csv` (seeds {seeds}, commit {prov.get('git_commit', '?')}, "
        f"{prov.get('device', '?')}): regenerate with `python -m kdutils report --update <this file>`.*\n\n"
    )
    if kind.startswith("metrics:"):
        return where + metrics_table(p, kind.removeprefix("metrics:").split(","))
    return where + {"accuracy": accuracy_table, "claims": claims_table, "findings": findings_text}[kind](p)


_OVERVIEW = re.compile(r"<!-- report: overview -->\n(.*?)<!-- /report -->", re.S)


def _shown(dataset: str, claims: pd.DataFrame | None) -> str:
    """The dataset as a reader knows it (:func:`kdutils.data.display_name`), with the note its claims
    table carries (``ctx.where``: e.g. the JPEG copy of CIFAR-10)."""
    from ..inputs.data import display_name

    where = claims["dataset"] if claims is not None else []
    note = next((w[len(dataset) :].strip() for w in where if w.startswith(dataset + " (")), "")
    return f"{display_name(dataset)} {note}".strip()


def _verdict_counts(claims: pd.DataFrame | None) -> str:
    if claims is None:
        return "no claims table"
    v = claims["verdict"].tolist()
    first = v[0] if v else "none"
    # the first claim's interval beside its verdict: of a rule with several parts, the first part with
    # the claim's own verdict (the one that decided it), else the first bracketed pair of its measured text
    text = str(claims["measured"].iloc[0]) if v else ""
    # (when every part holds, the weakest: the lowest lower end, the part closest to failing)
    parts = re.finditer(r"\[([-+]?[0-9.]+), [-+]?[0-9.]+\][^;]*?\((holds|does not hold|inconclusive)\)", text)
    same = [p for p in parts if p.group(2) == first]
    if first == "holds":
        same.sort(key=lambda p: float(p.group(1)))
    m = same[0] if same else re.search(r"\[[-+]?[0-9.]+, [-+]?[0-9.]+\]", text)
    iv = " " + re.search(r"\[[^]]*\]", m.group(0)).group(0) if m else ""
    # a non-inferiority interval means nothing without its margin: "holds [-0.06, +0.04]" is read as a tie
    margin = re.search(r"minus the margin, ([0-9.]+) points", str(claims["rule"].iloc[0])) if v and m else None
    iv += f" against a margin of -{margin.group(1)}" if margin else ""
    n = {w: sum(x == w for x in v) for w in ("holds", "does not hold")}
    rest = len(v) - sum(n.values())
    return (
        f"first claim *{first}*{iv}; of {len(v)}: {n['holds']} holds, {n['does not hold']} does not hold, {rest} other"
    )


def overview(root: str | Path, notebooks: Mapping[str, tuple[str, str]], smoke: str | Path | None = None) -> str:
    """The README's one table, a row per notebook: what it is about (``notebooks``: name -> (paper
    in a few words, what it teaches)), its measured smoke time (``smoke``: benchmarks'
    ``smoke_times.csv``), and per committed results set (profile, dataset) the training time of
    its runs and its verdicts (the first claim's, then the counts), linked to the full report."""
    times = {}
    if smoke is not None and Path(smoke).exists():
        st = pd.read_csv(smoke)
        times = dict(zip(st.notebook, st.seconds))
    sets: dict[str, list[Published]] = {}
    for p in published(root):
        sets.setdefault(p.notebook, []).append(p)
    rows = []
    for nb, (short, teaches) in sorted(notebooks.items()):
        cells = []
        for p in sorted(sets.get(nb, []), key=lambda q: (q.profile != "full", q.dataset)):
            mins = p.provenance.get("runs_training_s")
            took = f", {float(mins) / 60:.0f} min of training" if mins is not None else ""
            anchor = f"{p.notebook}--{p.profile}--{p.dataset}"  # the heading of render()
            claims = p.claims
            cells.append(
                f"[{_shown(p.dataset, claims)}, {p.profile}](docs/results.md#{anchor}){took}: {_verdict_counts(claims)}"
            )
        smoke_s = times.get(nb)
        rows.append(
            {
                "notebook": f"[`{nb}`](notebooks/{nb}.ipynb)",
                "paper": short,
                "what it teaches": teaches,
                "smoke": f"{float(smoke_s) / 60:.1f} min" if smoke_s is not None else "",
                "committed results (2-core CPU)": "<br>".join(cells) or "none yet",
            }
        )
    note = (
        "*Generated by `python -m kdutils report --update README.md` from `results/` and "
        "`benchmarks/results/smoke_times.csv`; minutes of training are the runs' own (a fresh store would "
        "take about that with one worker); the first claim's verdict is shown with its interval (where its rule has several parts, the part that decided it: the first with that verdict, or the weakest when all hold).*\n\n"
    )
    return note + _md(pd.DataFrame(rows))


def render(root: str | Path) -> str:
    """Every committed results set as Markdown: a heading, the provenance, the accuracy table and
    the claims table."""
    parts = ["# Results\n\nGenerated by `python -m kdutils report` from `results/` alone (no training).\n"]
    for p in published(root):
        prov = p.provenance
        parts.append(f"\n## {p.notebook} · {p.profile} · {p.dataset}\n")
        keys = ("seeds", "git_commit", "date", "device", "cpu", "gpu", "torch", "notebook_wall_s", "runs_training_s")
        facts = [f"{k}: {prov[k]}" for k in keys if prov.get(k) not in (None, "", {})]
        if facts:
            parts.append("\n" + "; ".join(facts) + "\n")
        parts.append("\n### Test accuracy\n\n" + accuracy_table(p))
        parts.append("\n### Claims\n\n" + claims_table(p))
    return "".join(parts)


_OPEN = re.compile(r"<!-- report: (?:\S+/\S+/\S+ \S+|overview) -->")
_CLOSE = "<!-- /report -->"


def check_markers(text: str) -> None:
    """Every opening marker has its ``<!-- /report -->`` before the next opening one (else a block
    would swallow the text up to a later block's end): a ValueError naming the line otherwise."""
    opens = [m.start() for m in _OPEN.finditer(text)]
    for i, start in enumerate(opens):
        close = text.find(_CLOSE, start)
        nxt = opens[i + 1] if i + 1 < len(opens) else len(text)
        if close < 0 or close > nxt:
            line = text.count("\n", 0, start) + 1
            raise ValueError(
                f"the report block opened on line {line} has no {_CLOSE} before the next block: add it "
                f"(an empty block is filled by --update)"
            )


def _overview_body(root, notebooks, smoke) -> str:
    if notebooks is None:
        raise ValueError("an overview block needs the notebooks (python -m kdutils report passes them)")
    return overview(root, notebooks, smoke)


def update_blocks(
    text: str, root: str | Path, notebooks: Mapping[str, tuple[str, str]] | None = None, smoke=None
) -> str:
    """``text`` (a README) with every report block rewritten from ``root`` (its markers checked first:
    :func:`check_markers`); an ``overview`` block from ``notebooks`` and ``smoke`` (:func:`overview`)."""
    check_markers(text)
    if _OVERVIEW.search(text):
        body = _overview_body(root, notebooks, smoke)
        text = _OVERVIEW.sub(lambda m: f"<!-- report: overview -->\n{body}<!-- /report -->", text)

    def fill(m: re.Match) -> str:
        nb, profile, ds, kind = m.groups()[:4]
        return (
            f"<!-- report: {nb}/{profile}/{ds} {kind} -->\n{block(find(root, nb, profile, ds), kind)}<!-- /report -->"
        )

    return _BLOCK.sub(fill, text)


def stale_blocks(
    text: str, root: str | Path, notebooks: Mapping[str, tuple[str, str]] | None = None, smoke=None
) -> list[str]:
    """The report blocks of ``text`` that differ from what ``root`` gives now (``NOTEBOOK/PROFILE/DATASET KIND``,
    or ``overview``)."""
    check_markers(text)
    stale = []
    m = _OVERVIEW.search(text)
    if m and m.group(1) != _overview_body(root, notebooks, smoke):
        stale.append("overview")
    for m in _BLOCK.finditer(text):
        nb, profile, ds, kind, body = m.groups()
        if body != block(find(root, nb, profile, ds), kind):
            stale.append(f"{nb}/{profile}/{ds} {kind}")
    return stale
