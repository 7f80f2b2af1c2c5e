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

from seqae.fileio import atomic_output  # noqa: E402

__all__ = ["plt", "save_figure"]


def save_figure(fig: plt.Figure, path: str | os.PathLike[str]) -> Path:
    """Save ``fig`` atomically and close it; the format follows the file extension."""
    path = Path(path)
    with atomic_output(path) as tmp:
        # No bbox_inches="tight": it renders the figure twice; callers lay out with tight_layout.
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=110)
    plt.close(fig)
    return path
