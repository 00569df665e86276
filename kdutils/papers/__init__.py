"""One module per notebook: the single home of what a paper's notebook trains and claims.

``kdutils/papers/<paper>.py`` holds the paper's citation, its arms (label -> method spec), the
notebook's own parameters and their defaults, its figures and its claims (each comparison named
in advance, with its rule). The notebook shows these and calls them; the cost plan
(:mod:`kdutils.costs`) and the tests derive from them, so no copy of a notebook's arms lives
anywhere else. The top layer of the package: a paper module may use every layer below it.

Every module of this package is imported here (each registers its cost plan), and
:func:`paper` finds one by its notebook's name.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

from ..core.errors import UnknownNameError

#: notebook name -> its paper module
PAPERS: dict[str, ModuleType] = {}

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    _module = importlib.import_module(f"{__name__}.{_info.name}")
    PAPERS[_module.NOTEBOOK] = _module


def paper(notebook: str) -> ModuleType:
    """The paper module of ``notebook`` (``"00_kd_baseline"``)."""
    if notebook not in PAPERS:
        raise UnknownNameError("paper notebook", notebook, PAPERS)
    return PAPERS[notebook]


__all__ = ["PAPERS", "paper"]
