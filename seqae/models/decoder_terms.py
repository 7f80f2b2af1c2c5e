"""The decoder's side of :meth:`SequenceAutoencoder.forward <seqae.models.autoencoder.SequenceAutoencoder.forward>`:
its pass over the windows and the reconstruction loss terms.

The convolutional decoder renders the windows from the latent alone. The
autoregressive one first has the local latent sequence quantised from the
encoder's features (``local.enabled``), then renders each base from its
previous bases and the latent, and runs its own chain (latent off) beside it
on the same context features (:meth:`~seqae.models.context_decoder.ContextDecoder.forward_with_chain`).
The loss terms are those of :mod:`seqae.models.autoencoder`'s docstring.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from seqae.models.bottleneck import Bottleneck
from seqae.models.context_decoder import ContextDecoder, DecoderPass, LocalLatent
from seqae.models.decoder import SequenceDecoder
from seqae.models.objectives import sequence_loss, track_loss

__all__ = ["DecoderTermsMixin"]


class DecoderTermsMixin:
    """The decoder's pass and loss terms of :class:`~seqae.models.autoencoder.SequenceAutoencoder`.

    The model holds the attributes below (annotated only: a class-level value
    would shadow the submodules ``nn.Module`` keeps in its own registry).
    """

    settings: dict[str, Any]
    n_tracks: int
    track_transform: str
    decoder: SequenceDecoder | ContextDecoder
    local: LocalLatent | None
    training: bool

    def _decoder_pass(
        self, seq: Tensor, features: Tensor, decoder_input: Tensor, b: Bottleneck, metrics: dict[str, Tensor]
    ) -> tuple[DecoderPass, Tensor | None, Tensor | None]:
        """The training (or evaluation) pass of the decoder: ``(its logits, local codes int64 [B, L'] or None,
        local code vectors float [B, d, L'] or None)``.

        An autoregressive decoder also quantises the local latent sequence from the
        encoder's ``features [B, C, L']`` (its commitment into ``b.losses``, its
        codebook's metrics into ``metrics``) and runs its own chain beside.
        """
        s = self.settings
        if not isinstance(self.decoder, ContextDecoder):
            seq_logits, tracks_pred = self.decoder(decoder_input)
            return DecoderPass(seq_logits, tracks_pred, None, None, None), None, None
        local_q = local_codes = None
        if self.local is not None:
            lo = self.local(features, update=self.training)
            local_q, local_codes = lo.quantized, lo.codes
            b.losses["local_commitment"] = lo.loss
            metrics["local_perplexity"] = lo.perplexity.detach()
            metrics["local_usage"] = lo.usage.detach()
            metrics["local_restarted"] = lo.restarted.detach().float()
        keep = None
        if self.training and s["local"]["latent_dropout"] > 0:
            # A share of windows is decoded without any latent, so the decoder also
            # learns its no-latent order-k chain: the baseline of the latent's contribution.
            keep = (torch.rand(seq.shape[0], device=seq.device) >= s["local"]["latent_dropout"]).float()
        # The decoder's own chain (latent off) is trained on every window beside the
        # latent path, so that the no-latent baseline of the latent's contribution, and
        # the chain's anomaly score, are fully trained rather than learnt from a share.
        direct_positions = None
        share = s["decoder"]["direct_positions"]
        if self.training and share < 1:
            # The direct head's loss is a mean over positions: a random share of them (new at
            # every step) estimates the same loss at that share of its cost. The chain is not
            # cut so: trained on an eighth, its anomaly AUROC fell under the Markov baseline's.
            length = seq.shape[1]
            direct_positions = torch.randperm(length, device=seq.device)[: max(1, round(share * length))]
        out = self.decoder.forward_with_chain(
            seq, local_q, decoder_input, keep, chain=s["weights"]["chain"] > 0, direct_positions=direct_positions
        )
        return out, local_codes, local_q

    def _reconstruction_terms(
        self,
        seq: Tensor,
        tracks: Tensor,
        out: DecoderPass,
        latent_losses: Mapping[str, Tensor],
        metrics: dict[str, Tensor],
    ) -> dict[str, Tensor]:
        """The weighted reconstruction terms (``seq``, ``chain``, ``direct``, ``tracks``) and the bottleneck's
        (``kl``, ``vq_commitment``, ``local_commitment``) of ``latent_losses``; cross-entropies into ``metrics``."""
        w = self.settings["weights"]
        terms: dict[str, Tensor] = {}
        seq_ce = sequence_loss(out.seq_logits, seq)
        terms["seq"] = w["seq"] * seq_ce
        metrics["seq_ce"] = seq_ce.detach()
        if out.chain_logits is not None:
            chain_ce = sequence_loss(out.chain_logits, seq)
            metrics["chain_ce"] = chain_ce.detach()
            if out.baseline_logits is not None:
                # The latent path's own no-latent counterpart (an order-k chain), trained beside.
                order_k_ce = sequence_loss(out.baseline_logits, seq)
                metrics["order_k_ce"] = order_k_ce.detach()
                chain_ce = chain_ce + order_k_ce
            terms["chain"] = w["chain"] * chain_ce
        if out.direct_logits is not None:
            direct_seq = seq if out.direct_positions is None else seq[:, out.direct_positions]
            direct_ce = sequence_loss(out.direct_logits, direct_seq)
            terms["direct"] = w["direct"] * direct_ce
            metrics["direct_ce"] = direct_ce.detach()
        if self.n_tracks:
            error = track_loss(out.tracks_pred, tracks, self.settings["track_loss"], self.track_transform)
            terms["tracks"] = w["tracks"] * error
            metrics["track_error"] = error.detach()
        if "kl" in latent_losses:
            terms["kl"] = w["kl"] * latent_losses["kl"]
        if "vq_commitment" in latent_losses:
            terms["vq_commitment"] = w["vq_commitment"] * latent_losses["vq_commitment"]
        if "local_commitment" in latent_losses:
            terms["local_commitment"] = w["vq_commitment"] * latent_losses["local_commitment"]
        return terms
