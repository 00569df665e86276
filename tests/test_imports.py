"""The package has a ground floor: no import cycle between kdutils modules (a test walks the imports).

Every ``import`` / ``from ... import`` of a kdutils module counts, at module level or inside a
function (a lazy import is still a dependency), so the modules form a layered graph; only
imports under ``if TYPE_CHECKING:`` (annotations, never executed) are left out.
"""

import ast
from pathlib import Path

import kdutils

PKG = Path(kdutils.__file__).parent


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """kdutils modules imported by the file at ``path`` (packages' ``__init__`` excluded as targets)."""
    me = _module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out: set[str] = set()
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):  # imports only for type checkers are no runtime dependency
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            node.body = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if not mod.startswith("kdutils"):
                continue
            for alias in node.names:  # "from . import losses" names a module
                cand = f"{mod}.{alias.name}"
                out.add(cand if (PKG.parent / cand.replace(".", "/")).with_suffix(".py").exists() else mod)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("kdutils"))
    return {m for m in out if m != me}


def _graph() -> dict[str, set[str]]:
    files = [p for p in PKG.rglob("*.py") if p.name != "__init__.py" and p.name != "__main__.py"]
    mods = {_module_name(p): p for p in files}
    # edges between plain modules only: a package __init__ re-exports, it is not a layer
    return {m: {d for d in _imports(p) if d in mods} for m, p in mods.items()}


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 1:
                return stack[stack.index(d) :] + [d]
            if d not in state:
                found = visit(d)
                if found:
                    return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def test_the_walker_sees_real_edges():
    g = _graph()
    assert "kdutils.core.io" in g["kdutils.training.store"] and "kdutils.core.io" in g["kdutils.inputs.data"]
    assert "kdutils.inputs.recipe" in g["kdutils.training.train"]
    assert "kdutils.inputs.recipe" in g["kdutils.training.profiles"]
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_cycle_inside_kdutils():
    assert _find_cycle(_graph()) is None, f"import cycle: {' -> '.join(_find_cycle(_graph()))}"


def test_ground_floor_modules_import_nothing_heavy():
    g = _graph()
    assert g["kdutils.core.io"] <= {"kdutils.core.errors"}  # StorageError
    assert g["kdutils.core.errors"] == set()
    assert "kdutils.training.train" not in g["kdutils.training.profiles"]
    assert "kdutils.training.store" not in g["kdutils.inputs.data"]
    assert "kdutils.inputs.data" not in g["kdutils.training.store"]
