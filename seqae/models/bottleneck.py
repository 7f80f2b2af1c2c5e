"""The latent bottleneck of :class:`~seqae.models.autoencoder.SequenceAutoencoder`: plain, VAE or VQ, then erasure.

The encoder's output ``h [B, D]`` becomes

* the *deterministic* latent (plain: ``h``; vae: the posterior mean; vq: the
  quantised vector), which the heads and the embeddings read, and
* the decoder's input (the same, but a posterior sample for a VAE),

and with ``erasure.enabled`` both leave with every block's foreign labels
erased (:class:`~seqae.models.erasure.BlockEraser`).

:class:`BottleneckMixin` holds the methods; the model keeps the submodules
(``variational``, ``quantizers``, ``erasers``) under its own attribute names,
which are the keys of its checkpoints' ``model_state``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from seqae.models.encoder import SequenceEncoder
from seqae.models.erasure import BlockEraser
from seqae.models.layout import LatentLayout
from seqae.models.quantize import VectorQuantizer, training_options
from seqae.models.variational import GaussianBottleneck

__all__ = ["Bottleneck", "BottleneckMixin", "build_erasers", "build_quantizers", "erased_labels"]


@dataclass
class Bottleneck:
    """What the bottleneck makes of one batch of encoder outputs.

    Attributes:
        latent: ``[B, D]`` deterministic latent.
        decoder_input: ``[B, D]`` what the decoder reads (a posterior sample for a VAE in training).
        losses: ``kl`` (nats per window, batch mean) or ``vq_commitment``, unweighted.
        metrics: ``kl/<block>``, or ``vq_perplexity/<block>``, ``vq_usage/<block>``, ``vq_restarted/<block>``.
        codes: ``int64 [B, sum of groups]`` VQ code indices, blocks in layout order (vq only).
    """

    latent: Tensor
    decoder_input: Tensor
    losses: dict[str, Tensor]
    metrics: dict[str, Tensor]
    codes: Tensor | None = None


def build_quantizers(layout: LatentLayout, vq: Mapping[str, Any]) -> nn.ModuleDict:
    """One :class:`~seqae.models.quantize.VectorQuantizer` per block (``vq``: the ``vq`` settings)."""
    return nn.ModuleDict(
        {
            name: VectorQuantizer(size, vq["codebook_size"], vq["n_groups"], **training_options(vq))
            for name, size in layout.sizes.items()
        }
    )


def erased_labels(
    adversary_pairs: Sequence[tuple[str, str, str]], block_labels: Mapping[str, str], labelled_blocks: bool
) -> dict[str, list[str]]:
    """Block -> the labels to erase from it: the same (block, foreign label) pairs the adversaries guard,
    only the unlabelled blocks' unless ``labelled_blocks`` (``erasure.labelled_blocks``)."""
    erased: dict[str, list[str]] = {}
    for _, block, label in adversary_pairs:
        if block in block_labels and not labelled_blocks:
            continue
        erased.setdefault(block, []).append(label)
    return erased


def build_erasers(
    layout: LatentLayout,
    erased: Mapping[str, Sequence[str]],
    label_classes: Mapping[str, int],
    erasure: Mapping[str, Any],
) -> nn.ModuleDict | None:
    """One :class:`~seqae.models.erasure.BlockEraser` per block of ``erased`` (see :func:`erased_labels`),
    or None without ``erasure.enabled`` (``erasure``: those settings) or without a label to erase."""
    if not erasure["enabled"] or not erased:
        return None
    return nn.ModuleDict(
        {
            block: BlockEraser(layout.sizes[block], [label_classes[label] for label in labels], erasure["momentum"])
            for block, labels in erased.items()
        }
    )


