"""The bigWigs of ``seqae embed``: reconstructed tracks as runs of owned bases, and the anomaly score.

Writing a per-base bigWig costs libBigWig about 0.4 ms per window and track
(compression and zoom levels, in one thread, holding the GIL), so for large
inputs each reconstructed track is written by its own process
(:class:`ProcessRunWriter`). Which bases a window writes is decided by
:mod:`seqae.embed_placement`.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from seqae.bigwig_writer import BigWigWriter
from seqae.embed_placement import Placement
from seqae.errors import SeqaeError

# Zoom levels of the bigWigs (libBigWig's default is 10). Each level costs
# writing time; 6 levels summarise down to ~4 kb per value, enough for a
# browser to draw a whole chromosome of windows without reading every base.
_ZOOM_LEVELS = 6


def run_writer_stdio() -> None:
    """Body of a writer process: ``(path, header)``, then runs, then None, pickled on stdin;
    answers ``ok`` or the error on stdout."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    try:
        path, header = pickle.load(stdin)
        writer = BigWigWriter(path, header, _ZOOM_LEVELS)
        while (message := pickle.load(stdin)) is not None:
            writer.add_runs(*message)
        writer.close()
        stdout.write(b"ok")
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises
        stdout.write(f"{type(exc).__name__}: {exc}".encode())
    stdout.flush()


class ProcessRunWriter:
    """A :class:`~seqae.bigwig_writer.BigWigWriter` of runs in a child process, so that several bigWigs compress at once.

    A plain ``python -c`` child fed pickles through its stdin: unlike
    ``multiprocessing`` it never re-imports the parent's ``__main__`` (scripts
    read from stdin, notebooks) and never forks a process holding CUDA state
    or threads. ``add`` blocks while the child is behind (pipe back-pressure);
    ``close`` waits until the file is complete.
    """

    def __init__(self, path: str | os.PathLike[str], header: list[tuple[str, int]]):
        self.path = path
        package_root = str(Path(__file__).resolve().parents[1])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from seqae.embed_bigwig import run_writer_stdio; run_writer_stdio()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        self.closed = False
        self._send((str(path), header))

    def _send(self, message: Any) -> None:
        try:
            pickle.dump(message, self.process.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            self._finish()  # the child stopped: raise its error
            raise SeqaeError(f"{self.path}: the bigWig writer process stopped early") from None

    def add_runs(self, *arrays: np.ndarray) -> None:
        self._send(arrays)

    def close(self) -> None:
        if not self.closed:
            self._send(None)
            self._finish()

    def _finish(self) -> None:
        self.closed = True
        with contextlib.suppress(OSError):
            self.process.stdin.close()
        answer = self.process.stdout.read().decode(errors="replace").strip()
        self.process.stdout.close()
        code = self.process.wait()
        if code != 0 or answer != "ok":
            raise SeqaeError(f"{self.path}: writing the bigWig failed ({answer or f'exit status {code}'})")

    def abandon(self) -> None:
        self.closed = True
        self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            with contextlib.suppress(OSError):
                stream.close()


@contextlib.contextmanager
def open_run_writer(path: Path, header: list[tuple[str, int]], own_process: bool) -> Iterator[Any]:
    """A run writer, abandoned (process stopped, file closed) when the block raises; the caller closes it."""
    writer = ProcessRunWriter(path, header) if own_process else BigWigWriter(path, header, _ZOOM_LEVELS)
    try:
        yield writer
    except BaseException:
        with contextlib.suppress(Exception):
            writer.abandon() if isinstance(writer, ProcessRunWriter) else writer.close()
        raise
    writer.close()


def send_tracks(writers: list[Any], placement: Placement, idx: np.ndarray, stored: np.ndarray, transform: str) -> None:
    """Owned bases of windows ``idx`` (genome order), tracks ``stored [n, T, L]`` -> one batch of runs per writer."""
    runs = track_runs(placement, idx, stored, transform)
    if runs is None:
        return
    chrom, start, length, values = runs
    for writer, track_values in zip(writers, values, strict=True):
        writer.add_runs(chrom, start, length, track_values)


def track_runs(
    placement: Placement, idx: np.ndarray, stored: np.ndarray, transform: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]] | None:
    """The bigWig runs of windows ``idx`` (genome order) from their tracks ``stored [n, T, L]``.

    Returns:
        ``(chrom, start, length, values)``: ``int64 [r]`` each, and per track ``float32 [sum(length)]``
        on the bigWig's scale; None when the windows own no base.
    """
    from seqae.tracks import invert_transform

    lo, hi = placement.own_start[idx], placement.own_end[idx]
    keep = hi > lo
    if not keep.any():
        return None
    idx, lo, hi, stored = idx[keep], lo[keep], hi[keep], stored[keep]
    chrom, start = placement.chrom[idx], placement.start[idx]
    offset = np.arange(stored.shape[-1])
    owned = (offset >= (lo - start)[:, None]) & (offset < (hi - start)[:, None])  # [n, L]
    # Consecutive windows whose owned bases abut form one run (one bigWig call).
    new_run = np.r_[True, (chrom[1:] != chrom[:-1]) | (lo[1:] != hi[:-1])]
    first = np.flatnonzero(new_run)
    length = np.add.reduceat(hi - lo, first)
    values = [
        invert_transform(stored[:, t, :][owned], transform).astype(np.float32, copy=False)
        for t in range(stored.shape[1])
    ]
    return chrom[first], lo[first], length, values


def write_anomaly_bigwig(path: Path, placement: Placement, scores: np.ndarray) -> None:
    """The score of each window as a constant over the bases it owns."""
    order = placement.order
    lo, hi = placement.own_start[order], placement.own_end[order]
    chrom, score = placement.chrom[order], scores[order].astype(np.float64)
    keep = (hi > lo) & np.isfinite(score)
    lo, hi, chrom, score = lo[keep], hi[keep], chrom[keep], score[keep]
    with BigWigWriter(path, placement.header, _ZOOM_LEVELS) as bw:
        bounds = np.r_[0, np.flatnonzero(np.diff(chrom)) + 1, len(chrom)]
        for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
            if b > a:
                bw.add_intervals(placement.header[int(chrom[a])][0], lo[a:b], hi[a:b], score[a:b])


__all__ = ["ProcessRunWriter", "open_run_writer", "send_tracks", "track_runs", "write_anomaly_bigwig"]
