"""The committed results: published per dataset, read back by ``python -m kdutils report``."""

import gzip
import json

import numpy as np
import pandas as pd
import pytest

from kdutils.__main__ import main
from kdutils.core.io import project_root
from kdutils.report import published as P
from kdutils.report import results as R
from kdutils.report.evidence import encode_predictions, two_noise_interval
from kdutils.report.results import Results, claim_better, claim_row, claims_frame


def _results(rng, n=500):
    """Two methods x three seeds with per-image predictions, a teacher, and one claims row."""
    y = rng.integers(0, 10, n)
    res = Results("09_demo", "quick")
    correct = {}
    for method, p in (("KD", 0.90), ("student alone", 0.85)):
        for seed in range(3):
            ok = rng.random(n) < p
            pred = np.where(ok, y, (y + 1) % 10)
            correct[method, seed] = ok
            res.add(
                "mnist",
                method,
                seed,
                {"accuracy": ok.mean(), "nll": 0.3},
                run=f"{method[:2]}{seed}",
                predictions=encode_predictions(pred),
            )
    res.add("mnist", "teacher", 0, {"accuracy": 0.95}, run="t0")
    res.predictions["mnist", P.LABELS, -1] = ("", encode_predictions(y))
    v = claim_better(
        [correct["KD", s].mean() for s in range(3)], [correct["student alone", s].mean() for s in range(3)]
    )
    claims = claims_frame(
        [claim_row("KD beats the student alone", "[paper]", "none", v, dataset="mnist", profile="quick")]
    )
    return res, claims.assign(dataset_key="mnist"), correct


def test_publish_writes_rows_predictions_claims_and_provenance(tmp_path):
    res, claims, correct = _results(np.random.default_rng(0))
    root, tmp_path = tmp_path, tmp_path / "09_demo" / "quick"
    files = res.publish(tmp_path, {"git_commit": "abc", "seeds": {"mnist": [0, 1, 2]}, "device": "cpu"}, claims)
    assert sorted(f.name for f in files) == [
        "mnist.claims.csv",
        "mnist.csv",
        "mnist.predictions.csv",
        "mnist.provenance.json",
    ]
    rows = R.read_results(tmp_path / "mnist.csv")
    assert set(rows.run) == {"KD0", "KD1", "KD2", "st0", "st1", "st2", "t0"}
    assert json.loads((tmp_path / "mnist.provenance.json").read_text())["dataset"] == "mnist"

    (p,) = P.published(root)
    assert (p.notebook, p.profile, p.dataset) == ("09_demo", "quick", "mnist")
    table = P.accuracy_table(p)
    kd = np.array([correct["KD", s].mean() for s in range(3)]) * 100
    assert f"| KD | 3 | {kd.mean():.2f} ± {kd.std(ddof=1):.2f} |" in table
    assert "| teacher | 1 | 95.00 (n = 1) |" in table
    assert "KD beats the student alone" in P.claims_table(p)


def test_recheck_recomputes_both_intervals_from_the_files_alone(tmp_path):
    res, claims, correct = _results(np.random.default_rng(1))
    root, tmp_path = tmp_path, tmp_path / "09_demo" / "quick"
    res.publish(tmp_path, {}, claims)
    (p,) = P.published(root)
    out = P.recheck(p, "KD", "student alone")
    ca = np.stack([correct["KD", s] for s in range(3)])
    cb = np.stack([correct["student alone", s] for s in range(3)])
    want = two_noise_interval(ca, cb)
    assert out["two_noise"].low == pytest.approx(want.low, abs=1e-5)
    assert out["two_noise"].high == pytest.approx(want.high, abs=1e-5)
    assert out["seed_only"].estimate == pytest.approx(want.estimate, abs=1e-5)
    # predictions that do not give back the recorded accuracy are refused, not trusted
    preds = pd.read_csv(tmp_path / "mnist.predictions.csv")
    preds.loc[0, "test_predictions"] = encode_predictions(np.zeros(500, dtype=int))
    preds.to_csv(tmp_path / "mnist.predictions.csv", index=False)
    with pytest.raises(ValueError, match="do not reproduce"):
        P.recheck(p, "KD", "student alone")