class BottleneckMixin:
    """The bottleneck's methods of :class:`~seqae.models.autoencoder.SequenceAutoencoder`.

    The model (an ``nn.Module``) holds the attributes below; they are only
    annotated here, never given class-level values, which would shadow the
    submodules that ``nn.Module`` keeps in its own registry.
    """

    kind: str
    layout: LatentLayout
    encoder: SequenceEncoder
    variational: GaussianBottleneck | None
    quantizers: nn.ModuleDict | None
    erasers: nn.ModuleDict | None
    erased_labels: dict[str, list[str]]

    def _bottleneck(
        self, h: Tensor, sample: bool, update: bool, labels: Mapping[str, Tensor] | None = None
    ) -> Bottleneck:
        """Encoder output -> deterministic latent, decoder input, latent losses (unweighted) and metrics.

        With ``erasure.enabled`` both latents leave with the foreign labels erased
        from every block; ``update`` and ``labels`` fold the batch into the erasers'
        running statistics first.
        """
        b = self._quantised_bottleneck(h, sample, update)
        if self.erasers is None:
            return b
        if update and labels:
            for block, part in self.layout.split(b.latent).items():
                foreign = self.erased_labels.get(block, [])
                if block in self.erasers and all(label in labels for label in foreign):
                    self.erasers[block].update(part, [labels[label] for label in foreign])
        erased = self._erase(b.latent)
        b.decoder_input = erased if b.decoder_input is b.latent else self._erase(b.decoder_input)
        b.latent = erased
        return b

    @torch.no_grad()
    def fit_erasers(self, batches: Iterable[tuple[Tensor, Tensor, Mapping[str, Tensor]]]) -> int:
        """Refit every eraser exactly on the given windows, in evaluation mode (no-op without erasure).

        The running statistics of training lag the encoder and come from training-mode
        passes; the embeddings a probe reads come from evaluation mode. The trainer
        calls this on all training windows at the end of every epoch.

        Args:
            batches: ``(seq int [B, L], tracks float [B, T, L], labels column -> int64 [B])``.

        Returns:
            The number of windows read.
        """
        if self.erasers is None:
            return 0
        was_training = self.training
        self.eval()
        for eraser in self.erasers.values():
            eraser.begin_fit()
        n = 0
        for seq, tracks, labels in batches:
            h, _ = self.encoder(seq, tracks)
            latent = self._quantised_bottleneck(h, sample=False, update=False).latent
            for block, part in self.layout.split(latent).items():
                if block in self.erasers:
                    self.erasers[block].accumulate(part, [labels[label] for label in self.erased_labels[block]])
            n += seq.shape[0]
        for eraser in self.erasers.values():
            eraser.end_fit()
        self.train(was_training)
        return n

    def _erase(self, latent: Tensor) -> Tensor:
        """``[B, D]`` latent with every block's foreign labels erased (:class:`BlockEraser`)."""
        assert self.erasers is not None
        parts = self.layout.split(latent)
        return self.layout.join(
            {block: self.erasers[block](part) if block in self.erasers else part for block, part in parts.items()}
        )

    def _quantised_bottleneck(self, h: Tensor, sample: bool, update: bool) -> Bottleneck:
        """Encoder output -> the bottleneck of ``kind`` (plain, VAE sample or VQ codes), before any erasure."""
        if self.kind == "plain":
            return Bottleneck(h, h, {}, {})
        if self.kind == "vae":
            assert self.variational is not None
            v = self.variational(h, sample=sample)
            metrics = {f"kl/{name}": kl.mean().detach() for name, kl in v.kl_blocks.items()}
            return Bottleneck(v.mean, v.z, {"kl": v.kl.mean()}, metrics)
        assert self.quantizers is not None
        parts, codes, metrics, commitment = {}, [], {}, []
        for name, part in self.layout.split(h).items():
            out = self.quantizers[name](part, update=update)
            parts[name] = out.quantized
            codes.append(out.codes)
            commitment.append(out.loss)
            metrics[f"vq_perplexity/{name}"] = out.perplexity.detach()
            metrics[f"vq_usage/{name}"] = out.usage.detach()
            metrics[f"vq_restarted/{name}"] = out.restarted.detach().float()
        latent = self.layout.join(parts)
        return Bottleneck(
            latent, latent, {"vq_commitment": torch.stack(commitment).sum()}, metrics, torch.cat(codes, 1)
        )
