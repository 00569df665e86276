"""The notebooks as files: the kernelspec they store, and a set-up cell that checks every parameter."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

import kdutils as kd

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
#: what the default kernel (ipykernel's own "python3") reports, so saving in JupyterLab changes nothing
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def _cells(nb: Path) -> tuple[str, str]:
    """The parameters cell's source and the set-up cell's (the code cell right after it)."""
    cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
    i = next(i for i, c in enumerate(cells) if "parameters" in c.get("metadata", {}).get("tags", []))
    assert cells[i + 1]["cell_type"] == "code"
    return "".join(cells[i]["source"]), "".join(cells[i + 1]["source"])


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def test_notebook_stores_the_default_kernelspec(nb):
    assert json.loads(nb.read_text(encoding="utf-8"))["metadata"]["kernelspec"] == KERNELSPEC


def test_make_lab_registers_no_other_kernel():
    for line in (ROOT / "Makefile").read_text().splitlines():
        if "ipykernel install" in line:
            assert "--name python3" in line and "--display-name" not in line, line


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def test_setup_cell_checks_every_parameter_first(nb):
    """The first kdutils call of the set-up cell is the context, which checks every parameter before
    anything loads: each one passed by its own name, the common ones as keywords and the notebook's
    own in ``parameters=dict(...)``."""
    params, setup = _cells(nb)
    names = [t.id for node in ast.parse(params).body if isinstance(node, ast.Assign) for t in node.targets]
    calls = [
        n
        for n in ast.walk(ast.parse(setup))
        if isinstance(n, ast.Call)
        and ast.unparse(n.func) in ("kd.check_parameters", "kd.NotebookContext", "kd.configure", "kd.Experiment")
    ]
    calls.sort(key=lambda n: (n.lineno, n.col_offset))
    assert calls and ast.unparse(calls[0].func) == "kd.NotebookContext", "the context must come first: it checks"
    passed = {k.arg: k.value for k in calls[0].keywords if k.arg not in ("default_datasets", "sizes", "parameters")}
    own = next((k.value for k in calls[0].keywords if k.arg == "parameters"), None)
    if own is not None:
        assert isinstance(own, ast.Call) and ast.unparse(own.func) == "dict"
        passed.update({k.arg: k.value for k in own.keywords})
    assert sorted(passed) == sorted(names), f"{nb.stem}: parameters not checked: {set(names) ^ set(passed)}"
    assert all(ast.unparse(v) == k for k, v in passed.items())
    defaults: dict = {}
    exec(params, {}, defaults)  # the stored defaults pass their own check
    kd.check_parameters(**defaults)


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def test_notebook_defines_no_function_or_class(nb):
    """Notebooks hold the story, kdutils the code (DESIGN.md): a helper goes into kdutils with a docstring."""
    cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
    for i, c in enumerate(cells):
        if c["cell_type"] != "code":
            continue
        src = "\n".join(line for line in "".join(c["source"]).splitlines() if not line.lstrip().startswith(("%", "!")))
        defined = [
            type(n).__name__
            for n in ast.walk(ast.parse(src))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda))
        ]
        assert not defined, f"{nb.stem}, cell {i}: {defined} (move it into kdutils)"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def test_committed_notebooks_carry_no_outputs(nb):
    """What the repository keeps: no outputs, no execution counts, no widget state (issue 33)."""
    from kdutils.__main__ import main

    assert main(["strip", "--check", str(nb)]) == 0, f"{nb.name} carries outputs or metadata: python -m kdutils strip"


def test_a_saved_notebook_strips_back_to_the_committed_bytes(tmp_path):
    """A JupyterLab save after a run (progress-bar widgets, execution counts, the full language_info,
    widget state) is undone by ``python -m kdutils strip``, byte for byte."""
    from kdutils.__main__ import main

    src = NOTEBOOKS[0]
    nb = json.loads(src.read_text(encoding="utf-8"))
    for i, cell in enumerate(c for c in nb["cells"] if c["cell_type"] == "code"):
        cell["execution_count"] = i + 1
        cell["outputs"] = [
            {
                "output_type": "display_data",
                "metadata": {},
                "data": {
                    "application/vnd.jupyter.widget-view+json": {"model_id": "x", "version_major": 2},
                    "text/plain": "cmkd s0: 0%| | 0/6",
                },
            }
        ]
        cell["metadata"]["execution"] = {"iopub.status.busy": "2026-12-07T10:00:00Z"}
    nb["metadata"]["language_info"] = {"name": "python", "version": "3.11.7", "mimetype": "text/x-python"}
    nb["metadata"]["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    saved = tmp_path / src.name
    saved.write_text(json.dumps(nb, indent=1), encoding="utf-8")
    assert main(["strip", "--check", str(saved)]) == 1
    assert main(["strip", str(saved)]) == 0
    assert saved.read_bytes() == src.read_bytes()


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def test_notebook_is_valid_nbformat_with_unique_cell_ids(nb):
    """nbformat 4.5 wants a unique id on every cell; without one, every read (papermill, nbval, the
    site) warns and JupyterLab rewrites the file on the next save."""
    import warnings

    import nbformat

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        node = nbformat.read(nb, as_version=nbformat.NO_CONVERT)
        nbformat.validate(node)
    ids = [c.get("id") for c in node.cells]
    assert all(ids) and len(set(ids)) == len(ids), f"{nb.name}: cells without a unique id"
