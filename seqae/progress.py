"""The terminal progress bar every long stage draws (extraction, training, evaluation, embedding, trees).

Kept apart from :mod:`seqae.runtime`, which needs torch: the data rules'
environment has none.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def progress_bar(total: int, desc: str, unit: str, enabled: bool = True, iterable: Iterable[Any] | None = None) -> Any:
    """The terminal progress bar of long work (a ``tqdm``): done, rate and ETA in ``unit``s.

    Every stage draws its bar here, so that they look and behave alike: the
    bar fits the terminal's width, refreshes at most once a second, and
    disappears when done (the stage logs its own summary line). Disabled
    (``enabled=False``, e.g. ``--quiet``), it draws nothing but still counts.

    Args:
        total: units of work in all.
        desc: what is running, shown first (e.g. ``"plain 3/8"``).
        unit: what one unit is (``"step"``, ``"window"``).
        iterable: wrap this iterable, as ``tqdm(iterable)`` does.
    """
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=not enabled, leave=False, dynamic_ncols=True,
                mininterval=1)  # fmt: skip
