"""Model passes over windows, in batches and without gradients: latents, reconstructions and
anomaly scores; and the PCA baseline's embedding and reconstruction error.

How the model runs (batches moved to the device, inference mode, bf16 autocast
on CUDA only) is :mod:`seqae.inference`'s, as for ``seqae embed``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from seqae.inference import autocast, batches, device_batches, inference_mode
from seqae.progress import progress_bar

__all__ = ["encode_latents", "model_pass", "pca_apply", "score_windows"]


@inference_mode()
def model_pass(
    model: Any,
    seq: np.ndarray,
    tracks: np.ndarray,
    batch_size: int,
    device: torch.device,
    progress: bool,
    desc: str,
    sampler: torch.Generator | None = None,
) -> dict[str, np.ndarray | None]:
    """One eval-mode forward pass over windows, in batches; results gathered on the device, one transfer.

    Args:
        sampler: when given, a generator on ``device`` that also draws ``sampled`` bases.

    Returns:
        ``latent float32 [N, D]``, ``pred uint8 [N, L]`` (argmax bases),
        ``sampled uint8 [N, L]`` (bases drawn from the decoder's softmax; None without ``sampler``),
        ``tracks_pred float32 [N, T, L]`` (stored scale), ``score float32 [N]``
        (anomaly score, as ``model.anomaly_score``), ``seq_score float32 [N]``
        (its sequence part: cross-entropy per non-N base), ``codes int64 [N, G]`` (VQ) or None,
        ``local_codes int64 [N, L']`` (local latent sequence) or None and, for an autoregressive
        decoder, ``next_base_pred uint8 [N, L]`` (arg-max given the true previous bases; ``pred``
        and ``sampled`` are then decoded from the latent alone: by the direct head, or base after base).
    """
    from seqae.models.decoder import bases_from_logits

    parts: dict[str, list[torch.Tensor]] = {
        k: []
        for k in (
            "latent",
            "pred",
            "sampled",
            "tracks_pred",
            "score",
            "seq_score",
            "chain_seq_score",
            "codes",
            "local_codes",
            "next_base_pred",
        )
    }
    autoregressive = bool(getattr(model, "autoregressive", False))
    slices = batches(seq.shape[0], batch_size)
    on_device = device_batches(seq, tracks, slices, device)
    for _, x, t in progress_bar(len(slices), desc, "batch", progress, on_device):
        with autocast(device):  # bf16 on CUDA, none on the CPU
            out = model(x, t)
            parts["latent"].append(out.latent.float())
            if autoregressive:
                # Teacher-forced logits see the true previous bases: their arg-max is a
                # next-base prediction, not a reconstruction. Reconstructions are decoded
                # from the latent alone (the direct head, or base after base).
                parts["next_base_pred"].append(out.seq_logits.argmax(1).to(torch.uint8))
                if out.local_codes is not None:
                    parts["local_codes"].append(out.local_codes)
                greedy, _, _ = model.decode_bases(out.latent, out.local_codes, sample=False)
                parts["pred"].append(greedy.to(torch.uint8))
                if sampler is not None:
                    drawn, _, _ = model.decode_bases(out.latent, out.local_codes, sample=True, generator=sampler)
                    parts["sampled"].append(drawn.to(torch.uint8))
            else:
                parts["pred"].append(out.seq_logits.argmax(1).to(torch.uint8))
                if sampler is not None:
                    parts["sampled"].append(bases_from_logits(out.seq_logits, True, sampler).to(torch.uint8))
            parts["tracks_pred"].append(model.tracks_to_stored(out.tracks_pred).float())
            score, seq_score, chain_seq_score = _window_scores(
                model, out.seq_logits, out.tracks_pred, x, t, out.chain_logits
            )
            parts["score"].append(score)
            parts["seq_score"].append(seq_score)
            if chain_seq_score is not None:
                parts["chain_seq_score"].append(chain_seq_score)
            if out.codes is not None:
                parts["codes"].append(out.codes)
    result: dict[str, np.ndarray | None] = {}
    for key, values in parts.items():
        result[key] = torch.cat(values).cpu().numpy() if values else None
    return result


def _window_scores(
    model: Any,
    seq_logits: torch.Tensor,
    tracks_pred: torch.Tensor,
    x: torch.Tensor,
    t: torch.Tensor,
    chain_logits: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Anomaly score (as ``model.anomaly_score``), the sequence error through the latent and the
    chain's sequence error (None for a model whose score is not the chain's), ``float32 [B]`` each.

    The chain runs once per batch: its logits feed both the score and its own error.
    """
    from seqae.models.objectives import sequence_error

    chain_error = None
    if getattr(model, "chain_scores", False):
        if chain_logits is None:
            chain_logits = model.chain_reconstruct(x)[0]
        chain_error = sequence_error(chain_logits, x).float()
    score = model.window_score(x, t, seq_logits, tracks_pred, chain_logits=chain_logits)
    return score.float(), sequence_error(seq_logits, x).float(), chain_error


@inference_mode()
def encode_latents(
    model: Any, seq: np.ndarray, tracks: np.ndarray, batch_size: int, device: torch.device, progress: bool
) -> np.ndarray:
    """Deterministic latents ``float32 [N, D]`` (encoder only)."""
    parts = []
    slices = batches(seq.shape[0], batch_size)
    on_device = device_batches(seq, tracks, slices, device)
    for _, x, t in progress_bar(len(slices), "encode train", "batch", progress, on_device):
        with autocast(device):
            parts.append(model.encode(x, t))
    if not parts:
        return np.zeros((0, model.layout.dim), np.float32)
    return torch.cat(parts).cpu().numpy()


@inference_mode()
def score_windows(
    model: Any,
    seq: np.ndarray,
    tracks: np.ndarray,
    batch_size: int,
    device: torch.device,
    latent_off: bool = False,
    chain: bool = False,
    sequence_only: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Anomaly scores, their sequence-only part and the chain's sequence error, ``float32 [N]`` each
    (encode + decode in batches; the last None unless the model's score is its chain's).

    ``latent_off``: an autoregressive decoder's latent path with its latent switched off
    (the baseline of the latent's contribution); ``chain``: the decoder's own chain over
    its context and reach (the same unless the latent path reads no reach).
    ``sequence_only``: only the sequence error is wanted (the other two come back empty),
    which spares the chain's pass.
    """
    from seqae.models.objectives import sequence_error

    scores, seq_scores, chain_scores = [], [], []
    for _, x, t in device_batches(seq, tracks, batches(seq.shape[0], batch_size), device):
        with autocast(device):
            chain_logits = None
            if chain:
                seq_logits, tracks_pred = model.chain_reconstruct(x)
                chain_logits = seq_logits
            else:
                seq_logits, tracks_pred = model.reconstruct(x, t, latent_off=latent_off)
            if sequence_only:
                seq_scores.append(sequence_error(seq_logits, x).float())
                continue
            score, seq_score, chain_score = _window_scores(model, seq_logits, tracks_pred, x, t, chain_logits)
            scores.append(score)
            seq_scores.append(seq_score)
            if chain_score is not None:
                chain_scores.append(chain_score)
    if not seq_scores:
        return np.zeros(0, np.float32), np.zeros(0, np.float32), None
    if sequence_only:
        return np.zeros(0, np.float32), torch.cat(seq_scores).cpu().numpy(), None
    chained = torch.cat(chain_scores).cpu().numpy() if chain_scores else None
    return torch.cat(scores).cpu().numpy(), torch.cat(seq_scores).cpu().numpy(), chained


def pca_apply(pca: Any, codes: np.ndarray, block: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """PCA embedding ``float32 [N, K]`` and per-window reconstruction error (mean squared, one-hot) ``[N]``."""
    from seqae.metrics import one_hot

    n, length = codes.shape
    emb = np.zeros((n, pca.n_components_), np.float32)
    err = np.zeros(n, np.float64)
    for lo in range(0, n, block):  # blocks of rows bound the one-hot memory
        x = one_hot(codes[lo : lo + block]).reshape(-1, 4 * length)
        z = pca.transform(x)
        emb[lo : lo + block] = z
        err[lo : lo + block] = np.mean((pca.inverse_transform(z) - x) ** 2, axis=1)
    return emb, err
