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

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from seqae.models.augment import corrupt
from seqae.models.context_decoder import ContextDecoder, LocalLatent
from seqae.models.decoder import SequenceDecoder, bases_from_logits
from seqae.models.encoder import SequenceEncoder
from seqae.models.erasure import BlockEraser
from seqae.models.heads import (
    AdversarialHead,
    ClassifierHead,
    adversarial_lambda,
    cap_head_gradient,
    confusion_loss,
    label_correlation_loss,
)
from seqae.models.layout import LatentLayout
from seqae.models.objectives import (
    TRACK_TRANSFORMS,
    CPCHead,
    InfoMaxDiscriminator,
    masked_cross_entropy,
    reconstruction_error,
    sequence_loss,
    track_loss,
    tracks_to_stored,
)
from seqae.models.quantize import VectorQuantizer
from seqae.models.settings import DEFAULT_MODEL_SETTINGS, MODEL_SETTINGS_HELP, SIZE_PRESETS, model_settings
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


@dataclass
class _Bottleneck:
    latent: Tensor  # deterministic latent [B, D]
    decoder_input: Tensor  # what the decoder reads [B, D]
    losses: dict[str, Tensor]
    metrics: dict[str, Tensor]
    codes: Tensor | None = None


class SequenceAutoencoder(nn.Module):
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
        arch = {
            "channels": s["channels"],
            "n_res_blocks": s["n_res_blocks"],
            "kernel_size": s["kernel_size"],
            "dilations": tuple(s["dilations"]),
            "norm": s["norm"],
            "dropout": s["dropout"],
        }
        self.encoder = SequenceEncoder(
            n_tracks,
            2 * dim if self.kind == "vae" else dim,
            downsample=s["downsample"],
            stem_kernel_size=s["stem_kernel_size"],
            pooling=s["pooling"],
            window_len=window_len,
            composition_k=s["composition_k"],
            scan_channels=s["scan"]["channels"],
            scan_kernel_size=s["scan"]["kernel_size"],
            **arch,
        )
        self.autoregressive = s["decoder"]["kind"] == "autoregressive"
        vq = s["vq"]
        local = s["local"]
        self.local: LocalLatent | None = None
        if local["enabled"]:
            self.local = LocalLatent(
                s["channels"],
                local["dim"],
                local["codebook_size"],
                vq["commitment"],
                vq["decay"],
                vq["dead_code_steps"],
            )
        self.decoder: SequenceDecoder | ContextDecoder
        if self.autoregressive:
            dec = s["decoder"]
            self.decoder = ContextDecoder(
                window_len,
                s["downsample"],
                local["dim"] if self.local is not None else 0,
                dim,
                n_tracks,
                dec["context"],
                dec["hidden"],
                dec["n_layers"],
                dec["latent_layers"],
                dec["reach"],
                dec["reach_width"],
                dec["latent_reach"],
                direct=s["weights"]["direct"] > 0,
            )
        else:
            self.decoder = SequenceDecoder(
                dim, n_tracks, window_len, upsample=s["downsample"], upsample_mode=s["upsample_mode"], **arch
            )
        self.variational = GaussianBottleneck(self.layout) if self.kind == "vae" else None
        self.quantizers = (
            nn.ModuleDict(
                {
                    name: VectorQuantizer(
                        size, vq["codebook_size"], vq["n_groups"], vq["commitment"], vq["decay"], vq["dead_code_steps"]
                    )
                    for name, size in self.layout.sizes.items()
                }
            )
            if self.kind == "vq"
            else None
        )
        hidden = s["head_hidden"]
        self.supervised_heads = nn.ModuleDict(
            {
                block: ClassifierHead(self.layout.sizes[block], self.label_classes[label], hidden)
                for block, label in self.block_labels.items()
            }
        )
        # (module key, block, label): every block against every label that is not its own
        # and not nested with it.
        self.adversary_pairs: list[tuple[str, str, str]] = []
        self.adversaries = nn.ModuleDict()
        labels_in_order = list(dict.fromkeys(self.block_labels.values()))
        for block in self.layout.names:
            for label in labels_in_order:
                own = self.block_labels.get(block)
                if own == label or (own, label) in nested or (label, own) in nested:
                    continue
                key = f"{block}__{label}".replace(".", "_")
                self.adversaries[key] = AdversarialHead(
                    self.layout.sizes[block], self.label_classes[label], hidden, lambda_=0.0
                )
                self.adversary_pairs.append((key, block, label))
        # Linear erasure of the same (block, foreign label) pairs the adversaries guard
        # (only the unlabelled blocks' with erasure.labelled_blocks false).
        self.erased_labels: dict[str, list[str]] = {}
        for _, block, label in self.adversary_pairs:
            if block in self.block_labels and not s["erasure"]["labelled_blocks"]:
                continue
            self.erased_labels.setdefault(block, []).append(label)
        self.erasers = (
            nn.ModuleDict(
                {
                    block: BlockEraser(
                        self.layout.sizes[block],
                        [self.label_classes[label] for label in labels],
                        s["erasure"]["momentum"],
                    )
                    for block, labels in self.erased_labels.items()
                }
            )
            if s["erasure"]["enabled"] and self.erased_labels
            else None
        )
        channels = s["channels"]
        self.infomax = InfoMaxDiscriminator(channels, dim, s["infomax"]["hidden"]) if s["infomax"]["enabled"] else None
        cpc = s["cpc"]
        self.cpc = (
            CPCHead(channels, cpc["n_future"], cpc["chunk"] // s["downsample"], cpc["dim"]) if cpc["enabled"] else None
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

    def _bottleneck(
        self, h: Tensor, sample: bool, update: bool, labels: Mapping[str, Tensor] | None = None
    ) -> _Bottleneck:
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

    def _quantised_bottleneck(self, h: Tensor, sample: bool, update: bool) -> _Bottleneck:
        """Encoder output -> the bottleneck of ``kind`` (plain, VAE sample or VQ codes), before any erasure."""
        if self.kind == "plain":
            return _Bottleneck(h, h, {}, {})
        if self.kind == "vae":
            assert self.variational is not None
            v = self.variational(h, sample=sample)
            metrics = {f"kl/{name}": kl.mean().detach() for name, kl in v.kl_blocks.items()}
            return _Bottleneck(v.mean, v.z, {"kl": v.kl.mean()}, metrics)
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
        return _Bottleneck(
            latent, latent, {"vq_commitment": torch.stack(commitment).sum()}, metrics, torch.cat(codes, 1)
        )

    def _head_terms(
        self, blocks: Mapping[str, Tensor], labels: Mapping[str, Tensor], step: int, metrics: dict[str, Tensor]
    ) -> dict[str, Tensor]:
        """Supervised (weighted) and adversarial losses; accuracies into ``metrics``."""
        w = self.settings["weights"]
        terms: dict[str, Tensor] = {}
        supervised = []
        for block, label in self.block_labels.items():
            if label not in labels:
                continue
            loss, acc = masked_cross_entropy(self.supervised_heads[block](blocks[block]), labels[label])
            supervised.append(loss)
            metrics[f"supervised_acc/{block}"] = acc.detach()
        if supervised:
            terms["supervised"] = w["supervised"] * torch.stack(supervised).sum()
        schedule = self.settings["adversarial_schedule"]
        lam = adversarial_lambda(step, w["adversarial"], schedule["warmup_steps"], schedule["shape"])
        objective = self.settings["adversarial_objective"]
        adversarial = []
        for key, block, label in self.adversary_pairs:
            if label not in labels:
                continue
            head = self.adversaries[key]
            # Only gradient reversal passes the adversary's gradient back; with
            # the other objectives the adversary learns from its cross-entropy
            # (its accuracy stays the leak probe) and the encoder from the
            # confusion KL or the label correlations.
            head.set_lambda(lam if objective == "reversal" else 0.0)
            loss, acc = masked_cross_entropy(head(blocks[block]), labels[label])
            if objective == "confusion":
                loss = loss + lam * confusion_loss(head.encoder_logits(blocks[block]), labels[label])
            elif objective == "decorrelation":
                loss = loss + lam * label_correlation_loss(blocks[block], labels[label], self.label_classes[label])
            adversarial.append(loss)
            metrics[f"adversary_acc/{block}/{label}"] = acc.detach()
        if adversarial:
            terms["adversarial"] = torch.stack(adversarial).sum()
            metrics["grl_lambda"] = torch.full((), lam, device=terms["adversarial"].device)
        return terms

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
        local_codes = None
        if self.autoregressive:
            local_q = None
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
            out = self.decoder.forward_with_chain(seq, local_q, decoder_input, keep, chain=w["chain"] > 0)
            seq_logits, tracks_pred = out.seq_logits, out.tracks_pred
            chain_logits, baseline_logits, direct_logits = out.chain_logits, out.baseline_logits, out.direct_logits
        else:
            seq_logits, tracks_pred = self.decoder(decoder_input)
            chain_logits = baseline_logits = direct_logits = None

        terms: dict[str, Tensor] = {}
        seq_ce = sequence_loss(seq_logits, seq)
        terms["seq"] = w["seq"] * seq_ce
        metrics["seq_ce"] = seq_ce.detach()
        if chain_logits is not None:
            chain_ce = sequence_loss(chain_logits, seq)
            metrics["chain_ce"] = chain_ce.detach()
            if baseline_logits is not None:
                # The latent path's own no-latent counterpart (an order-k chain), trained beside.
                order_k_ce = sequence_loss(baseline_logits, seq)
                metrics["order_k_ce"] = order_k_ce.detach()
                chain_ce = chain_ce + order_k_ce
            terms["chain"] = w["chain"] * chain_ce
        if direct_logits is not None:
            direct_ce = sequence_loss(direct_logits, seq)
            terms["direct"] = w["direct"] * direct_ce
            metrics["direct_ce"] = direct_ce.detach()
        if self.n_tracks:
            error = track_loss(tracks_pred, tracks, s["track_loss"], self.track_transform)
            terms["tracks"] = w["tracks"] * error
            metrics["track_error"] = error.detach()
        if "kl" in b.losses:
            terms["kl"] = w["kl"] * b.losses["kl"]
        if "vq_commitment" in b.losses:
            terms["vq_commitment"] = w["vq_commitment"] * b.losses["vq_commitment"]
        if "local_commitment" in b.losses:
            terms["local_commitment"] = w["vq_commitment"] * b.losses["local_commitment"]
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
        total = torch.stack([t.float() for t in terms.values()]).sum()
        return ModelOutput(
            latent=b.latent,
            blocks=blocks,
            seq_logits=seq_logits,
            tracks_pred=tracks_pred,
            loss=total,
            losses={k: v.detach() for k, v in terms.items()},
            metrics=metrics,
            codes=b.codes,
            local_codes=local_codes,
            chain_logits=chain_logits,
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

    def chain_reconstruct(self, seq: Tensor) -> tuple[Tensor, Tensor]:
        """The decoder's own chain (latent off, over ``decoder.context`` and ``decoder.reach`` bases):
        ``(seq_logits [B, 4, L], tracks_pred [B, T, L])``; its cross-entropy is the model's anomaly score."""
        if not isinstance(self.decoder, ContextDecoder):
            raise ValueError("the chain needs decoder.kind: autoregressive")
        return self.decoder.chain_forward(seq)

    @property
    def has_direct_head(self) -> bool:
        """Whether the decoder also rebuilds every base from the latent alone (``weights.direct`` > 0)."""
        return isinstance(self.decoder, ContextDecoder) and self.decoder.direct_head is not None

    def encode_reconstruct(self, seq: Tensor, tracks: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """:meth:`encode` and :meth:`reconstruct` in one encoder pass: ``(latent [B, D], seq_logits, tracks_pred)``."""
        if not self.autoregressive:
            latent = self.encode(seq, tracks)
            return (latent, *self.decode(latent))
        latent, local = self._encode_both(seq, tracks)
        assert isinstance(self.decoder, ContextDecoder)
        seq_logits, tracks_pred = self.decoder(seq, local, latent)
        return latent.float(), seq_logits, tracks_pred

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
    def local_bits_per_base(self) -> float:
        """Capacity of the local latent sequence, ``log2(codebook_size) / downsample`` bits per base (0 without one)."""
        if self.local is None:
            return 0.0
        return math.log2(self.settings["local"]["codebook_size"]) / self.settings["downsample"]

    def tracks_to_stored(self, tracks_pred: Tensor) -> Tensor:
        """Decoder track output -> the windows file's stored scale (float32)."""
        return tracks_to_stored(tracks_pred, self.settings["track_loss"], self.track_transform)

    def anomaly_score(self, seq: Tensor, tracks: Tensor) -> Tensor:
        """Anomaly score per window, ``float32 [B]``: the sequence's code length (nats per non-N base)
        plus ``weights.tracks`` x the track error through the deterministic latent
        (:meth:`window_score`).

        Call ``model.eval()`` (and ``torch.inference_mode()``) for scoring.
        """
        self._check_inputs(seq, tracks)
        return self.score_reconstruct(seq, tracks)[3]

    @property
    def chain_scores(self) -> bool:
        """Whether the sequence part of the anomaly score is the decoder's own chain's (latent off):
        an autoregressive decoder that trains its chain (``weights.chain`` > 0)."""
        return isinstance(self.decoder, ContextDecoder) and self.settings["weights"]["chain"] > 0

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
