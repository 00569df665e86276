"""The results site: the README, ``docs/`` and every executed notebook as static HTML that works offline.

``python -m kdutils site`` (``make site``) writes ``site/``::

    site/index.html                       the README
    site/docs/<page>.html                 docs/*.md (docs/papers/ too)
    site/notebooks/<notebook>.html        each notebook: its executed copies, else its source
    site/executed/<set>/<notebook>.html   each executed notebook (set: <profile>-<datasets>)
    site/figures/, site/results/          the committed gallery and per-seed results, copied
    site/assets/mathjax/                  MathJax 2.7 (from jupyter-server-mathjax): math with no network

Executed notebooks come from ``docs/executed/`` (committed: ``python -m kdutils site --publish DIR``
copies a batch's executed notebooks there, cleaned) and from any ``--executed DIR`` (a batch's
``--out``, e.g. ``outputs/``). Cleaning (:func:`clean_executed`): papermill's injected-parameters
cell is folded into the parameters cell (one cell, with the values used), absolute paths become
relative (the project root, the batch's output folder, the run store, the home folder), and a figure
the notebook saved into the committed gallery is shown from that file instead of a second copy.

Why this tool [ours]: nbconvert renders the notebooks papermill executed, with its ``mathjax_url``
pointing at a MathJax copy inside the site, and python-markdown renders the Markdown pages; both
install from the package index and build offline in seconds. jupyter-book 2 needs Node; mkdocs
with mkdocs-jupyter builds offline but loads MathJax from a CDN; sphinx with myst-nb would also
work, at more configuration and build time for the same pages.
"""

from __future__ import annotations

import ast
import copy
import html
import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.io import project_root

__all__ = ["build", "clean_executed", "publish", "Site", "MATHJAX_CONFIG", "EXECUTED_DIR"]

#: where committed executed notebooks live (``python -m kdutils site --publish``)
EXECUTED_DIR = Path("docs") / "executed"
#: MathJax 2.7's combined configuration shipped by jupyter-server-mathjax
MATHJAX_CONFIG = "TeX-AMS-MML_HTMLorMML-full,Safe"
_NOTEBOOK = re.compile(r"^\d\d_[a-z0-9_]+$")

#: MathJax's configuration on every page: nbconvert's delimiters and equation numbers, the browser's own
#: MathML where it has it, else HTML-CSS with STIX-Web (MathJax's default TeX fonts are not shipped)
_MATHJAX = {
    "tex2jax": {
        "inlineMath": [["$", "$"], ["\\(", "\\)"]],
        "displayMath": [["$$", "$$"], ["\\[", "\\]"]],
        "processEscapes": True,
        "processEnvironments": True,
    },
    "TeX": {"equationNumbers": {"autoNumber": "AMS", "useLabelIds": True}},
    # elsewhere HTML-CSS with the STIX-Web fonts (the ones jupyter-server-mathjax ships)
    "HTML-CSS": {"availableFonts": [], "preferredFont": None, "webFont": "STIX-Web", "imageFont": None},
    "displayAlign": "center",
    "messageStyle": "none",
    "showMathMenu": False,
}


#: MathJax 2.7 picks HTML-CSS for Chromium whatever MMLorHTML prefers; where the browser renders MathML
#: (Chromium since 109, Firefox, Safari) use that: no web font to load, and no probe of one
_NATIVE_MML = (
    'MathJax.Hub.Register.StartupHook("Begin Jax", function () {'
    ' var m = document.createElementNS("http://www.w3.org/1998/Math/MathML", "math");'
    ' if (window.MathMLElement && m instanceof MathMLElement) { MathJax.Hub.setRenderer("NativeMML"); } });'
)


def _mathjax_head(src: str) -> str:
    return (
        f'<script type="text/x-mathjax-config">MathJax.Hub.Config({json.dumps(_MATHJAX)}); {_NATIVE_MML}</script>\n'
        f'<script src="{html.escape(src)}"></script>'
    )


_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{% block jupyter_widgets %}{% endblock jupyter_widgets %}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block html_head_js_mathjax -%}{{ resources.kd_mathjax }}{%- endblock html_head_js_mathjax -%}
"""

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; line-height: 1.5; margin: 0; color: #1d1d1f; }
main { max-width: 62rem; margin: 0 auto; padding: 1rem 1.5rem 3rem; }
nav.kd-site { background: #f3f4f6; border-bottom: 1px solid #d0d4da; padding: .5rem 1.5rem; font-size: .9rem; }
nav.kd-site a { margin-right: 1.2rem; color: #1f4e8c; text-decoration: none; }
table { border-collapse: collapse; margin: 1rem 0; font-size: .9rem; display: block; overflow-x: auto; }
th, td { border: 1px solid #d0d4da; padding: .25rem .5rem; vertical-align: top; }
th { background: #f3f4f6; }
pre { background: #f6f8fa; padding: .75rem; overflow-x: auto; }
code { background: #f6f8fa; padding: 0 .2rem; }
img { max-width: 100%; }
"""


