"""The sequence autoencoder: encoder, latent bottleneck (plain, VAE or VQ), decoder, heads and objectives.

Two decoders (``decoder.kind``): ``conv`` renders the window from the global
latent alone; ``autoregressive`` (:mod:`seqae.models.context_decoder`) renders
each base from its k previous bases, a local latent *sequence* (one VQ code
per ``downsample`` bases, ``local.enabled``) and the global blocks, and with
its latent switched off is the decoder's own order-k chain.

Loss (each term already weighted; ``w`` = ``settings["weights"]``)::

    seq            w.seq * cross-entropy per non-N base
    tracks         w.tracks * track loss (mse on stored values, or poisson on raw values)
    kl             w.kl * KL(q(z|x) || N(0, I)) in nats per window         (vae)
    vq_commitment  w.vq_commitment * sum over blocks of beta * ||z - sg(q)||^2   (vq)
    local_commitment  w.vq_commitment * beta * ||z - sg(q)||^2 of the local code sequence  (local.enabled)
    supervised     w.supervised * sum over labelled blocks of CE(head(block), its label)
    adversarial    sum over (block, other label) of CE(adversary(block), label)
                   (+ lambda * KL(label frequencies || adversary(block)) with the confusion objective,
                    + lambda * squared block-label correlations with the decorrelation objective)
    infomax        w.infomax * BCE of the (features, latent) discriminator   (infomax.enabled)
    cpc            w.cpc * InfoNCE of future-chunk prediction                (cpc.enabled)
    conversion_recon  w.conversion * cross-entropy of the converter's own reconstruction    (training only)
    conversion     w.conversion * sum over labelled blocks of CE(frozen head(frozen encoder(
                   bases drawn from the converter given swapped blocks)), donor's label)
                   (:mod:`seqae.models.conversion`; training only)

Adversaries: every block gets one adversarial head per label of the *other*
labelled blocks (the ``chrom`` block must not predict ``gene_family``, the
``gene`` block must not predict ``chrom``, an unlabelled ``residual`` block
must predict neither). The adversaries train at full strength (their
accuracy is the leak probe, also when ``w.adversarial`` is 0); the gradient
reversal in front of them hands the encoder ``-lambda`` times their gradient,
with ``lambda`` ramping from 0 to ``w.adversarial`` over
``adversarial_schedule.warmup_steps`` (sigmoid DANN ramp by default, see
:func:`~seqae.models.heads.adversarial_lambda`). With ``adversarial_objective:
confusion`` the encoder instead descends ``lambda`` times the KL from the label
frequencies to the adversary's prediction (bounded, zero once the block tells
the adversary nothing; :func:`~seqae.models.heads.confusion_loss`). With
``decorrelation`` it descends ``lambda`` times the squared correlations
between the block's coordinates and the label's classes on the batch
(:func:`~seqae.models.heads.label_correlation_loss`): zero exactly when no
linear read-out of the block carries the label, which is what the held-out
linear probes of the evaluation test.

The heads' push on the encoder is capped (``head_gradient_cap``, default 1):
their gradient on the latent is scaled down, per batch, to at most that
multiple of the decoder's gradient there (:func:`~seqae.models.heads.cap_head_gradient`).
The sequence term is a mean over the window's bases, so without the cap the
per-window head losses own the encoder and the sequence stays at its base
composition; the heads' own parameters always learn from their full loss.

Heads read the *deterministic* latent (the one :meth:`SequenceAutoencoder.encode`
returns: the VAE mean, the VQ quantised vector), because that is the
embedding whose blocks must be disentangled downstream; the decoder reads the
sampled latent for a VAE.

Metrics are detached 0-dim tensors so that a training step never waits for
the device; :meth:`ModelOutput.metric_floats` converts them in one transfer
when the trainer logs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from seqae.models.augment import corrupt
from seqae.models.bottleneck import BottleneckMixin, build_erasers, build_quantizers, erased_labels
from seqae.models.context_decoder import ContextDecoder, LocalLatent
from seqae.models.conversion import ConversionMixin, Converter
from seqae.models.decoder import SequenceDecoder
from seqae.models.decoder_terms import DecoderTermsMixin
from seqae.models.encoder import SequenceEncoder
from seqae.models.generation import GenerationMixin
from seqae.models.heads import cap_head_gradient
from seqae.models.layers import TowerShape
from seqae.models.layout import LatentLayout
from seqae.models.objectives import (
    TRACK_TRANSFORMS,
    CPCHead,
    InfoMaxDiscriminator,
    tracks_to_stored,
)
from seqae.models.quantize import training_options
from seqae.models.scoring import ScoringMixin
from seqae.models.settings import DEFAULT_MODEL_SETTINGS, MODEL_SETTINGS_HELP, SIZE_PRESETS, model_settings
from seqae.models.supervision import LabelHeadsMixin, build_label_heads
from seqae.models.variational import GaussianBottleneck

__all__ = [
    "DEFAULT_MODEL_SETTINGS",
    "MODEL_SETTINGS_HELP",
    "SIZE_PRESETS",
    "ModelOutput",
    "SequenceAutoencoder",
    "model_settings",
]


@dataclass
class ModelOutput:
    """What :meth:`SequenceAutoencoder.forward` returns.

    Attributes:
        latent: ``[B, D]`` deterministic latent (plain: encoder output; vae: posterior mean; vq: quantised).
        blocks: block name -> ``[B, size]`` views of ``latent``.
        seq_logits: ``[B, 4, L]`` per-base logits over A, C, G, T.
        tracks_pred: ``[B, T, L]`` track predictions (stored value for mse, log-rate for poisson).
        loss: scalar, the sum of ``losses`` (with gradient).
        losses: component name -> detached weighted scalar (see the module docstring).
        metrics: name -> detached 0-dim float tensor: ``seq_ce`` (nats per base),
            ``track_error``, ``supervised_acc/<block>``, ``adversary_acc/<block>/<label>``,
            ``grl_lambda``, ``kl/<block>`` (nats per window), ``vq_perplexity/<block>``,
            ``vq_usage/<block>``, ``vq_restarted/<block>``, ``infomax_acc``, ``cpc_acc``,
            ``head_gradient_scale`` (the factor ``head_gradient_cap`` applied to the
            heads' gradient on the latent, 1 when it did not bind; written by the
            backward pass, NaN before it; only when the cap is on and labels are given).
        codes: ``int64 [B, sum of groups]`` VQ code indices, blocks in layout order (vq only).
        local_codes: ``int64 [B, L']`` the local latent sequence's codes (``local.enabled`` only).
        chain_logits: ``[B, 4, L]`` the decoder's own chain (latent off) where the pass ran it
            (an autoregressive decoder with ``weights.chain`` > 0): what :meth:`window_score` reads.
    """

    latent: Tensor
    blocks: dict[str, Tensor]
    seq_logits: Tensor
    tracks_pred: Tensor
    loss: Tensor
    losses: dict[str, Tensor] = field(default_factory=dict)
    metrics: dict[str, Tensor] = field(default_factory=dict)
    codes: Tensor | None = None
    local_codes: Tensor | None = None
    chain_logits: Tensor | None = None

    def metric_floats(self) -> dict[str, float]:
        """``metrics`` and ``losses`` (as ``loss/<name>``) as Python floats, with one device transfer."""
        items = {**{f"loss/{k}": v for k, v in self.losses.items()}, "loss": self.loss.detach(), **self.metrics}
        device = self.loss.device
        values = torch.stack([v.detach().float().reshape(()).to(device) for v in items.values()]).tolist()
        return dict(zip(items, values, strict=True))


def _encoder(s: Mapping[str, Any], n_tracks: int, window_len: int, dim: int) -> SequenceEncoder:
    """The encoder of filled settings ``s``: ``D`` = ``dim`` outputs (``2 D``, mean and log-variance, for a VAE)."""
    return SequenceEncoder(
        n_tracks,
        2 * dim if s["kind"] == "vae" else dim,
        TowerShape.from_settings(s),
        downsample=s["downsample"],
        stem_kernel_size=s["stem_kernel_size"],
        pooling=s["pooling"],
        window_len=window_len,
        composition_k=s["composition_k"],
        scan_channels=s["scan"]["channels"],
        scan_kernel_size=s["scan"]["kernel_size"],
    )


def _local_latent(s: Mapping[str, Any]) -> LocalLatent | None:
    """The local latent sequence (``local.enabled``), quantised as the VQ settings say; else None."""
    local, vq = s["local"], s["vq"]
    if not local["enabled"]:
        return None
    return LocalLatent(s["channels"], local["dim"], local["codebook_size"], **training_options(vq))


def _decoder(
    s: Mapping[str, Any], n_tracks: int, window_len: int, dim: int, local: LocalLatent | None
) -> SequenceDecoder | ContextDecoder:
    """The decoder of ``decoder.kind``: convolutional from the ``dim`` latent, or autoregressive."""
    if s["decoder"]["kind"] != "autoregressive":
        return SequenceDecoder(
            dim, n_tracks, window_len, TowerShape.from_settings(s), s["downsample"], s["upsample_mode"]
        )
    dec = s["decoder"]
    return ContextDecoder(
        window_len,
        s["downsample"],
        s["local"]["dim"] if local is not None else 0,
        dim,
        n_tracks,
        context=dec["context"],
        hidden=dec["hidden"],
        n_layers=dec["n_layers"],
        latent_layers=dec["latent_layers"],
        reach=dec["reach"],
        reach_width=dec["reach_width"],
        latent_reach=dec["latent_reach"],
        direct=s["weights"]["direct"] > 0,
    )


class SequenceAutoencoder(
    BottleneckMixin, DecoderTermsMixin, LabelHeadsMixin, ConversionMixin, ScoringMixin, GenerationMixin, nn.Module
):
    """Autoencoder over one-hot DNA windows and their signal tracks, with a latent split into named blocks.

    Args:
        settings: model settings (partial; see :data:`DEFAULT_MODEL_SETTINGS` and
            :func:`model_settings`, which fills and validates them).
        n_tracks: T, number of signal tracks (0 allowed).
        window_len: L, window length the model reads and rebuilds (bp).
        label_classes: label column -> number of classes, for every label named in ``blocks``.
        track_transform: the windows file's ``track_transform`` (``log1p`` or ``none``);
            the Poisson track loss inverts it.
        nested_labels: ``(fine, coarse)`` label pairs where the fine label tells the coarse
            one (:func:`~seqae.models.layout.nested_labels`). A block is neither
            adversarially guarded against nor erased of a label nested with its own,
            either way round: that would take its own label away.

    Raises:
        ConfigError: invalid settings.
        ValueError: a block's label is missing from ``label_classes``.

    ``init_kwargs`` holds the arguments (settings filled in) for a checkpoint.

    The methods come in groups, one module each: the bottleneck and the label
    erasure (:class:`~seqae.models.bottleneck.BottleneckMixin`), the decoder's pass
    and loss terms (:class:`~seqae.models.decoder_terms.DecoderTermsMixin`), the label
    heads' losses (:class:`~seqae.models.supervision.LabelHeadsMixin`), the anomaly
    scores (:class:`~seqae.models.scoring.ScoringMixin`) and decoding from latents
    alone (:class:`~seqae.models.generation.GenerationMixin`). The submodules are
    all attributes of this class, so their names are the checkpoints' keys.
    """

    def __init__(
        self,
        settings: Mapping[str, Any] | None,
        n_tracks: int,
        window_len: int,
        label_classes: Mapping[str, int] | None = None,
        track_transform: str = "log1p",
        nested_labels: Sequence[Sequence[str]] | None = None,
    ):
        super().__init__()
        if track_transform not in TRACK_TRANSFORMS:
            raise ValueError(f"track_transform must be one of {TRACK_TRANSFORMS}, got {track_transform!r}")
        s = model_settings(settings)
        self.settings = s
        self.kind: str = s["kind"]
        self.n_tracks = n_tracks
        self.window_len = window_len
        self.label_classes = dict(label_classes or {})
        self.track_transform = track_transform
        self.init_kwargs: dict[str, Any] = {
            "settings": s,
            "n_tracks": n_tracks,
            "window_len": window_len,
            "label_classes": self.label_classes,
            "track_transform": track_transform,
            "nested_labels": [list(p) for p in nested_labels or []],
        }
        nested = {(a, b) for a, b in nested_labels or []}
        self.layout = LatentLayout({name: b["size"] for name, b in s["blocks"].items()})
        self.block_labels: dict[str, str] = {n: b["label"] for n, b in s["blocks"].items() if b["label"] is not None}
        missing = sorted({label for label in self.block_labels.values() if label not in self.label_classes})
        if missing:
            raise ValueError(f"label_classes has no class count for label(s) {missing} named in the latent blocks")
        dim = self.layout.dim
        # Made in this order: each submodule draws its initial weights from the torch RNG,
        # so another order would give another model for the same seed.
        self.encoder = _encoder(s, n_tracks, window_len, dim)
        self.autoregressive = s["decoder"]["kind"] == "autoregressive"
        self.local: LocalLatent | None = _local_latent(s)
        self.decoder: SequenceDecoder | ContextDecoder = _decoder(s, n_tracks, window_len, dim, self.local)
        self.variational = GaussianBottleneck(self.layout) if self.kind == "vae" else None
        self.quantizers = build_quantizers(self.layout, s["vq"]) if self.kind == "vq" else None
        self.supervised_heads, self.adversaries, self.adversary_pairs = build_label_heads(
            self.layout, self.block_labels, self.label_classes, s["head_hidden"], nested
        )
        # Linear erasure of the same (block, foreign label) pairs the adversaries guard
        # (only the unlabelled blocks' with erasure.labelled_blocks false).
        self.erased_labels = erased_labels(self.adversary_pairs, self.block_labels, s["erasure"]["labelled_blocks"])
        self.erasers = build_erasers(self.layout, self.erased_labels, self.label_classes, s["erasure"])
        channels = s["channels"]
        self.infomax = InfoMaxDiscriminator(channels, dim, s["infomax"]["hidden"]) if s["infomax"]["enabled"] else None
        cpc = s["cpc"]
        self.cpc = (
            CPCHead(channels, cpc["n_future"], cpc["chunk"] // s["downsample"], cpc["dim"]) if cpc["enabled"] else None
        )
        # Made last, so that every other part starts from the same weights as without it.
        self.converter = (
            Converter(s["decoder"]["hidden"], dim, s["decoder"]["n_layers"])
            if s["weights"]["conversion"] > 0 and self.autoregressive
            else None
        )

    # ------------------------------------------------------------------ pieces

    @property
    def latent_dim(self) -> int:
        """D."""
        return self.layout.dim

    def _device(self) -> torch.device:
        return next(self.parameters()).device

    def _check_inputs(self, seq: Tensor, tracks: Tensor) -> None:
        if seq.dim() != 2 or seq.shape[-1] != self.window_len:
            raise ValueError(f"seq must be [B, {self.window_len}] (crop windows first), got {tuple(seq.shape)}")
        if tracks.dim() != 3 or tracks.shape[1] != self.n_tracks or tracks.shape[-1] != self.window_len:
            raise ValueError(f"tracks must be [B, {self.n_tracks}, {self.window_len}], got {tuple(tracks.shape)}")

    # ------------------------------------------------------------------ public API

    def forward(
        self, seq: Tensor, tracks: Tensor, labels: Mapping[str, Tensor] | None = None, step: int = 0
    ) -> ModelOutput:
        """One training (or evaluation) pass.

        Args:
            seq: ``int [B, L]`` base codes, already cropped to ``window_len``.
            tracks: ``float [B, T, L]`` signal on the stored transform.
            labels: label column -> ``int64 [B]`` class codes, -1 = unknown (ignored).
                Without labels there are no head losses.
            step: training step, for the adversarial ramp.

        In training mode a denoising model corrupts its inputs (targets stay
        clean), a VAE samples its latent and VQ codebooks update; in eval mode
        none of that happens.
        """
        self._check_inputs(seq, tracks)
        s = self.settings
        w = s["weights"]
        x_seq, x_tracks = seq, tracks
        if self.training and s["denoise"]["enabled"]:
            d = s["denoise"]
            x_seq, x_tracks = corrupt(seq, tracks, d["substitution_rate"], d["mask_rate"], d["track_noise"])
        h, features = self.encoder(x_seq, x_tracks)
        b = self._bottleneck(h, sample=self.training, update=self.training, labels=labels)
        decoder_input, head_input = b.decoder_input, b.latent
        metrics = dict(b.metrics)
        if labels and s["head_gradient_cap"] > 0 and torch.is_grad_enabled():
            # Filled by the backward pass (NaN until then): the factor the cap applied to the heads' gradient.
            applied = torch.full((), float("nan"), device=decoder_input.device)
            decoder_input, head_input = cap_head_gradient(decoder_input, head_input, s["head_gradient_cap"], applied)
            metrics["head_gradient_scale"] = applied
        out, local_codes, local_q = self._decoder_pass(seq, features, decoder_input, b, metrics)
        terms = self._reconstruction_terms(seq, tracks, out, b.losses, metrics)
        blocks = self.layout.split(head_input)
        if labels:
            terms.update(self._head_terms(blocks, labels, step, metrics))
        if self.infomax is not None:
            loss, acc = self.infomax(features, b.latent)
            terms["infomax"] = w["infomax"] * loss
            metrics["infomax_acc"] = acc.detach()
        if self.cpc is not None:
            loss, acc = self.cpc(features)
            terms["cpc"] = w["cpc"] * loss
            metrics["cpc_acc"] = acc.detach()
        if self.converter is not None and self.training:
            terms.update(self._conversion_terms(seq, decoder_input, local_q, labels, out.direct_positions, metrics))
        total = torch.stack([t.float() for t in terms.values()]).sum()
        return ModelOutput(
            latent=b.latent,
            blocks=blocks,
            seq_logits=out.seq_logits,
            tracks_pred=out.tracks_pred,
            loss=total,
            losses={k: v.detach() for k, v in terms.items()},
            metrics=metrics,
            codes=b.codes,
            local_codes=local_codes,
            chain_logits=out.chain_logits,
        )

    def encode(self, seq: Tensor, tracks: Tensor) -> Tensor:
        """Deterministic embedding ``float32 [B, D]``: plain encoder output, VAE mean, or VQ quantised vector.

        No corruption, no sampling, no codebook update. Call ``model.eval()`` first
        so that BatchNorm uses its running statistics. Accepts any length L.
        """
        h, _ = self.encoder(seq, tracks)
        return self._bottleneck(h, sample=False, update=False).latent.float()

    def encode_local(self, seq: Tensor, tracks: Tensor) -> Tensor | None:
        """The local latent sequence's codes ``int64 [B, L']`` (None without ``local.enabled``); no codebook update."""
        if self.local is None:
            return None
        _, features = self.encoder(seq, tracks)
        return self.local(features, update=False).codes

    def _encode_both(self, seq: Tensor, tracks: Tensor) -> tuple[Tensor, Tensor | None]:
        """(deterministic global latent [B, D], local code vectors [B, d, L'] or None), one encoder pass."""
        h, features = self.encoder(seq, tracks)
        latent = self._bottleneck(h, sample=False, update=False).latent
        local = self.local(features, update=False).quantized if self.local is not None else None
        return latent, local

    def decode(self, latent: Tensor) -> tuple[Tensor, Tensor]:
        """``latent [B, D]`` -> ``(seq_logits [B, 4, L], tracks_pred [B, T, L])`` (see :class:`ModelOutput`).

        Convolutional decoder only: an autoregressive decoder needs the bases it
        conditions on (:meth:`reconstruct`) or decodes base after base
        (:meth:`decode_bases`).
        """
        if latent.shape[-1] != self.latent_dim:
            raise ValueError(f"latent must be [B, {self.latent_dim}], got {tuple(latent.shape)}")
        if self.autoregressive:
            raise ValueError(
                "decode(latent) needs the convolutional decoder; this model decodes autoregressively "
                "(use reconstruct(seq, tracks) for teacher-forced logits or decode_bases(latent, local_codes))"
            )
        return self.decoder(latent)

    def reconstruct(self, seq: Tensor, tracks: Tensor, latent_off: bool = False) -> tuple[Tensor, Tensor]:
        """Deterministic encode + decode of windows: ``(seq_logits [B, 4, L], tracks_pred [B, T, L])``.

        For the autoregressive decoder the logits of each base are given the
        true previous bases (teacher forcing): their cross-entropy is the
        window's code length under the model, in nats per base.

        Args:
            latent_off: decode with the whole latent switched off (autoregressive
                decoder only): the latent path's no-latent counterpart, the baseline of
                the latent's contribution (the decoder's chain, or its order-k chain
                where the latent path reads no reach).
        """
        if not latent_off:
            _, seq_logits, tracks_pred = self.encode_reconstruct(seq, tracks)
            return seq_logits, tracks_pred
        if not isinstance(self.decoder, ContextDecoder):
            raise ValueError("latent_off needs decoder.kind: autoregressive")
        # No latent is read, so the encoder is not run.
        return self.decoder.baseline_forward(seq)

    def encode_reconstruct(self, seq: Tensor, tracks: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """:meth:`encode` and :meth:`reconstruct` in one encoder pass: ``(latent [B, D], seq_logits, tracks_pred)``."""
        if not self.autoregressive:
            latent = self.encode(seq, tracks)
            return (latent, *self.decode(latent))
        latent, local = self._encode_both(seq, tracks)
        assert isinstance(self.decoder, ContextDecoder)
        seq_logits, tracks_pred = self.decoder(seq, local, latent)
        return latent.float(), seq_logits, tracks_pred

    def tracks_to_stored(self, tracks_pred: Tensor) -> Tensor:
        """Decoder track output -> the windows file's stored scale (float32)."""
        return tracks_to_stored(tracks_pred, self.settings["track_loss"], self.track_transform)
