"""Decoding from the latent alone with :class:`~seqae.models.context_decoder.ContextDecoder`: no true base is read.

Teacher forcing (:meth:`~seqae.models.context_decoder.ContextDecoder.forward`)
gives every position's logits in one pass because the true previous bases
are known. From the latent alone, the decoder either decodes base after base
(:meth:`LatentDecodingMixin.sample`), each base's context being the bases
decoded before it, or, with a direct head, rebuilds every base in one
parallel pass (:meth:`LatentDecodingMixin.direct_forward`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from seqae.models.context_decoder import CausalReach

__all__ = ["LatentDecodingMixin"]


class LatentDecodingMixin:
    """Free-running and direct decoding of :class:`~seqae.models.context_decoder.ContextDecoder`.

    They use the decoder's ``_conditioning``, ``_direct``, ``_tracks`` and
    ``_head``, and the attributes below (annotated only: a class-level value
    would shadow the submodules ``nn.Module`` keeps in its own registry).
    """

    window_len: int
    context: int
    n_contexts: int
    latent_reach: bool
    context_table: nn.Embedding
    reach: CausalReach | None

    def direct_forward(self, local: Tensor | None, global_latent: Tensor | None, batch: int) -> tuple[Tensor, Tensor]:
        """Every base from the latent alone, in one parallel pass: ``(logits [B, 4, L], tracks_pred [B, T, L])``.

        Raises:
            ValueError: the decoder has no direct head (``direct`` false).
        """
        device = self.context_table.weight.device
        u, gamma, beta = self._conditioning(local, global_latent, None, batch, device)
        direct = self._direct(u, gamma, beta)
        if direct is None:
            raise ValueError("this decoder has no direct head (weights.direct is 0)")
        return direct.transpose(1, 2), self._tracks(u, gamma, beta)

    @torch.no_grad()
    def sample(
        self,
        local: Tensor | None,
        global_latent: Tensor | None,
        batch: int,
        greedy: bool = False,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Decode from the latent alone, base after base (each base's context is the bases decoded before it).

        Args:
            local: ``float [B, d, L']`` or None; global_latent: ``float [B, D]`` or None.
            batch: B (needed when both are None).
            greedy: take the likeliest base at every step instead of drawing it.
            generator: random generator on the decoder's device for the draws.

        Returns:
            ``(bases int64 [B, L], seq_logits float32 [B, 4, L]`` (each step's logits),
            ``tracks_pred [B, T, L])``. One step per base, each vectorised over the batch.
        """
        device = self.context_table.weight.device
        u, gamma, beta = self._conditioning(local, global_latent, None, batch, device)
        length, k = self.window_len, self.context
        unknown = self.n_contexts - 1
        bases = torch.zeros(batch, length, dtype=torch.long, device=device)
        logits = torch.zeros(batch, 4, length, device=device)
        index = torch.zeros(batch, dtype=torch.long, device=device)
        table = self.context_table.weight
        buffers = self.reach.start(batch, device) if (self.reach is not None and self.latent_reach) else []
        previous = torch.full((batch,), 4, dtype=torch.long, device=device)
        for i in range(length):
            ctx = index if (k == 0 or i >= k) else torch.full_like(index, unknown)
            c = table[ctx]
            if self.reach is not None and self.latent_reach:
                c = c + self.reach.step(previous, i, buffers)
            h = (c + u[:, i]) * (1 + gamma[:, 0]) + beta[:, 0]
            step_logits = self._head(h).float()
            if greedy:
                base = step_logits.argmax(-1)
            else:
                base = torch.multinomial(torch.softmax(step_logits, -1), 1, generator=generator).squeeze(1)
            bases[:, i] = base
            logits[:, :, i] = step_logits
            previous = base
            if k:
                # The newest base becomes x[i-1] (weight 4^0), the others move up one power of 4
                # and x[i-k] drops out: the index context_index gives at position i + 1.
                index = (index % 4 ** (k - 1)) * 4 + base
        return bases, logits, self._tracks(u, gamma, beta)