# ---------------------------------------------------------------- cleaning executed notebooks
def _literal_assignments(source: str) -> dict[str, str]:
    """name -> the source text of its value, for each ``name = value`` of a cell."""
    out = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            out[node.targets[0].id] = ast.get_source_segment(source, node.value)
    return out


#: an absolute path that no known root covered (shown as ``.../<its last part>``)
_ABSOLUTE = re.compile(r"(?<![\w.~/])/(?:tmp|work|home|root|Users|mnt|data|scratch|var|opt|srv)(?:/[^\s\"'<>,;)\]]+)+")
#: a project root inside an executed notebook: the folder above its figures/ or results/ folder
_PROJECT = re.compile(r"(?<![\w./~-])(/[^\s\"'<>]+?)/(?:figures|results)/\d\d_")


def _relative_value(text: str, roots: dict[str, str]) -> str:
    """``text`` with each absolute root replaced by its relative name (longest roots first), and any
    other absolute path shortened to ``.../<last part>``."""
    for absolute in sorted(roots, key=len, reverse=True):
        rel = roots[absolute]
        text = text.replace(absolute + "/", (rel + "/") if rel else "").replace(absolute, rel or ".")
    return _ABSOLUTE.sub(lambda m: ".../" + m.group(0).rstrip("/").rsplit("/", 1)[-1], text)


def _roots(batch_dir: Path | None) -> dict[str, str]:
    """Absolute folders an executed notebook may print -> what a reader sees instead."""
    roots = {str(project_root()): ""}
    if batch_dir is not None:
        roots[str(Path(batch_dir).resolve())] = "outputs"
    runs = os.environ.get("KD_RUNS_ROOT")
    if runs:
        roots[str(Path(runs).resolve())] = "runs"
    roots[str(Path.home())] = "~"
    return {k: v for k, v in roots.items() if k not in ("/", "")}


def clean_executed(nb: Any, *, batch_dir: Path | None = None, figures_root: Path | None = None) -> Any:
    """A copy of the executed notebook ``nb`` (an ``nbformat`` node) fit to publish: papermill's
    injected-parameters cell folded into the parameters cell (each injected value replaces the
    default on its line), absolute paths made relative (:func:`_roots`), and each figure output
    whose file exists under ``figures_root`` (its ``kdutils.figure`` metadata, set by
    :meth:`kdutils.NotebookContext.save_figure`) replaced by a reference to that file."""
    nb = copy.deepcopy(nb)
    roots = _roots(batch_dir)
    for m in _PROJECT.finditer(json.dumps(nb, default=str)):
        roots.setdefault(m.group(1), "")  # the batch ran in another checkout (a worktree)
    cells = nb.cells
    injected = next((c for c in cells if "injected-parameters" in c.get("metadata", {}).get("tags", [])), None)
    params = next((c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])), None)
    if injected is not None:
        values = _literal_assignments(injected.source)
        if params is not None:
            lines = []
            for line in params.source.splitlines():
                m = re.match(r"^(\w+)\s*=\s*(.*?)(\s+#.*)?$", line)
                if m and m.group(1) in values:
                    line = f"{m.group(1)} = {_relative_value(values.pop(m.group(1)), roots)}{m.group(3) or ''}"
                lines.append(line)
            lines += [f"{k} = {_relative_value(v, roots)}  # set by the batch" for k, v in values.items()]
            params.source = "\n".join(lines)
        cells.remove(injected)
    nb.metadata.pop("papermill", None)
    for cell in cells:
        cell.get("metadata", {}).pop("papermill", None)
        cell.get("metadata", {}).pop("execution", None)
        if cell.cell_type != "code":
            continue
        cell.source = _relative_value(cell.source, roots)
        for out in cell.get("outputs", []):
            if "text" in out:
                out["text"] = _relative_value(out["text"], roots)
            data = out.get("data", {})
            for mime in ("text/plain", "text/html", "text/markdown"):
                if mime in data:
                    data[mime] = _relative_value(data[mime], roots)
            fig = out.get("metadata", {}).get("kdutils", {}).get("figure")
            if "image/png" in data and fig and figures_root is not None and (figures_root / fig).is_file():
                out["data"] = {"text/plain": data.get("text/plain", "<Figure>"), "text/x-kdutils-figure": fig}
    return nb


