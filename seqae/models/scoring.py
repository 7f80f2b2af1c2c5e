"""Anomaly scores of :class:`~seqae.models.autoencoder.SequenceAutoencoder`: how well the model describes a window.

The score of a window is its sequence's code length (nats per non-N base)
plus ``weights.tracks`` x the track error through the deterministic latent
(:func:`~seqae.models.objectives.reconstruction_error`). With an
autoregressive decoder that trains its own chain (``weights.chain`` > 0) the
sequence part is the chain's (latent off): at a real bottleneck the latent
costs more than it saves, so the chain is the shortest description the model
has of a window (README, "Which error is the anomaly score").
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from seqae.models.context_decoder import ContextDecoder
from seqae.models.decoder import SequenceDecoder
from seqae.models.objectives import reconstruction_error

__all__ = ["ScoringMixin"]


class ScoringMixin:
    """Scoring methods of :class:`~seqae.models.autoencoder.SequenceAutoencoder`.

    They use the model's ``_check_inputs``, ``_encode_both`` and
    ``encode_reconstruct``, and the attributes below (annotated only: a
    class-level value would shadow the submodules ``nn.Module`` keeps in its
    own registry).
    """

    settings: dict[str, Any]
    track_transform: str
    decoder: SequenceDecoder | ContextDecoder

    @property
    def chain_scores(self) -> bool:
        """Whether the sequence part of the anomaly score is the decoder's own chain's (latent off):
        an autoregressive decoder that trains its chain (``weights.chain`` > 0)."""
        return isinstance(self.decoder, ContextDecoder) and self.settings["weights"]["chain"] > 0

    def chain_reconstruct(self, seq: Tensor) -> tuple[Tensor, Tensor]:
        """The decoder's own chain (latent off, over ``decoder.context`` and ``decoder.reach`` bases):
        ``(seq_logits [B, 4, L], tracks_pred [B, T, L])``; its cross-entropy is the model's anomaly score."""
        if not isinstance(self.decoder, ContextDecoder):
            raise ValueError("the chain needs decoder.kind: autoregressive")
        return self.decoder.chain_forward(seq)

    def score_reconstruct(self, seq: Tensor, tracks: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """:meth:`encode_reconstruct` and :meth:`anomaly_score` of the same windows in one pass of the encoder
        and one of the decoder: ``(latent float32 [B, D], seq_logits [B, 4, L], tracks_pred [B, T, L],
        score float32 [B])``.

        Where the score is the decoder's chain's, the chain's logits come from the
        context features of the latent path's pass (the training pass does the
        same), rather than from a second pass over the windows; the direct head
        is not run. Same numbers as the two calls.
        """
        if not self.chain_scores:
            latent, seq_logits, tracks_pred = self.encode_reconstruct(seq, tracks)
            return latent, seq_logits, tracks_pred, self.window_score(seq, tracks, seq_logits, tracks_pred)
        latent, local = self._encode_both(seq, tracks)
        assert isinstance(self.decoder, ContextDecoder)
        out = self.decoder.forward_with_chain(seq, local, latent, chain=True, direct=False)
        score = self.window_score(seq, tracks, out.seq_logits, out.tracks_pred, chain_logits=out.chain_logits)
        return latent.float(), out.seq_logits, out.tracks_pred, score

    def anomaly_score(self, seq: Tensor, tracks: Tensor) -> Tensor:
        """Anomaly score per window, ``float32 [B]``: the sequence's code length (nats per non-N base)
        plus ``weights.tracks`` x the track error through the deterministic latent
        (:meth:`window_score`).

        Call ``model.eval()`` (and ``torch.inference_mode()``) for scoring.
        """
        self._check_inputs(seq, tracks)
        return self.score_reconstruct(seq, tracks)[3]

    def window_score(
        self, seq: Tensor, tracks: Tensor, seq_logits: Tensor, tracks_pred: Tensor, chain_logits: Tensor | None = None
    ) -> Tensor:
        """The anomaly score of windows already decoded: ``float32 [B]``.

        Args:
            seq: ``int [B, L]``; tracks: ``float [B, T, L]`` (the inputs).
            seq_logits, tracks_pred: the model's reconstruction of them (:meth:`reconstruct`).
            chain_logits: ``[B, 4, L]`` the chain's logits of the same windows when already computed
                (:meth:`score_reconstruct`); None runs the chain here where the score needs it.

        With an autoregressive decoder that trains its chain, the sequence part is
        the chain's cross-entropy (the latent off, one more pass of the decoder's
        context layers): at a real bottleneck the latent costs more than it saves,
        so the chain is the shortest description the model has of a window, and
        it tells windows from their shuffles far better than the error through the
        latent (README, "Which error is the anomaly score").
        """
        if self.chain_scores:
            seq_logits = chain_logits if chain_logits is not None else self.chain_reconstruct(seq)[0]
        return reconstruction_error(
            seq_logits,
            tracks_pred,
            seq,
            tracks,
            self.settings["track_loss"],
            self.track_transform,
            self.settings["weights"]["tracks"],
        )
