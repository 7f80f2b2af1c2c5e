"""Bases from latents alone for :class:`~seqae.models.autoencoder.SequenceAutoencoder`: block swaps and prior samples.

Teacher-forced logits (:meth:`~seqae.models.autoencoder.SequenceAutoencoder.reconstruct`)
see the true previous bases; the methods here decode from the latent alone:
the convolutional decoder in one pass, the autoregressive decoder base after
base (or in one pass through its direct head).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from seqae.models.context_decoder import ContextDecoder, LocalLatent
from seqae.models.decoder import SequenceDecoder, bases_from_logits
from seqae.models.variational import GaussianBottleneck

__all__ = ["GenerationMixin"]


class GenerationMixin:
    """Decoding and sampling methods of :class:`~seqae.models.autoencoder.SequenceAutoencoder`.

    They use the model's ``decode``, ``tracks_to_stored``
    and ``_device``, and the attributes below (annotated only: a class-level
    value would shadow the submodules ``nn.Module`` keeps in its own registry).
    """

    settings: dict[str, Any]
    kind: str
    window_len: int
    autoregressive: bool
    decoder: SequenceDecoder | ContextDecoder
    local: LocalLatent | None
    variational: GaussianBottleneck | None

    def decode_bases(
        self,
        latent: Tensor,
        local_codes: Tensor | None = None,
        sample: bool = True,
        generator: torch.Generator | None = None,
        autoregressive: bool | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Bases decoded from the latent alone: ``(bases int64 [B, L], seq_logits [B, 4, L], tracks_pred [B, T, L])``.

        A decoder with a direct head (``weights.direct`` > 0) rebuilds every base
        from the latent in one parallel pass; otherwise the autoregressive decoder
        decodes base after base, each given the bases decoded before it. The
        convolutional decoder draws every base from its logits independently
        (:func:`~seqae.models.decoder.bases_from_logits`).

        Args:
            latent: ``[B, D]`` global latent.
            local_codes: ``int64 [B, L']`` local codes (required when ``local.enabled``).
            sample: draw each base (True) or take the likeliest.
            generator: random generator on the model's device.
            autoregressive: True decodes base after base even with a direct head (generation);
                None: the direct head where there is one.
        """
        if not self.autoregressive:
            logits, tracks_pred = self.decode(latent)
            return bases_from_logits(logits, sample, generator), logits, tracks_pred
        local = None
        if self.local is not None:
            if local_codes is None:
                raise ValueError("this model has a local latent sequence: pass its codes (encode_local)")
            local = self.local.lookup(local_codes)
        assert isinstance(self.decoder, ContextDecoder)
        if self.has_direct_head and not autoregressive:
            logits, tracks_pred = self.decoder.direct_forward(local, latent, latent.shape[0])
            return bases_from_logits(logits, sample, generator), logits, tracks_pred
        return self.decoder.sample(local, latent, latent.shape[0], greedy=not sample, generator=generator)

    @property
    def has_direct_head(self) -> bool:
        """Whether the decoder also rebuilds every base from the latent alone (``weights.direct`` > 0)."""
        return isinstance(self.decoder, ContextDecoder) and self.decoder.direct_head is not None

    @property
    def local_bits_per_base(self) -> float:
        """Capacity of the local latent sequence, ``log2(codebook_size) / downsample`` bits per base (0 without one)."""
        if self.local is None:
            return 0.0
        return math.log2(self.settings["local"]["codebook_size"]) / self.settings["downsample"]

    def generate(
        self, n: int, generator: torch.Generator | None = None, sample_bases: bool = True
    ) -> tuple[Tensor, Tensor]:
        """Sample ``n`` windows from a VAE's prior (call ``model.eval()`` first).

        Args:
            n: number of windows.
            generator: random generator on the model's device (None: the default one).
            sample_bases: draw each base from the decoder's softmax; False takes the most likely base.

        Returns:
            ``(seq_codes int64 [n, L]`` with values 0..3, ``tracks float32 [n, T, L]`` on the stored scale).

        Raises:
            ValueError: the model is not a VAE (a plain or VQ latent has no prior to sample).
        """
        if self.kind != "vae" or self.variational is None:
            raise ValueError(
                f"generate samples from the prior of a VAE; this model's kind is {self.kind!r} "
                "(set kind: vae, or decode latents you choose with decode())"
            )
        device = self._device()
        if generator is not None and generator.device.type != device.type:
            raise ValueError(f"generator is on {generator.device.type}, the model on {device.type}")
        z = self.variational.sample_prior(n, generator, device=device)
        local_codes = None
        if self.local is not None:
            # The local codes have no learnt prior: each is drawn from the codebook's running usage.
            positions = -(-self.window_len // self.settings["downsample"])
            frequencies = self.local.code_frequencies().to(device)
            local_codes = torch.multinomial(frequencies, n * positions, replacement=True, generator=generator)
            local_codes = local_codes.view(n, positions)
        # Drawn base after base: independent draws from a direct head would lose the chain's k-mers.
        bases, _, tracks_pred = self.decode_bases(z, local_codes, sample_bases, generator, autoregressive=True)
        return bases, self.tracks_to_stored(tracks_pred)