def test_large_files_are_gzipped_and_still_read(tmp_path, monkeypatch):
    monkeypatch.setattr(R, "GZIP_OVER", 1000)
    res, claims, _ = _results(np.random.default_rng(2))
    root, tmp_path = tmp_path, tmp_path / "09_demo" / "quick"
    files = res.publish(tmp_path, {}, claims)
    assert any(f.name == "mnist.predictions.csv.gz" for f in files)
    assert not (tmp_path / "mnist.predictions.csv").exists()
    gzip.decompress((tmp_path / "mnist.predictions.csv.gz").read_bytes())
    (p,) = P.published(root)
    assert "two_noise" in P.recheck(p, "KD", "student alone")


def test_report_blocks_check_and_update(tmp_path, capsys):
    res, claims, _ = _results(np.random.default_rng(3))
    root = tmp_path / "results"
    res.publish(root / "09_demo" / "quick", {"seeds": {"mnist": [0, 1, 2]}}, claims)
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- report: 09_demo/quick/mnist accuracy -->\nold numbers\n<!-- /report -->\nend\n")
    assert main(["report", "--results", str(root), "--check", str(readme)]) == 1
    assert "stale report block" in capsys.readouterr().out
    assert main(["report", "--results", str(root), "--update", str(readme)]) == 0
    assert main(["report", "--results", str(root), "--check", str(readme)]) == 0
    text = readme.read_text()
    assert "old numbers" not in text and "| KD | 3 |" in text and text.endswith("<!-- /report -->\nend\n")
    readme.write_text(text.replace("| KD | 3 |", "| KD | 4 |"))  # a number typed by hand
    assert main(["report", "--results", str(root), "--check", str(readme)]) == 1
    readme.write_text("<!-- report: 09_demo/quick/cifar10 claims -->\n<!-- /report -->\n")
    assert main(["report", "--results", str(root), "--check", str(readme)]) == 2
    assert "there are: 09_demo/quick/mnist" in capsys.readouterr().err
    readme.write_text("<!-- report: 09_demo/quick/mnist metrics:accuracy,nll -->\n<!-- /report -->\n")
    assert main(["report", "--results", str(root), "--update", str(readme)]) == 0
    assert "| method | accuracy (%) | nll |" in readme.read_text() and "| 0.300 ± 0.000 |" in readme.read_text()
    with pytest.raises(ValueError, match="valid choices: accuracy, nll"):
        P.block(P.find(root, "09_demo", "quick", "mnist"), "metrics:ece")
    readme.write_text("<!-- report: 09_demo/quick/mnist metrics:nope -->\n<!-- /report -->\n")
    assert main(["report", "--results", str(root), "--check", str(readme)]) == 2  # one line, no traceback
    assert "valid choices" in capsys.readouterr().err
    assert main(["strip", str(tmp_path / "missing.ipynb")]) == 2
    assert "no notebook file" in capsys.readouterr().err
    assert main(["report", "--results", str(root), "--out", str(tmp_path / "r.md")]) == 0
    assert "## 09_demo · quick · mnist" in (tmp_path / "r.md").read_text()
    readme.write_text("<!-- report: 09_demo/quick/mnist findings -->\n<!-- /report -->\n")
    assert main(["report", "--results", str(root), "--update", str(readme)]) == 0
    found = readme.read_text()
    assert claims.verdict.tolist() == ["inconclusive"]  # the demo's one claim: nothing decided to report
    assert "**What we found**" in found and "- no claim holds or fails here: all 1 rows inconclusive" in found


