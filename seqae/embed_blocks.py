"""The model pass of ``seqae embed``: windows read in blocks (the next one in a thread) and run in batches.

A block is ``block_rows`` windows of the windows file (see
:func:`seqae.embed.block_rows_for`); its results come back to the host once,
as :class:`BlockOutput`.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from seqae import inference, runtime
from seqae.windows.reader import WindowReader


def prefetched_blocks(
    reader: WindowReader,
    rows: np.ndarray,
    block_rows: int,
    order: np.ndarray | None = None,
    positions: tuple[int, int] | None = None,
) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
    """``(lo, hi, seq, tracks)`` per block of selected windows ``order[lo:hi]`` (identity when None),
    the next block read in a thread while the caller works on this one. ``positions`` ``(first, end)``:
    only the blocks of those positions (a shard's, ``first`` a multiple of ``block_rows``)."""
    first, n = positions if positions is not None else (0, len(rows))

    def load(lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        if order is None:
            return reader.read(rows[lo:hi])
        idx = order[lo:hi]
        by_row = np.argsort(rows[idx], kind="stable")
        seq, tracks = reader.read(rows[idx][by_row])
        back = np.empty_like(by_row)
        back[by_row] = np.arange(len(by_row))
        return seq[back], tracks[back]

    starts = list(range(first, n, block_rows))
    if not starts:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefetch") as pool:
        pending = pool.submit(load, first, min(first + block_rows, n))
        for k, lo in enumerate(starts):
            hi = min(lo + block_rows, n)
            seq, tracks = pending.result()
            if k + 1 < len(starts):
                pending = pool.submit(load, hi, min(hi + block_rows, n))
            yield lo, hi, seq, tracks


@dataclass
class BlockOutput:
    """One block's results on the host, a row per window of the block."""

    latent: np.ndarray  # float32 [n, D]
    score: np.ndarray  # float32 [n]
    accuracy: np.ndarray  # float32 [n]
    tracks: np.ndarray | None  # float32 [n, T, L] on the stored scale, or None


class BlockRunner:
    """Runs the model over a block of stored windows in batches; results come back to the host once per block."""

    def __init__(self, model: Any, device: Any, window_len: int, batch_size: int, bar: Any, dtype: Any) -> None:
        """``dtype``: the autocast dtype of the model's calls (None: full fp32; see
        :func:`seqae.inference.precision_dtype`)."""
        self.model = model.eval()
        self.dtype = dtype
        self.device = device
        self.window_len = window_len
        self.batch_size = batch_size
        self.bar = bar

    def run(self, seq: np.ndarray, tracks: np.ndarray, want_tracks: bool) -> BlockOutput:
        """``seq uint8 [n, seq_len]``, ``tracks [n, T, seq_len]`` as stored -> outputs of the centre crops."""
        import torch

        model, device = self.model, self.device
        latents, scores, accuracies, recon = [], [], [], []
        with inference.inference_mode():
            # The block moves to the device once; each batch is cut from it there.
            slices = inference.batches(seq.shape[0], self.batch_size)
            for _, s, t in inference.device_batches(seq, tracks, slices, device, self.window_len, stage=True):
                with runtime.autocast(device, self.dtype):
                    # Autoregressive decoders: each base's logits given the true previous bases. The
                    # score is model.anomaly_score(s, t), from the same pass (one encoder pass, one
                    # decoder pass that also gives the chain's logits; the direct head is not run).
                    z, logits, tracks_pred, score = model.score_reconstruct(s, t)
                scores.append(score.float())
                accuracies.append(inference.window_accuracy(logits.argmax(1), s))
                latents.append(z.float())
                if want_tracks:
                    recon.append(model.tracks_to_stored(tracks_pred))
                self.bar.update(s.shape[0])
            host = [torch.cat(x).cpu().numpy() for x in (latents, scores, accuracies)]
            stored = torch.cat(recon).cpu().numpy() if want_tracks else None
        return BlockOutput(
            latent=host[0].astype(np.float32, copy=False),
            score=host[1].astype(np.float32, copy=False),
            accuracy=host[2].astype(np.float32, copy=False),
            tracks=stored,
        )


__all__ = ["BlockOutput", "BlockRunner", "prefetched_blocks"]
