"""The labels probed: label columns of the windows file as ``object`` arrays (unknown values
as None), and the TSS-distance bins of the derived ``tss_bin`` label.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from seqae.errors import SeqaeError
from seqae.windows.store import UNKNOWN_LABELS

log = logging.getLogger("seqae")

__all__ = ["TSS_BIN_NONE", "derive_labels", "known", "tss_bin_names", "tss_distance_bins"]

#: tss_bin of a window without a nearest gene (no TSS distance).
TSS_BIN_NONE = "none"


def _format_bp(x: float) -> str:
    a = abs(x)
    if a >= 1000 and a % 1000 == 0:
        text = f"{int(a) // 1000}k"
    elif a >= 1000 and a % 100 == 0:
        text = f"{a / 1000:g}k"
    else:
        text = f"{a:g}"
    return f"-{text}" if x < 0 else text


def tss_bin_names(edges: Sequence[float] = (-10000, -1000, 1000, 10000)) -> list[str]:
    """Names of the TSS-distance bins for increasing ``edges``, e.g. ``<-10k, -10k..-1k, -1k..1k, 1k..10k, >10k``."""
    edges = list(edges)
    names = [f"<{_format_bp(edges[0])}"]
    names += [f"{_format_bp(a)}..{_format_bp(b)}" for a, b in itertools.pairwise(edges)]
    names.append(f">{_format_bp(edges[-1])}")
    return names


def tss_distance_bins(distance: Any, edges: Sequence[float] = (-10000, -1000, 1000, 10000)) -> np.ndarray:
    """Bin signed TSS distances (bp; negative = upstream) into named classes.

    Bins are closed towards the TSS: with the default edges, ``-1k..1k`` holds
    ``-1000 <= d <= 1000``, ``1k..10k`` holds ``1000 < d <= 10000``,
    ``-10k..-1k`` holds ``-10000 <= d < -1000``, ``>10k`` is ``d > 10000`` and
    ``<-10k`` is ``d < -10000``. A missing distance (NaN: no gene) is :data:`TSS_BIN_NONE`.

    Args:
        distance: ``[N]`` distances (float; NaN = none).
        edges: increasing bin edges.

    Returns:
        ``object [N]`` bin names (:func:`tss_bin_names`).
    """
    d = np.asarray(distance, dtype=np.float64).reshape(-1)
    e = np.asarray(edges, dtype=np.float64)
    names = np.array(tss_bin_names(edges) + [TSS_BIN_NONE], dtype=object)
    # Upstream distances close their bin on the right edge, downstream ones on the left (towards the TSS).
    index = np.where(d < 0, np.searchsorted(e, d, side="right"), np.searchsorted(e, d, side="left"))
    index = np.where(np.isnan(d), len(names) - 1, index)
    return names[index]


def _label_values(series: pd.Series) -> np.ndarray:
    """A label column as ``object [N]`` strings, unknown values (empty, NaN) as None."""
    values = np.array(series.astype(str).to_numpy(dtype=object), dtype=object)
    missing = series.isna().to_numpy() | np.isin(values, list(UNKNOWN_LABELS))
    values[missing] = None
    return values


def derive_labels(
    table: pd.DataFrame, settings: Mapping[str, Any], block_labels: Sequence[str]
) -> tuple[list[str], dict[str, np.ndarray]]:
    """Label names probed, and their values ``object [N_file]`` (None = unknown)."""
    available = set(table.columns)
    if "tss_distance" in available:
        available.add("tss_bin")
    if settings["labels"] is None:
        wanted = list(dict.fromkeys([*block_labels, "peak_set", "region_class", "tss_bin"]))
        skipped = [name for name in wanted if name not in available]
        if skipped:
            log.warning("evaluate: no label column %s in the windows file; not probed", ", ".join(map(repr, skipped)))
        wanted = [name for name in wanted if name in available]
    else:
        wanted = list(dict.fromkeys(settings["labels"]))
        missing = [name for name in wanted if name not in available]
        if missing:
            raise SeqaeError(f"evaluate.labels: no label column {missing[0]!r} in the windows file")
    values: dict[str, np.ndarray] = {}
    for name in wanted:
        if name == "tss_bin" and "tss_bin" not in table.columns:
            values[name] = tss_distance_bins(table["tss_distance"].to_numpy(dtype=np.float64), settings["tss_bins"])
        else:
            values[name] = _label_values(table[name])
    return wanted, values


def known(values: np.ndarray) -> np.ndarray:
    """Mask of the rows of an ``object`` label array whose label is known (not None)."""
    return np.array([v is not None for v in values], dtype=bool)