def test_a_block_without_its_end_marker_stops_the_update_and_loses_nothing(tmp_path, capsys):
    """A block opened without ``<!-- /report -->`` once swallowed 250 README lines up to the next
    block's end marker; now --update and --check refuse it, naming the line, and write nothing."""
    res, claims, _ = _results(np.random.default_rng(3))
    root = tmp_path / "results"
    res.publish(root / "09_demo" / "quick", {"seeds": {"mnist": [0, 1, 2]}}, claims)
    readme = tmp_path / "README.md"
    text = (
        "intro\n<!-- report: 09_demo/quick/mnist accuracy -->\nprose a reader wrote\n"
        "<!-- report: 09_demo/quick/mnist claims -->\n<!-- /report -->\nend\n"
    )
    readme.write_text(text)
    for flag in ("--update", "--check"):
        assert main(["report", "--results", str(root), flag, str(readme)]) == 2
        assert "opened on line 2 has no <!-- /report -->" in capsys.readouterr().err
    assert readme.read_text() == text


def test_the_readme_and_docs_quote_the_committed_results():
    """Every report block of the README and of docs/*.md is what ``python -m kdutils report`` computes
    from results/ (the README's overview also from the measured smoke times), and docs/results.md is
    its whole output."""
    from kdutils.papers import PAPERS

    root = project_root()
    about = {nb: (m.SHORT, m.TEACHES) for nb, m in PAPERS.items()}
    smoke = root / "benchmarks" / "results" / "smoke_times.csv"
    pages = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    assert "<!-- report: overview -->" in pages[0].read_text()
    for page in pages:
        assert P.stale_blocks(page.read_text(), root / "results", about, smoke) == [], page.name
    assert (root / "docs" / "results.md").read_text() == P.render(root / "results")


def test_the_readme_stays_a_front_door():
    """Issue 35: under 200 lines, with a contents list; running one notebook on MNIST, CMKD's verdict
    and what full costs within its first 100 lines; no link that leaves a clone."""
    import re

    text = (project_root() / "README.md").read_text()
    lines = text.splitlines()
    assert len(lines) < 200, len(lines)
    first = "\n".join(lines[:100])
    assert "**Contents:**" in first
    assert "datasets=['mnist']" in first and 'datasets = ["mnist"]' in first
    assert "02_cmkd/quick/fashion_mnist findings" in first and "`full`" in first
    for target in re.findall(r"\]\(([^)#\s]+)", text):
        assert not target.startswith("../"), f"a README link leaves the clone: {target}"
        if not target.startswith("http"):
            assert (project_root() / target).exists(), f"a README link leads nowhere: {target}"


def test_the_overview_shows_a_non_inferiority_interval_with_its_margin():
    from kdutils.report.published import _verdict_counts

    rule = "each of A vs B non-inferior: paired t, 90 % interval of the accuracy difference above minus the margin, 0.12 points = 0.333 x the gap [ours]"
    claims = pd.DataFrame(
        {
            "verdict": ["holds", "inconclusive"],
            "measured": ["A vs B: -0.01 points, 90 % CI [-0.06, +0.04], n = 5", "x"],
            "rule": [rule, "y"],
        }
    )
    assert _verdict_counts(claims).startswith("first claim *holds* [-0.06, +0.04] against a margin of -0.12;")
    claims.loc[0, "rule"] = "90 % interval of (a - b) above 3.00 points"
    assert _verdict_counts(claims).startswith("first claim *holds* [-0.06, +0.04];")


@pytest.mark.parametrize(
    "verdicts, verdict, shown",
    [
        (("inconclusive", "does not hold"), "does not hold", "[-0.45, -0.12]"),  # the part that decided
        (("inconclusive", "does not hold"), "inconclusive", "[-0.33, +0.01]"),
        (("holds", "holds"), "holds", "[-0.45, -0.12]"),  # every part holds: the weakest (lowest lower end)
    ],
)
def test_the_overview_shows_the_interval_of_the_part_that_decided(verdicts, verdict, shown):
    from kdutils.report.published import _verdict_counts

    measured = (
        f"A vs KD: -0.16 points, 90 % CI [-0.33, +0.01], n = 5 ({verdicts[0]}); "
        f"B vs KD: -0.28 points, 90 % CI [-0.45, -0.12], n = 5 ({verdicts[1]})"
    )
    claims = pd.DataFrame({"verdict": [verdict], "measured": [measured], "rule": ["x"]})
    assert _verdict_counts(claims).startswith(f"first claim *{verdict}* {shown};")