def _set_of(nb: Any, fallback: str) -> str:
    """``<profile>-<datasets>`` of an executed notebook (its parameters), e.g. ``quick-mnist``."""
    params = nb.metadata.get("papermill", {}).get("parameters", {})
    if not params:
        for c in nb.cells:
            if "parameters" in c.get("metadata", {}).get("tags", []):
                try:
                    params = {k: ast.literal_eval(v) for k, v in _literal_assignments(c.source).items()}
                except ValueError:
                    params = {}
                break
    profile = params.get("profile") or fallback
    ds = params.get("datasets") or params.get("dataset") or []
    ds = [ds] if isinstance(ds, str) else list(ds)
    return "-".join([str(profile), *map(str, ds)]) if ds else str(profile)


def _executed_files(folder: Path) -> list[Path]:
    return sorted(
        p for p in Path(folder).rglob("*.ipynb") if _NOTEBOOK.match(p.stem) and ".ipynb_checkpoints" not in p.parts
    )


def publish(batch_dir: Path, *, root: Path | None = None) -> list[Path]:
    """Copy every executed notebook under ``batch_dir`` (a batch's ``--out``) into
    ``docs/executed/<set>/<notebook>.ipynb``, cleaned (:func:`clean_executed`); returns the files."""
    import nbformat

    root = Path(root or project_root())
    written = []
    for path in _executed_files(batch_dir):
        nb = clean_executed(nbformat.read(path, as_version=4), batch_dir=batch_dir, figures_root=root)
        dest = root / EXECUTED_DIR / _set_of(nb, path.parent.name) / path.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, dest)
        written.append(dest)
    return written


# ---------------------------------------------------------------- pages
@dataclass
class Site:
    """What :func:`build` wrote: the pages (relative to the site folder) and the seconds it took."""

    out: Path
    pages: list[str] = field(default_factory=list)
    executed: dict[str, list[str]] = field(default_factory=dict)
    seconds: float = 0.0


def _rel(target: str, page: str) -> str:
    """``target`` (a site path) as seen from ``page`` (a site path)."""
    return os.path.relpath(target, os.path.dirname(page) or ".").replace(os.sep, "/")


def _nav(page: str) -> str:
    links = [
        ("index.html", "Home"),
        ("docs/results.html", "Results"),
        ("notebooks/index.html", "Notebooks"),
        ("docs/teaching.html", "Teaching"),
        ("docs/papers/README.html", "Papers"),
    ]
    return '<nav class="kd-site">' + "".join(f'<a href="{_rel(t, page)}">{n}</a>' for t, n in links) + "</nav>"


def _mathjax(page: str) -> str:
    return _mathjax_head(_rel("assets/mathjax/MathJax.js", page) + f"?config={MATHJAX_CONFIG}")


def _page(title: str, body: str, page: str) -> str:
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style>\n{_mathjax(page)}</head>\n"
        f"<body>{_nav(page)}<main>\n{body}\n</main></body></html>\n"
    )


def _slug(value: str, separator: str = "-") -> str:
    """GitHub's heading anchors: lower case, punctuation dropped, each space a hyphen."""
    value = re.sub(r"[^\w\- ]", "", value.strip().lower())
    return value.replace(" ", separator)


_LINK = re.compile(r'(href|src)="([^"#:]+?)(#[^"]*)?"')


def _link_fix(body: str, source: str, page: str, known: dict[str, str]) -> str:
    """Repository-relative links of the Markdown file ``source`` (``docs/x.md``) as site links from
    ``page``: a page of the site where there is one (``known``: repo path -> site path), else the
    file (figures and results are copied; anything else keeps its relative path)."""

    def fix(m: re.Match) -> str:
        attr, target, anchor = m.group(1), m.group(2), m.group(3) or ""
        if target.startswith(("/", "mailto")):
            return m.group(0)
        repo = os.path.normpath(os.path.join(os.path.dirname(source), target)).replace(os.sep, "/")
        site = known.get(repo, repo)
        return f'{attr}="{_rel(site, page)}{anchor}"'

    return _LINK.sub(fix, body)


def _markdown(text: str) -> str:
    import markdown

    # math first: python-markdown would read _ and * inside $...$ as emphasis
    stash: list[str] = []

    def keep(m: re.Match) -> str:
        stash.append(html.escape(m.group(0)))
        return f"\x00{len(stash) - 1}\x00"

    fenced = re.split(r"(```.*?```|`[^`\n]+`)", text, flags=re.S)
    for i in range(0, len(fenced), 2):
        fenced[i] = re.sub(r"\$\$.+?\$\$|(?<![\\$\w])\$[^$\n]+?\$(?![\w$])", keep, fenced[i], flags=re.S)
    body = markdown.markdown(
        "".join(fenced),
        extensions=["tables", "fenced_code", "sane_lists", "toc"],
        extension_configs={"toc": {"slugify": _slug}},
    )
    return re.sub("\x00(\\d+)\x00", lambda m: stash[int(m.group(1))], body)


