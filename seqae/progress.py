"""Progress on long work: the terminal bar every long stage draws (extraction, training,
evaluation, embedding, trees), the log lines that stand in for it in a pipeline job, and
durations for a person.

Kept apart from :mod:`seqae.runtime`, which needs torch: the data rules'
environment has none.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable
from typing import Any

log = logging.getLogger("seqae")

#: Where bars are off (a pipeline job writes to its log), long work logs a line at most this often.
LOG_EVERY_SECONDS = 60.0


def duration(seconds: float) -> str:
    """A duration for a person: "40 s", "7 min", "1.5 h"."""
    if not math.isfinite(seconds):
        return "?"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


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


class PhaseProgress:
    """Progress of one phase of long work: a bar on a terminal, log lines in a pipeline job.

    With ``enabled`` it draws :func:`progress_bar`. Without (``--quiet``, as
    the workflow's rules run seqae), it logs a line at most once every
    ``LOG_EVERY_SECONDS`` while the phase runs (done, rate, ETA and the
    latest figures) and one when it ends, so that a job's log shows where a
    long fit is. Use as a context manager, calling :meth:`update` per unit.

    Args:
        total: units of the phase.
        desc: what runs (e.g. ``"trees n=100 x20 ML search"``).
        unit: what one unit is (``"round"``).
    """

    def __init__(self, total: int, desc: str, unit: str, enabled: bool = True):
        self.total, self.desc, self.unit, self.enabled = total, desc, unit, enabled
        self.bar = progress_bar(total, desc, unit, enabled)
        self.done = 0
        self.figures: dict[str, str] = {}
        self.start = self.last_line = time.perf_counter()

    def __enter__(self) -> PhaseProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(completed=exc[0] is None)

    def update(self, **figures: str) -> None:
        """One unit done; ``figures`` (name -> formatted value) are shown beside the bar and in the log lines."""
        self.done += 1
        self.figures = figures
        self.bar.update(1)
        if figures:
            self.bar.set_postfix(figures, refresh=False)
        now = time.perf_counter()
        if not self.enabled and self.done < self.total and now - self.last_line >= LOG_EVERY_SECONDS:
            self.last_line = now
            eta = duration((now - self.start) / self.done * (self.total - self.done))
            log.info("%s: %d/%d %ss, %s per %s, ETA %s%s", self.desc, self.done, self.total, self.unit,
                     duration((now - self.start) / self.done), self.unit, eta, self._figures())  # fmt: skip

    def close(self, completed: bool = True) -> None:
        """Remove the bar; without one, log the phase's time (only when it completed)."""
        self.bar.close()
        if not self.enabled and completed:
            log.info("%s: %d %s%s in %s%s", self.desc, self.done, self.unit, "" if self.done == 1 else "s",
                     duration(time.perf_counter() - self.start), self._figures())  # fmt: skip

    def _figures(self) -> str:
        return "".join(f", {name} {value}" for name, value in self.figures.items())
