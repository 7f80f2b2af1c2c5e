"""Matplotlib set up for files, not screens (Agg backend), and atomic saving.

Every module that draws imports ``plt`` and :func:`save_figure` from here, so
the backend is chosen before pyplot is first imported, on machines without
a display (cluster nodes) too.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen first
from matplotlib.backend_bases import FigureCanvasBase  # noqa: E402

from seqae.errors import SeqaeError  # noqa: E402
from seqae.fileio import atomic_output  # noqa: E402

__all__ = ["figure_path", "plt", "save_figure"]


def figure_path(path: str | os.PathLike[str]) -> Path:
    """``path`` as a Path, checked to end in a format matplotlib writes (``.png``, ``.svg``, ``.pdf``, ...).

    Commands that write tables before their figure check it first, so that a
    typo in the extension stops them before anything is written.

    Raises:
        SeqaeError: another extension (no extension means PNG).
    """
    path = Path(path)
    fmt = _format(path)
    supported = FigureCanvasBase.get_supported_filetypes()
    if fmt not in supported:
        raise SeqaeError(f"{path}: cannot draw a .{fmt} figure (formats: {', '.join(sorted(supported))})")
    return path


def _format(path: Path) -> str:
    """The figure format a path's extension names (no extension: PNG)."""
    return path.suffix.lstrip(".").lower() or "png"


def save_figure(fig: plt.Figure, path: str | os.PathLike[str]) -> Path:
    """Save ``fig`` atomically and close it; the format follows the file extension."""
    path = figure_path(path)
    with atomic_output(path) as tmp:
        # No bbox_inches="tight": it renders the figure twice; callers lay out with tight_layout.
        fig.savefig(tmp, format=_format(path), dpi=110)
    plt.close(fig)
    return path