def _notebook_html(nb: Any, page: str, figures_site: str = "figures") -> str:
    """An nbformat notebook as one HTML page (nbconvert's lab template, MathJax from the site)."""
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            fig = out.get("data", {}).get("text/x-kdutils-figure")
            if fig:
                src = html.escape(_rel(fig if fig.startswith("figures/") else f"{figures_site}/{fig}", page))
                out["data"] = {"text/html": f'<img src="{src}" alt="{html.escape(Path(fig).stem)}">'}
    exporter = HTMLExporter(
        template_name="lab", extra_loaders=[DictLoader({"kd_site.html.j2": _TEMPLATE})], template_file="kd_site.html.j2"
    )
    body, _ = exporter.from_notebook_node(nb, resources={"kd_mathjax": _mathjax(page)})
    return re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + _nav(page), body, count=1)


def _copy_mathjax(out: Path) -> None:
    import jupyter_server_mathjax

    src = Path(jupyter_server_mathjax.__file__).parent / "static"
    dest = out / "assets" / "mathjax"
    if not dest.exists():
        shutil.copytree(src, dest)


def build(out: Path | str = "site", *, root: Path | str | None = None, executed: list[Path] | None = None) -> Site:
    """Write the site into ``out`` (module docstring) from the project at ``root``: the README,
    ``docs/**/*.md``, ``notebooks/*.ipynb`` and the executed notebooks of ``docs/executed/`` and
    of each ``executed`` folder (a batch's ``--out``; later folders win for the same set)."""
    import nbformat

    t0 = time.perf_counter()
    root = Path(root or project_root()).resolve()
    out = Path(out).resolve()
    own = {root, *(root / d for d in ("docs", "notebooks", "kdutils", "figures", "results", "tests"))}
    if out in own:
        raise ValueError(f"the site folder {out} would overwrite the project's own files: pick another (e.g. site/)")
    out.mkdir(parents=True, exist_ok=True)
    site = Site(out)
    _copy_mathjax(out)
    for folder in ("figures", "results"):
        if (root / folder).is_dir():
            shutil.copytree(root / folder, out / folder, dirs_exist_ok=True)

    # executed notebooks: (set, notebook) -> notebook node
    runs: dict[tuple[str, str], Any] = {}
    for path in _executed_files(root / EXECUTED_DIR):
        runs[path.parent.name, path.stem] = nbformat.read(path, as_version=4)
    for folder in executed or []:
        for path in _executed_files(folder):
            raw = nbformat.read(path, as_version=4)
            runs[_set_of(raw, path.parent.name), path.stem] = clean_executed(
                raw, batch_dir=Path(folder), figures_root=root
            )

    notebooks = sorted(p.stem for p in (root / "notebooks").glob("*.ipynb") if _NOTEBOOK.match(p.stem))
    known = {"README.md": "index.html"}
    for md in sorted((root / "docs").rglob("*.md")):
        rel = md.relative_to(root).as_posix()
        known[rel] = rel[:-3] + ".html"
    for stem in notebooks:
        known[f"notebooks/{stem}.ipynb"] = f"notebooks/{stem}.html"

    def write(page: str, text: str) -> None:
        (out / page).parent.mkdir(parents=True, exist_ok=True)
        (out / page).write_text(text, encoding="utf-8")
        site.pages.append(page)

    for source, page in known.items():
        if source.endswith(".md"):
            text = (root / source).read_text(encoding="utf-8")
            title = next((ln.lstrip("# ").strip() for ln in text.splitlines() if ln.startswith("#")), source)
            write(page, _page(title, _link_fix(_markdown(text), source, page, known), page))

    for (set_name, stem), nb in sorted(runs.items()):
        page = f"executed/{set_name}/{stem}.html"
        write(page, _notebook_html(nb, page))
        site.executed.setdefault(stem, []).append(set_name)

    items = []
    for stem in notebooks:
        page = f"notebooks/{stem}.html"
        sets = site.executed.get(stem, [])
        links = " · ".join(f'<a href="{_rel(f"executed/{s}/{stem}.html", page)}">{html.escape(s)}</a>' for s in sets)
        nb = nbformat.read(root / "notebooks" / f"{stem}.ipynb", as_version=4)
        head = (
            f"<p><b>Executed:</b> {links}</p>"
            if sets
            else "<p>No executed copy in this site: the source follows (run it, then build with --executed).</p>"
        )
        write(
            page,
            re.sub(
                r"(<main[^>]*>|<body[^>]*>" + re.escape(_nav(page)) + ")",
                lambda m: m.group(1) + head,
                _notebook_html(nb, page),
                count=1,
            ),
        )
        items.append(f'<li><a href="{stem}.html">{stem}</a>' + (f" (executed: {links})" if sets else "") + "</li>")
    index = "notebooks/index.html"
    write(index, _page("Notebooks", "<h1>Notebooks</h1><ul>" + "".join(items) + "</ul>", index))
    site.seconds = time.perf_counter() - t0
    return site
