"""The results site (python -m kdutils site): cleaning executed notebooks, building, offline in a browser.

The smoke batch test (tests/papers/test_notebooks.py) also builds the site from its smoke outputs.
"""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
import pytest
from site_checks import browser_problems, chromium, pages, static_problems

from kdutils.report import site as S

ROOT = Path(__file__).resolve().parents[2]


def _executed_notebook(batch: Path, project: Path) -> nbformat.NotebookNode:
    """A notebook as papermill leaves it: defaults, the injected cell, absolute paths, a saved figure."""
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile = "quick"  # smoke | quick\ndatasets = []  # empty: default\nseeds = 0')
    params.metadata["tags"] = ["parameters"]
    injected = nbformat.v4.new_code_cell(
        f'profile = "smoke"\ndatasets = ["mnist"]\noutput_dir = "{batch}/smoke/00_x"\nfigures_dir = "{project}/figures/00_x"'
    )
    injected.metadata["tags"] = ["injected-parameters"]
    code = nbformat.v4.new_code_cell("ctx.save_figure(fig, 'acc_mnist')")
    code.outputs = [
        nbformat.v4.new_output("stream", text=f"wrote {batch}/smoke/00_x/results.csv\nrun store: /tmp/xyz/store7\n"),
        nbformat.v4.new_output(
            "display_data",
            data={"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"},
            metadata={"kdutils": {"figure": "figures/00_x/acc_mnist.png"}},
        ),
        nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"}),
    ]
    nb.cells = [nbformat.v4.new_markdown_cell("# 00 x\n\n$$a_i = b^2$$"), params, injected, code]
    nb.metadata["papermill"] = {"parameters": {"profile": "smoke", "datasets": ["mnist"]}}
    return nb


def test_clean_executed_folds_the_injected_cell_and_publishes_no_absolute_path(tmp_path):
    batch, project = tmp_path / "batch-out", tmp_path / "other-checkout"
    (tmp_path / "figures" / "00_x").mkdir(parents=True)
    (tmp_path / "figures" / "00_x" / "acc_mnist.png").write_bytes(b"png")
    nb = S.clean_executed(_executed_notebook(batch, project), batch_dir=batch, figures_root=tmp_path)
    tags = [c.metadata.get("tags", []) for c in nb.cells]
    assert ["injected-parameters"] not in tags and tags.count(["parameters"]) == 1
    params = nb.cells[1].source.splitlines()
    assert params[0] == 'profile = "smoke"  # smoke | quick' and params[1] == 'datasets = ["mnist"]  # empty: default'
    assert params[2] == "seeds = 0"
    assert 'output_dir = "outputs/smoke/00_x"  # set by the batch' in params
    assert 'figures_dir = "figures/00_x"  # set by the batch' in params
    text = nbformat.writes(nb)
    assert str(tmp_path) not in text and "/tmp/" not in text, text
    out = nb.cells[2].outputs
    assert out[0]["text"] == "wrote outputs/smoke/00_x/results.csv\nrun store: .../store7\n"
    assert out[1]["data"] == {"text/plain": "<Figure>", "text/x-kdutils-figure": "figures/00_x/acc_mnist.png"}
    assert "image/png" in out[2]["data"]  # not in the gallery: stays embedded
    assert S._set_of(_executed_notebook(batch, project), "x") == "smoke-mnist"
    assert "papermill" not in nb.metadata


def test_markdown_pages_keep_math_for_mathjax_and_githubs_anchors():
    body = S._markdown("## 00_kd · quick · mnist\n\nA $p_i^*$ and $$\\sum_i x_i * y_i$$, `$HOME` and $5.\n")
    assert 'id="00_kd--quick--mnist"' in body
    assert "$p_i^*$" in body and "$$\\sum_i x_i * y_i$$" in body and "<em>" not in body
    assert "<code>$HOME</code>" in body


def test_publish_writes_cleaned_copies_under_docs_executed(tmp_path):
    batch = tmp_path / "out"
    (batch / "smoke").mkdir(parents=True)
    nbformat.write(_executed_notebook(batch, tmp_path), batch / "smoke" / "00_x.ipynb")
    (tmp_path / "notebooks").mkdir()
    written = S.publish(batch, root=tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in written] == ["docs/executed/smoke-mnist/00_x.ipynb"]
    assert "/tmp/" not in written[0].read_text() and str(tmp_path) not in written[0].read_text()


def test_the_site_refuses_to_overwrite_the_project(tmp_path):
    with pytest.raises(ValueError, match="overwrite the project"):
        S.build(ROOT / "docs", root=ROOT)


@pytest.fixture(scope="module")
def committed_site(tmp_path_factory):
    """The site of this checkout, from its committed files only (what `make site` builds in a clone)."""
    out = tmp_path_factory.mktemp("site")
    t0 = time.perf_counter()
    built = S.build(out, root=ROOT)
    return built, time.perf_counter() - t0


def test_the_committed_site_builds_quickly_with_every_page_and_nothing_from_outside(committed_site):
    built, seconds = committed_site
    assert seconds < 300, f"make site took {seconds:.0f} s (the target: under 5 minutes)"
    names = {p.relative_to(built.out).as_posix() for p in pages(built.out)}
    assert {"index.html", "docs/results.html", "docs/teaching.html", "notebooks/index.html"} <= names
    for nb in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        assert f"notebooks/{nb.stem}.html" in names
    for d in sorted((ROOT / S.EXECUTED_DIR).glob("*/")):
        for nb in d.glob("*.ipynb"):
            assert f"executed/{d.name}/{nb.stem}.html" in names
    assert static_problems(built.out) == []
    index = (built.out / "index.html").read_text()
    assert 'href="docs/results.html#' in index and 'href="notebooks/04_faithful.html"' in index


@pytest.mark.skipif(chromium() is None, reason="no Chromium here (.ci/run installs Debian's package)")
def test_the_committed_site_works_offline_in_chromium(committed_site):
    pytest.importorskip("playwright.sync_api", reason="playwright is in the browser extra")
    built, _ = committed_site
    problems, counts = browser_problems(built.out, executable=chromium())
    assert problems == [], "\n".join(problems[:40])
    assert counts["pages"] == len(pages(built.out)) and counts["math pages"] >= 5 and counts["images"] > 0
