"""Metrics of one latent kind (the ``generative`` stage): a VAE's prior samples by k-mer spectrum,
a VQ model's codebook perplexity and usage.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from seqae.evaluation.data import EvaluationData, subsample
from seqae.inference import autocast, batches, inference_mode

__all__ = ["vae_spectra", "vq_usage"]


def vae_spectra(
    model: Any, data: EvaluationData, reconstructed: np.ndarray, cfg: Mapping[str, Any], device: torch.device
) -> dict[str, Any]:
    """k-mer spectrum distances: VAE prior samples, train windows and reconstructions, each vs the test windows.

    ``reconstructed uint8 [N, L]``: the test windows' reconstructions, bases
    drawn from the decoder's softmax as the prior samples' are (an arg-max
    window's spectrum is dominated by runs of its most likely base).
    """
    from seqae.metrics import kmer_spectrum_distance

    seed = cfg["seed"]
    n_gen = min(cfg["generate_n"], data.test_seq.shape[0])
    generator = torch.Generator(device=device).manual_seed(seed)
    parts = []
    with inference_mode(), autocast(device):
        for sl in batches(n_gen, cfg["batch_size"]):
            codes, _ = model.generate(sl.stop - sl.start, generator=generator)
            parts.append(codes.to(torch.uint8))
    generated = torch.cat(parts).cpu().numpy() if parts else np.zeros((0, data.test_seq.shape[1]), np.uint8)
    # Real vs real at the same sample size: the floor a generator can reach.
    reference = data.train_seq[
        subsample(np.arange(data.train_seq.shape[0]), max(n_gen, 1), np.random.default_rng([seed, 6]))
    ]
    ks = cfg["spectrum_k"] if isinstance(cfg["spectrum_k"], list) else [cfg["spectrum_k"]]
    return {
        "n_generated": int(n_gen),
        "spectrum_distance": {
            str(k): {
                "generated_vs_test": kmer_spectrum_distance(generated, data.test_seq, k) if n_gen else float("nan"),
                "train_vs_test": kmer_spectrum_distance(reference, data.test_seq, k),
                "reconstruction_vs_test": kmer_spectrum_distance(reconstructed, data.test_seq, k),
            }
            for k in ks
        },
    }


def vq_usage(model: Any, codes: np.ndarray) -> dict[str, Any]:
    """Per-block codebook perplexity and usage on the test windows (mean over each block's groups)."""
    from seqae.metrics import perplexity

    groups, size = model.settings["vq"]["n_groups"], model.settings["vq"]["codebook_size"]
    out: dict[str, Any] = {
        "codebook_size": size,
        "n_groups": groups,
        "perplexity": {},
        "usage": {},
        "perplexity_per_group": {},
    }
    for i, name in enumerate(model.layout.names):  # codes: blocks in layout order, n_groups columns each
        block = codes[:, i * groups : (i + 1) * groups]
        per_group = [perplexity(block[:, g], size) for g in range(groups)]
        out["perplexity"][name] = float(np.mean(per_group))
        out["usage"][name] = float(np.mean([np.unique(block[:, g]).size / size for g in range(groups)]))
        out["perplexity_per_group"][name] = per_group
    return out
