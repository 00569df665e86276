"""Only the gallery's profile (quick) writes the committed figures (issue 10)."""

from __future__ import annotations

import kdutils as kd
from kdutils.__main__ import figures_folder


def test_only_the_gallery_profile_writes_the_committed_figures(tmp_path):
    root = kd.project_root()
    assert kd.default_figures_dir("00_x", "quick") == root / "figures" / "00_x"
    assert kd.default_figures_dir("00_x", "full") == root / "figures" / "00_x" / "full"
    assert kd.default_figures_dir("00_x", "smoke") == root / "outputs" / "smoke" / "figures" / "00_x"
    assert kd.default_figures_dir("00_x", "paper") == root / "outputs" / "paper" / "figures" / "00_x"
    # the batch (python -m kdutils run / make reproduce): --out moves the non-gallery figures with it
    assert figures_folder("00_x", "quick", root / "outputs") == root / "figures" / "00_x"
    assert figures_folder("00_x", "smoke", root / "outputs") == root / "outputs" / "smoke" / "figures" / "00_x"
    assert figures_folder("00_x", "smoke", tmp_path) == tmp_path / "smoke" / "figures" / "00_x"
    assert figures_folder("00_x", "quick", tmp_path, tmp_path / "f") == tmp_path / "f" / "00_x"
    # a notebook opened by hand (NotebookContext's default)
    ctx = kd.NotebookContext("99_test", profile="smoke", verbose=False, output_dir=tmp_path)
    assert ctx.figures == root / "outputs" / "smoke" / "figures" / "99_test"
