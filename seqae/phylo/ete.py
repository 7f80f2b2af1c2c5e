"""ete3, importable on every Python seqae supports (3.11 to 3.13).

``import ete3`` imports ``ete3.webplugin.webapp``, which imports the standard
``cgi`` module that Python 3.13 removed. seqae depends on ``legacy-cgi`` there
(pyproject.toml), which provides it again; where that is missing (e.g. a conda
environment without it) this module imports ete3 with a stand-in ``cgi`` that
holds the one function ete3 reads from it (``parse_qs``, used only by its web
plugin, which seqae never starts). The stand-in is removed again once ete3 is
imported, so nothing else sees a ``cgi`` module.

Every seqae module imports ete3's names from here::

    from seqae.phylo.ete import Tree, TreeStyle
"""

from __future__ import annotations

import importlib.util
import sys
import types
from urllib.parse import parse_qs

__all__ = ["NewickError", "Tree", "ete3"]


def _cgi_importable() -> bool:
    """Whether ``import cgi`` would work (up to Python 3.12, or with legacy-cgi), without importing it."""
    try:
        return importlib.util.find_spec("cgi") is not None
    except (ImportError, ValueError):
        return False


def _import_ete3() -> types.ModuleType:
    if not _cgi_importable():
        stand_in = types.ModuleType("cgi", "seqae's stand-in for the removed cgi module while ete3 is imported")
        stand_in.parse_qs = parse_qs
        missing = object()
        before = sys.modules.get("cgi", missing)
        sys.modules["cgi"] = stand_in
        try:
            import ete3
        finally:
            if before is missing:
                del sys.modules["cgi"]
            else:
                sys.modules["cgi"] = before
        return ete3
    import ete3

    return ete3


ete3 = _import_ete3()

Tree = ete3.Tree
from ete3.parser.newick import NewickError  # noqa: E402 - ete3 is imported through _import_ete3 first


def __getattr__(name: str):
    """Any other ete3 name (``TreeStyle``, ``TextFace``, ...), as ``from seqae.phylo.ete import ...`` gives it."""
    try:
        return getattr(ete3, name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
