"""The package's layers, one folder each: a module imports only from its own layer and the layers below it.

Every import of a kdutils module counts, also one under ``if TYPE_CHECKING:`` (an annotation that
names a higher layer is still a dependency on it). Evaluations, selections and data-selection
scorers see an experiment through the narrow :class:`kdutils.store.RunData` protocol (settings,
split, device, store, a run's logits, a teacher's scores), never the ``Experiment`` itself.

The settings (:mod:`kdutils.profiles`) sit with training, below the evaluations that read them.
A new module goes into the folder of its layer; a new folder must be placed in :data:`LAYERS` (the
test says so). The old flat module names (``kdutils.store``) stay importable as aliases of the same
module objects (``kdutils/__init__.py``), which this test does not count as modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import kdutils

PKG = Path(kdutils.__file__).parent

#: lowest first; a module may import from its own layer and those before it
LAYERS: list[tuple[str, list[str]]] = [
    ("ground", ["core"]),
    ("data and models", ["inputs"]),
    ("numerics", ["numerics"]),
    ("methods", ["methods"]),
    ("training", ["training"]),
    ("evaluation", ["evaluation"]),
    ("experiment", ["experiments"]),
    ("report", ["report"]),
    ("papers", ["papers"]),
    ("entry points", ["testing", "__main__", "__init__"]),
]
LAYER = {m: i for i, (_, mods) in enumerate(LAYERS) for m in mods}


def _top(path: Path) -> str:
    """The top-level module of a file: ``kdutils/methods/kd.py`` -> ``methods``."""
    rel = path.relative_to(PKG)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imported(path: Path) -> set[str]:
    """Top-level kdutils modules imported by ``path`` (TYPE_CHECKING blocks included)."""
    depth = len(path.relative_to(PKG).parts) - 1  # 0 for kdutils/x.py, 1 for kdutils/methods/x.py
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: climb to the package root, then the module path
                up = node.level - 1
                if up < depth:  # inside the same subpackage
                    out.add(path.relative_to(PKG).parts[0])
                    continue
                parts = (node.module or "").split(".") if node.module else []
                out.update([parts[0]] if parts and parts[0] else [a.name for a in node.names])
            elif (node.module or "").startswith("kdutils"):
                parts = node.module.split(".")
                out.update([parts[1]] if len(parts) > 1 else [a.name for a in node.names])
        elif isinstance(node, ast.Import):
            for a in node.names:
                parts = a.name.split(".")
                if parts[0] == "kdutils" and len(parts) > 1:
                    out.add(parts[1])
    return {m for m in out if m in LAYER or (PKG / f"{m}.py").exists() or (PKG / m).is_dir()}


def test_every_module_has_a_layer():
    modules = {_top(p) for p in PKG.rglob("*.py")}
    assert not modules - set(LAYER), f"place these modules in a layer (tests/test_layers.py): {modules - set(LAYER)}"


def test_no_module_imports_a_higher_layer():
    upward = []
    for path in sorted(PKG.rglob("*.py")):
        me = _top(path)
        for dep in _imported(path):
            if dep in LAYER and LAYER[dep] > LAYER[me]:
                upward.append(
                    f"{path.relative_to(PKG.parent)} ({LAYERS[LAYER[me]][0]}) imports {dep} ({LAYERS[LAYER[dep]][0]})"
                )
    assert not upward, "imports of a higher layer:\n" + "\n".join(upward)


def test_the_check_sees_an_upward_import(tmp_path, monkeypatch):
    """The walker finds a TYPE_CHECKING import of a higher layer (the kind this test exists for)."""
    fake = PKG / "core" / "errors.py"
    src = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..experiments.experiment import Experiment\n"
    monkeypatch.setattr(Path, "read_text", lambda self: src if self == fake else Path.read_bytes(self).decode())
    assert "experiments" in _imported(fake)


def test_project_root_is_the_checkout_wherever_the_process_runs(tmp_path, monkeypatch):
    """A kernel runs in notebooks/: the project root (runs/, data/, figures/) must not follow the
    working folder (moving io.py into core/ once made it, and the store landed in notebooks/runs)."""
    monkeypatch.chdir(tmp_path)
    root = kdutils.project_root()
    assert root == PKG.parent and (root / "pyproject.toml").exists()
    assert kdutils.data_root() == root / "data" or "KD_DATA_ROOT" in __import__("os").environ


# ---------------------------------------------------------------- the tests mirror the package

TESTS = Path(__file__).resolve().parent


def test_the_test_folders_are_the_package_folders():
    """``tests/<folder>/`` tests ``kdutils/<folder>/``; package-wide tests (layers, style, the command
    line, the benchmarks) sit at the top of ``tests/``."""
    folders = {p.name for p in TESTS.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))}
    package = {p.name for p in PKG.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders <= package, f"test folders without a kdutils folder: {sorted(folders - package)}"
    assert {"core", "inputs", "numerics", "methods", "training", "evaluation", "experiments", "report"} <= folders


def test_every_method_file_has_its_test_file():
    """Adding a method is its file and its test file: ``kdutils/methods/<m>.py`` ->
    ``tests/methods/test_<m>.py`` (the base and private helpers excepted)."""
    methods = {p.stem for p in (PKG / "methods").glob("*.py") if not p.stem.startswith("_") and p.stem != "base"}
    missing = sorted(m for m in methods if not (TESTS / "methods" / f"test_{m}.py").exists())
    assert not missing, f"methods without tests/methods/test_<name>.py: {missing}"
