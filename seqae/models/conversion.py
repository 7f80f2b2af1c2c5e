"""Conversion ("voice conversion") for :class:`~seqae.models.autoencoder.SequenceAutoencoder`: a renderer
of its own that decodes windows with other windows' labelled blocks, trained until the model's own frozen
encoder and heads read the donors' labels off the result.

Why. A block swap is judged by whether the decoded window reads as the donor's label to a
classifier that never saw the autoencoder. Reconstruction alone does not ask the decoder
for that: the local codes explain nearly every base, so the decoder leans on the global
blocks only as far as they lower the cross-entropy of the window's *own* bases, which is
little (swaps kept 98 % of the recipient's bases, and the judge found the donor's
chromosome in them hardly more often than in unswapped reconstructions). The converter
is trained for it, as StarGAN-VC trains its generator with a domain classifier:

* it reads what the direct head reads (the local codes' features ``u`` at every base and
  the global latent, both detached) through a FiLM and per-position layers of its own,
  and rebuilds the window's own bases (``conversion_recon``, at the positions the direct
  head is trained on), so that unswapped it is a reconstruction;
* ``conversion.windows`` windows of the batch (the recipients) each take every labelled
  block from a random other window of them (its donor, drawn per block), and the
  converter renders them;
* bases are drawn by straight-through Gumbel-softmax (hard one-hot forward, the softmax's
  gradient back; temperature ``conversion.temperature``), as swapped windows are drawn
  for the judge;
* the encoder, bottleneck, erasure and supervised heads read the drawn windows *frozen*
  (their parameters detached, batch norm on its running statistics, no codebook or
  eraser update), so they stay classifiers of real windows: the loss (``conversion``) is
  the heads' cross-entropy of each block's donor label.

Only the converter learns from either term, and it is a top-level part of the model, so
its gradient is clipped on its own (:func:`~seqae.training.optimizer.clip_groups`): the
autoencoder trains as without it. A first trial that trained the direct head itself to
convert, through the conditioning it shares with the latent path, moved the swap from
0.27 to 0.38 but took the latent path's gain over its order-k chain from 0.24 to 0.08
nats per base and the chain's corrected AUROC from 0.962 to 0.875.

Swaps and their judge's ceiling are then decoded by the converter
(:meth:`~seqae.models.generation.GenerationMixin.convert_bases`); the reconstruction at
the bottleneck is still the direct head's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call
from torch.nn import functional as F

from seqae.models.context_decoder import ContextDecoder, _Layer
from seqae.models.encoder import SequenceEncoder
from seqae.models.layout import LatentLayout
from seqae.models.objectives import masked_cross_entropy, sequence_loss

__all__ = ["ConversionMixin", "Converter", "swapped_blocks"]


class Converter(nn.Module):
    """Per-base logits from the local codes' features and the global latent: ``u [B, L, H], z [B, D] -> [B, 4, L]``.

    ``h = u * (1 + gamma) + beta`` with ``(gamma, beta)`` a FiLM of ``z`` (zero at
    initialisation), then ``n_layers`` residual per-position MLPs and a linear map to 4 logits:
    the direct head's shape, with parameters of its own.
    """

    def __init__(self, hidden: int, global_dim: int, n_layers: int):
        super().__init__()
        self.film = nn.Linear(global_dim, 2 * hidden)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)
        self.layers = nn.ModuleList(_Layer(hidden) for _ in range(n_layers))
        self.head = nn.Linear(hidden, 4)

    def forward(self, u: Tensor, global_latent: Tensor) -> Tensor:
        gamma, beta = self.film(global_latent).unsqueeze(1).chunk(2, dim=-1)  # [B, 1, H] each
        h = u * (1 + gamma) + beta
        for layer in self.layers:
            h = layer(h)
        return self.head(F.layer_norm(h, h.shape[-1:])).transpose(1, 2)


def swapped_blocks(
    layout: LatentLayout, latent: Tensor, blocks: Mapping[str, str], generator: torch.Generator | None = None
) -> tuple[Tensor, dict[str, Tensor]]:
    """Every labelled block of each row replaced by that of a random row (its donor, drawn per block).

    Args:
        layout: the latent's blocks.
        latent: ``[N, D]``.
        blocks: labelled block -> its label.
        generator: for the donor draws (on ``latent``'s device).

    Returns:
        ``(swapped [N, D], block -> donor rows int64 [N])``.
    """
    n = latent.shape[0]
    donors = {b: torch.randperm(n, device=latent.device, generator=generator) for b in blocks}
    parts = layout.split(latent)
    swapped = torch.cat([parts[b][donors[b]] if b in donors else parts[b] for b in layout.names], dim=-1)
    return swapped, donors


def _frozen(module: nn.Module) -> dict[str, Tensor]:
    """``module``'s parameters and buffers, detached: a functional call with them passes gradient to its inputs only."""
    return {k: v.detach() for k, v in [*module.named_parameters(), *module.named_buffers()]}


class ConversionMixin:
    """The converter's loss terms and decoding for :class:`~seqae.models.autoencoder.SequenceAutoencoder`
    (see the module docstring).

    The model holds the attributes below (annotated only: a class-level value
    would shadow the submodules ``nn.Module`` keeps in its own registry).
    """

    settings: dict[str, Any]
    layout: LatentLayout
    block_labels: dict[str, str]
    encoder: SequenceEncoder
    decoder: Any
    supervised_heads: nn.ModuleDict
    converter: Converter | None

    def _converter_features(self, local: Tensor | None, batch: int) -> Tensor:
        """The local codes' features at every base, ``[B, L, H]``, without gradient (the decoder's ``u``)."""
        assert isinstance(self.decoder, ContextDecoder)
        with torch.no_grad():
            return self.decoder._latent_features(local, batch, self.decoder.context_table.weight.dtype)

    def _conversion_terms(
        self,
        seq: Tensor,
        decoder_input: Tensor,
        local: Tensor | None,
        labels: Mapping[str, Tensor] | None,
        positions: Tensor | None,
        metrics: dict[str, Tensor],
    ) -> dict[str, Tensor]:
        """The converter's weighted terms: ``conversion_recon`` (its cross-entropy on the windows' own
        bases) and, with labels, ``conversion`` (the frozen heads' cross-entropy of the donors' labels).

        Args:
            seq: ``int [B, L]`` the windows' bases (the targets of ``conversion_recon``).
            decoder_input: ``[B, D]`` the latent the decoder read (erased; sampled for a VAE).
            local: ``float [B, d, L']`` the local code vectors (None without a local latent).
            labels: label column -> ``int64 [B]``, -1 = unknown; None: no conversion term.
            positions: ``int64 [M]`` positions ``conversion_recon`` is computed at (None: all).
            metrics: ``conversion_recon_ce`` and ``conversion_acc`` (donor labels read off the
                converted windows) are written into it.
        """
        assert self.converter is not None
        s = self.settings
        w = s["weights"]["conversion"]
        batch = seq.shape[0]
        latent = decoder_input.detach()
        local = None if local is None else local.detach()
        u = self._converter_features(local, batch)
        own = self.converter(u if positions is None else u[:, positions], latent)
        recon = sequence_loss(own, seq if positions is None else seq[:, positions])
        metrics["conversion_recon_ce"] = recon.detach()
        terms = {"conversion_recon": w * recon}
        blocks = {b: lab for b, lab in self.block_labels.items() if labels and lab in labels}
        n = min(s["conversion"]["windows"], batch)
        if not blocks or n < 2 or labels is None:
            return terms
        swapped, donors = swapped_blocks(self.layout, latent[:n], blocks)
        logits = self.converter(u[:n], swapped)
        drawn = F.gumbel_softmax(logits.float(), tau=s["conversion"]["temperature"], hard=True, dim=1)
        tracks = None
        if self.encoder.n_tracks:
            with torch.no_grad():  # the tracks the decoder predicts for the recipient: the swap changes bases only
                gamma, beta = self.decoder._film(latent[:n], n, seq.device)
                tracks = self.tracks_to_stored(self.decoder._tracks(u[:n], gamma, beta))  # type: ignore[attr-defined]
        was_training = self.encoder.training
        self.encoder.eval()  # batch norm on its running statistics, as for real windows at evaluation
        try:
            h, _ = functional_call(self.encoder, _frozen(self.encoder), (None, tracks), {"bases": drawn})
        finally:
            self.encoder.train(was_training)
        # No sampling, no codebook or eraser update: the embedding a probe reads, erased where erasure is on.
        parts = self.layout.split(self._bottleneck(h, sample=False, update=False).latent)  # type: ignore[attr-defined]
        losses, hits = [], []
        for block, label in blocks.items():
            head = self.supervised_heads[block]
            target = labels[label][:n][donors[block]]
            loss, acc = masked_cross_entropy(functional_call(head, _frozen(head), (parts[block],)), target)
            losses.append(loss)
            hits.append(acc)
        metrics["conversion_acc"] = torch.stack(hits).mean().detach()
        terms["conversion"] = w * torch.stack(losses).sum()
        return terms

    def convert_logits(self, latent: Tensor, local: Tensor | None) -> Tensor:
        """The converter's logits ``[B, 4, L]`` for global latents ``[B, D]`` and local code vectors ``[B, d, L']``."""
        if self.converter is None:
            raise ValueError("this model has no converter (weights.conversion is 0)")
        return self.converter(self._converter_features(local, latent.shape[0]), latent)
