"""Model settings: every key with its default, help, choices and bounds; size presets; deep-merge.

This module is the definition of a model's settings: ``DEFAULT_MODEL_SETTINGS``
(every key, its default and, by the default's type, its type),
``MODEL_SETTINGS_HELP`` (one description per dotted key), ``MODEL_SETTINGS_CHOICES``
and ``MODEL_SETTINGS_CONSTRAINTS`` (the JSON Schema bounds a default does not
tell). ``scripts/config_docs.py`` writes from them the configuration schema's
``$defs/model`` and the ``models`` table of config/README.md.

``model_settings(overrides)`` is the one way in: it checks ``overrides``
against that schema (so a wrong name, type, choice or bound fails with one
line naming the key, a :class:`~seqae.errors.ConfigError`), layers
``DEFAULT_MODEL_SETTINGS`` < ``SIZE_PRESETS[size]`` < ``overrides`` and
checks what a schema cannot: keys that must agree with each other.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from functools import cache
from typing import Any

from seqae.config import check_settings, config_schema
from seqae.errors import ConfigError

KINDS = ("plain", "vae", "vq")
DECODER_KINDS = ("conv", "autoregressive")
# Choices of the architecture keys, defined here (torch-free) for the config
# checks and imported by the layers that build them.
NORMS = ("batch", "group")
POOLINGS = ("positional", "positional_meanmax", "meanmax", "attention")
UPSAMPLE_MODES = ("nearest", "transposed")
ADVERSARIAL_OBJECTIVES = ("reversal", "confusion", "decorrelation")

DEFAULT_MODEL_SETTINGS: dict[str, Any] = {
    "kind": "plain",
    "size": "small",
    "channels": 64,
    "n_res_blocks": 4,
    "kernel_size": 5,
    "stem_kernel_size": 15,
    "dilations": [1, 2, 4, 8],
    "downsample": 8,
    "norm": "batch",
    "pooling": "positional_meanmax",
    "composition_k": 0,
    "scan": {"channels": 0, "kernel_size": 8},
    "upsample_mode": "nearest",
    "decoder": {
        "kind": "conv",
        "context": 5,
        "hidden": 128,
        "n_layers": 2,
        "latent_layers": 3,
        "reach": 0,
        "reach_width": 64,
        "latent_reach": True,
        "direct_positions": 1.0,
    },
    "local": {"enabled": False, "dim": 16, "codebook_size": 256, "latent_dropout": 0.0},
    "dropout": 0.0,
    "head_hidden": 64,
    "blocks": {
        "chrom": {"size": 16, "label": "chrom"},
        "gene": {"size": 16, "label": "region_class"},
        "residual": {"size": 32, "label": None},
    },
    "denoise": {"enabled": False, "substitution_rate": 0.05, "mask_rate": 0.05, "track_noise": 0.1},
    "track_loss": "mse",
    "weights": {
        "seq": 1.0,
        "tracks": 0.1,
        "supervised": 1.0,
        "adversarial": 0.05,
        "kl": 0.001,
        "vq_commitment": 1.0,
        "infomax": 0.1,
        "cpc": 0.1,
        "chain": 1.0,
        "direct": 0.0,
        "conversion": 0.0,
    },
    "conversion": {"windows": 16, "temperature": 1.0},
    "adversarial_schedule": {"shape": "sigmoid", "warmup_steps": 2000},
    "adversarial_objective": "reversal",
    "head_gradient_cap": 1.0,
    "erasure": {"enabled": False, "momentum": 0.02, "labelled_blocks": True},
    "vq": {"codebook_size": 64, "n_groups": 4, "commitment": 0.25, "decay": 0.99, "dead_code_steps": 200},
    "infomax": {"enabled": False, "hidden": 128},
    "cpc": {"enabled": False, "n_future": 4, "chunk": 32, "dim": 64},
}

#: The two-level autoencoder, the demo's design (config/config.yaml): a local code sequence
#: (1 bit per base) beside the global blocks, an autoregressive decoder whose latent path reads the 5 previous bases
#: (table) and whose chain also reads 128 (causal conv), a direct head, the heads' gradient uncapped, and each
#: block's foreign labels erased (LEACE), a learnt motif scan for the global blocks and a 32-coordinate chrom
#: block. Merged under a model's own keys where a tool
#: needs "the default model" (benchmarks/bench_train.py).
TWO_LEVEL_SETTINGS: dict[str, Any] = {
    "decoder": {"kind": "autoregressive", "context": 5, "reach": 128, "latent_reach": False},
    "local": {"enabled": True, "codebook_size": 256},
    "weights": {"direct": 1.0},
    "head_gradient_cap": 0.0,
    "erasure": {"enabled": True},
    "scan": {"channels": 128},
    "blocks": {
        "chrom": {"size": 32, "label": "chrom"},
        "gene": {"size": 16, "label": "region_class"},
        "residual": {"size": 16, "label": None},
    },
}

# Architecture overrides per size; applied over the defaults and under the user's keys.
# small: CPU-friendly (0.95 M parameters with 3 tracks at 1000 bp; forward + backward
# of 8 windows ~0.1 s on one CPU core). large: the GPU configuration (channels 256,
# 8 tower blocks; 9.5 M parameters), about 30x the compute per window; an
# autoregressive decoder doubles its width and reads 4 dilated layers of codes.
SIZE_PRESETS: dict[str, dict[str, Any]] = {
    "small": {},
    "large": {
        "channels": 256,
        "n_res_blocks": 8,
        "dilations": [1, 2, 4, 8, 16],
        "head_hidden": 128,
        "decoder": {"hidden": 256, "latent_layers": 4},
        "infomax": {"hidden": 256},
        "cpc": {"dim": 128},
    },
}

MODEL_SETTINGS_HELP: dict[str, str] = {
    "kind": "plain autoencoder, vae (Gaussian latent, KL to N(0, I)) or vq (vector-quantised latent).",
    "size": "Preset for the architecture keys: small (CPU) or large (GPU: channels 256, 8 tower blocks, autoregressive decoder width 256 with 4 latent layers); explicit keys win.",
    "channels": "Width of every convolution in the encoder and decoder.",
    "n_res_blocks": "Dilated residual blocks in the encoder's tower at the lowest resolution (and in the decoder's).",
    "kernel_size": "Width of the residual convolutions (odd, positions).",
    "stem_kernel_size": "Width of the first convolution over bases (odd, bp).",
    "dilations": "Dilations of the tower blocks, cycled (positions at 1/downsample resolution).",
    "downsample": "Total length reduction of the encoder, a power of two (8: 1000 bp -> 125 positions).",
    "norm": "Normalisation: batch (BatchNorm) or group (GroupNorm, batch-independent).",
    "pooling": "From per-position features to the latent: positional (keeps where bases are; needed to reconstruct them), positional_meanmax (positions plus the mean and max over them, for composition-level labels), meanmax or attention (position-free).",
    "composition_k": "k of the window's k-mer spectrum (4^k frequencies) handed to the latent's linear map beside the pooled features, so composition-level labels (species, isochores) are one linear map away, as for the k-mer baseline; 0: none.",
    "scan": "A learnt motif scan over the bases, averaged and maxed over the window, for the global blocks.",
    "scan.channels": "Learnt motif detectors read from the one-hot bases (ReLU of a convolution of width `scan.kernel_size`); their mean and max over the window, standardised across windows (BatchNorm), join the features the global blocks are read from. A learnt k-mer spectrum for labels written in composition or repeats (chromosome, species), instead of the handed-in one of `composition_k`. 0: none.",
    "scan.kernel_size": "Width of the scan's detectors (bp).",
    "upsample_mode": "Decoder upsampling: nearest (nearest-neighbour x2 + conv) or transposed (transposed conv).",
    "decoder": "The decoder: convolutional from the latent alone, or autoregressive over a bounded context of previous bases.",
    "decoder.kind": "conv: the global latent alone is upsampled to per-base logits. autoregressive: each base from its `decoder.context` previous bases, the local latent sequence and the global blocks (FiLM); with the latent off it is an order-k Markov chain, so the latent's own contribution can be measured. The demo's models (config/config.yaml) are autoregressive with a local latent.",
    "decoder.context": "Previous bases the autoregressive decoder reads (a table of 4^k learnt vectors; a context that reaches before the window or holds an N gets one shared vector). Structure beyond them must come through the latent.",
    "decoder.hidden": "Width of the autoregressive decoder.",
    "decoder.n_layers": "Residual per-position MLPs of the autoregressive decoder.",
    "decoder.latent_layers": "Dilated residual convolutions (dilations 1, 2, 4, ...) over the local latent sequence in the autoregressive decoder, so that each base's conditioning sees several codes around it.",
    "decoder.reach": "Previous bases read by a causal dilated convolution (kernel 2, dilations 1, 2, 4, ..., WaveNet-style) beside the context table: 0 (none) or a power of two up to 1024. With it the latent-off decoder is an order-`reach` neural chain, so repeat copies and motifs already begun are read by the decoder itself, and the latent's contribution is what it adds beyond them. Free-running decoding keeps each layer's last inputs in a buffer (one layer step per base).",
    "decoder.direct_positions": "Autoregressive decoder with a direct head (`weights.direct` > 0) only: share of each training window's positions at which the direct head (every base from the latent alone) is trained, drawn at random anew at every step (the same positions for every window of the batch). Its loss is a mean over positions, so a share is an unbiased estimate of the same loss at that share of its per-position cost. Evaluation and embedding use every position, and the chain and the latent path are always trained on all of them. 1: every position; config/cpu.yaml uses 0.125.",
    "decoder.reach_width": "Channels of the causal convolution over the previous bases (decoder.reach).",
    "decoder.latent_reach": "Whether the latent path reads the `decoder.reach` bases too. `false`: the latent path reads only the `decoder.context` table and the latent, as VQ-VAE's bounded-context decoder does, so whatever lies beyond k bases (repeat copies, motifs) has to come through the latent; its no-latent counterpart is then a learnt order-k chain (a table of next-base logits, trained beside it), against which `anomaly.latent_contribution` is measured, and the chain over the reach stays the anomaly score (`no_latent_*`). With `true` the latent's contribution is what it adds to the chain over the reach.",
    "local": "A latent sequence beside the global blocks: one VQ code per downsample bases.",
    "local.enabled": "Add a latent sequence beside the global blocks: one VQ code per `downsample` bases, read from the encoder's features (needs `decoder.kind: autoregressive`). Its capacity is log2(`codebook_size`) / `downsample` bits per base (1 at the defaults).",
    "local.dim": "Width of the local code vectors.",
    "local.codebook_size": "Codes in the local codebook (256 at downsample 8: 1 bit per base; EMA updates, commitment and dead-code restarts as in `vq`).",
    "local.latent_dropout": "Share of training windows decoded with the whole latent (local and global) switched off, so the decoder also learns its no-latent chain: the baseline of `anomaly.latent_contribution`. `weights.chain` trains that chain on every window instead, at the cost of a second pass through the per-position MLPs only.",
    "dropout": "Dropout inside the residual blocks.",
    "head_hidden": "Hidden width of the supervised and adversarial classifier heads.",
    "blocks": "Latent blocks in order, name → {size, label}; replaces the default blocks as a whole. The default gene block predicts `region_class` (promoter, gene_body or intergenic), which any annotation gives; the demo's `gene_family` exists only in the simulated annotation.",
    "blocks.*.size": "Number of latent coordinates of the block.",
    "blocks.*.label": "Label column the block is trained to predict, or null (predicts no label). Windows whose label is empty (e.g. no gene nearby) count as unknown and are ignored by the heads.",
    "denoise": "Denoising autoencoder: corrupt the inputs, rebuild the clean window.",
    "denoise.enabled": "Train as a denoising autoencoder (corrupted inputs, clean targets).",
    "denoise.substitution_rate": "Fraction of called bases replaced by another base.",
    "denoise.mask_rate": "Fraction of positions masked to N.",
    "denoise.track_noise": "Standard deviation of Gaussian noise added to the stored track values.",
    "track_loss": "mse on stored (e.g. log1p) values, or poisson on raw values with a log-rate prediction.",
    "weights": "Weight of each loss term (see seqae/models/autoencoder.py).",
    "weights.seq": "Weight of the sequence cross-entropy (nats per base).",
    "weights.tracks": "Weight of the track loss (also the track weight of the anomaly score).",
    "weights.supervised": "Weight of the supervised heads' cross-entropy (summed over labelled blocks).",
    "weights.adversarial": "Final strength lambda of the adversarial objective: the encoder gets -lambda x the adversaries' gradient (reversal) or lambda x the confusion KL's or the label correlations' (the other objectives).",
    "weights.kl": "beta of the VAE: weight of the KL in nats per window (1/window_len matches the per-base ELBO).",
    "weights.vq_commitment": "Multiplier of the VQ commitment loss (beta itself is vq.commitment).",
    "weights.infomax": "Weight of the InfoMax discriminator loss.",
    "weights.cpc": "Weight of the CPC InfoNCE loss.",
    "weights.direct": "Autoregressive decoder only: weight of the bottleneck's own reconstruction, every base rebuilt from the local codes and the global blocks alone (no previous base) in one parallel pass. > 0 builds this direct head; reconstructions, swaps and the windows `seqae evaluate` decodes then come from it (VAE prior samples are still drawn base after base). 0: none (they are decoded base after base). The convolutional decoder ignores it (it rebuilds every base from the latent alone anyway).",
    "weights.chain": "Autoregressive decoder only: weight of the loss of the same windows decoded with the latent off (the decoder's own chain over `decoder.context` / `decoder.reach` bases), on every training window. It makes the chain, the baseline of `anomaly.latent_contribution` and an anomaly score of its own (`anomaly.latent_contribution.no_latent_*`), fully trained. 0 turns it off (then `local.latent_dropout` trains the chain on a share of windows).",
    "weights.conversion": "Autoregressive decoder only: > 0 adds a converter (seqae/models/conversion.py), a renderer of its own that reads what the direct head reads (the local codes' features and the global latent, detached). It is trained, with this weight, to rebuild the windows' own bases and to render swapped blocks: `conversion.windows` windows of each training batch are decoded with every labelled block taken from another of them, bases are drawn (straight-through Gumbel-softmax), and the model's own encoder and supervised heads, frozen, must read each donor's label off the result. Only the converter learns from it; `seqae evaluate` decodes the block swaps (and their judge's ceiling) with it. 0: none (swaps come from the direct head). The convolutional decoder ignores it (no local codes to read).",
    "conversion": "The converter (weights.conversion): swapped blocks rendered so that the donors' labels read back.",
    "conversion.windows": "Windows of each training batch decoded with swapped blocks (their donors are drawn among them).",
    "conversion.temperature": "Temperature of the Gumbel-softmax draw of the converted windows' bases (the forward pass draws hard one-hot bases; the gradient is the softmax's at this temperature).",
    "adversarial_schedule": "Ramp of the gradient-reversal strength of the adversarial heads.",
    "adversarial_schedule.shape": "Ramp of the gradient-reversal strength from 0: sigmoid (DANN) or linear.",
    "adversarial_schedule.warmup_steps": "Training steps over which the ramp reaches weights.adversarial.",
    "adversarial_objective": "What the encoder does against the adversaries: reversal (gradient reversal: ascend their cross-entropy, unbounded), confusion (descend the KL from the batch's label frequencies to their predictions, zero once they learn nothing) or decorrelation (descend the squared correlations between the block's coordinates and the label's classes on the batch, zero once no linear read-out carries the label; the adversaries still train and report their accuracy).",
    "head_gradient_cap": "Cap on the heads' push on the encoder: the supervised and adversarial heads' gradient on the latent is scaled down, per batch, to at most this multiple of the decoder's gradient there (the sequence loss, a mean over bases, otherwise has a tiny share of it); 0: no cap. metrics.csv logs the mean factor applied per epoch (train_head_gradient_scale; 1: the cap did not bind).",
    "erasure": "Linear concept erasure (LEACE) of each block's foreign labels in the forward pass.",
    "erasure.enabled": "Erase each block's foreign labels (the labels of the other blocks; every label for an unlabelled block) linearly in the forward pass (LEACE, from running covariances): after it every class has the same mean in the block, so no linear read-out of it tells the label. The decoder, heads and embeddings read the erased blocks; the adversaries still train and report what a non-linear head reads.",
    "erasure.momentum": "Weight of each training batch in the erasers' running means and covariances (0.02: about the last 50 batches).",
    "erasure.labelled_blocks": "Also erase the foreign labels from the blocks that have a label of their own (false: erase only the unlabelled blocks, e.g. the residual, and leave the labelled ones to the adversaries). Where labels share a cause, as a species and a gene family both shift base composition, erasing one from the other's block also takes part of the block's own label.",
    "vq": "Vector quantisation (kind vq): one EMA codebook per group of every block.",
    "vq.codebook_size": "Codes per codebook.",
    "vq.n_groups": "Groups per block, each with its own codebook (block sizes must divide by it).",
    "vq.commitment": "beta of the commitment loss ‖z − sg(q)‖².",
    "vq.decay": "EMA decay of the codebook statistics.",
    "vq.dead_code_steps": "Restart a code unused for this many training steps (0: never).",
    "infomax": "InfoMax objective: a discriminator of (encoder features, latent) pairs.",
    "infomax.enabled": "Add the InfoMax (features, latent) discriminator objective.",
    "infomax.hidden": "Width of the InfoMax discriminator.",
    "cpc": "Contrastive predictive coding on the encoder features.",
    "cpc.enabled": "Add the contrastive predictive coding objective on the encoder features.",
    "cpc.n_future": "Number of future chunks predicted.",
    "cpc.chunk": "Chunk length (bp, a multiple of downsample).",
    "cpc.dim": "Size of the CPC chunk embeddings and context.",
}

#: The values a string setting may take (the schema's ``enum``).
MODEL_SETTINGS_CHOICES: dict[str, tuple[str, ...]] = {
    "kind": KINDS,
    "size": tuple(SIZE_PRESETS),
    "norm": NORMS,
    "pooling": POOLINGS,
    "upsample_mode": UPSAMPLE_MODES,
    "decoder.kind": DECODER_KINDS,
    "track_loss": ("mse", "poisson"),
    "adversarial_schedule.shape": ("sigmoid", "linear"),
    "adversarial_objective": ADVERSARIAL_OBJECTIVES,
}

#: JSON Schema keywords beyond the type a key's default tells: bounds, list items, and
#: the shape of ``blocks`` (name → {size, label}). ``*`` in a dotted key is any block name.
MODEL_SETTINGS_CONSTRAINTS: dict[str, dict[str, Any]] = {
    "channels": {"minimum": 1},
    "n_res_blocks": {"minimum": 0},
    "kernel_size": {"minimum": 1},  # and odd: checked by model_settings
    "stem_kernel_size": {"minimum": 1},  # and odd
    "dilations": {"items": {"type": "integer", "minimum": 1}, "minItems": 1},
    "downsample": {"minimum": 1},  # and a power of two
    "composition_k": {"minimum": 0, "maximum": 6},
    "scan.channels": {"minimum": 0},
    "scan.kernel_size": {"minimum": 1},
    "decoder.context": {"minimum": 0, "maximum": 8},
    "decoder.hidden": {"minimum": 1},
    "decoder.n_layers": {"minimum": 0},
    "decoder.latent_layers": {"minimum": 0},
    "decoder.reach": {"minimum": 0, "maximum": 1024},  # and 0 or a power of two
    "decoder.reach_width": {"minimum": 1},
    "decoder.direct_positions": {"exclusiveMinimum": 0, "maximum": 1},
    "local.dim": {"minimum": 1},
    "local.codebook_size": {"minimum": 2},
    "local.latent_dropout": {"minimum": 0, "exclusiveMaximum": 1},
    "dropout": {"minimum": 0, "exclusiveMaximum": 1},
    "head_hidden": {"minimum": 1},
    "blocks": {
        "minProperties": 1,
        "propertyNames": {"type": "string", "pattern": "^[^.]+$"},
        "additionalProperties": {
            "type": "object",
            "additionalProperties": False,
            "required": ["size"],
            "properties": {
                "size": {"type": "integer", "minimum": 1},
                "label": {"type": ["string", "null"], "minLength": 1},
            },
        },
    },
    "denoise.substitution_rate": {"minimum": 0, "maximum": 1},
    "denoise.mask_rate": {"minimum": 0, "maximum": 1},
    "denoise.track_noise": {"minimum": 0},
    **{f"weights.{key}": {"minimum": 0} for key in DEFAULT_MODEL_SETTINGS["weights"]},
    "conversion.windows": {"minimum": 2},
    "conversion.temperature": {"exclusiveMinimum": 0},
    "adversarial_schedule.warmup_steps": {"minimum": 0},
    "head_gradient_cap": {"minimum": 0},
    "erasure.momentum": {"exclusiveMinimum": 0, "maximum": 1},
    "vq.codebook_size": {"minimum": 1},
    "vq.n_groups": {"minimum": 1},
    "vq.commitment": {"minimum": 0},
    "vq.decay": {"minimum": 0, "exclusiveMaximum": 1},
    "vq.dead_code_steps": {"minimum": 0},
    "infomax.hidden": {"minimum": 1},
    "cpc.n_future": {"minimum": 1},
    "cpc.chunk": {"minimum": 1},  # and a multiple of downsample
    "cpc.dim": {"minimum": 1},
}

#: What a latent block's left-out keys take (``blocks.*``).
BLOCK_DEFAULTS: dict[str, Any] = {"label": None}


@cache
def _settings_schema() -> dict[str, Any]:
    """The configuration schema's ``$defs/model`` without ``training`` (a model's
    overrides of the training settings, which are not the model's)."""
    schema = copy.deepcopy(config_schema()["$defs"]["model"])
    del schema["properties"]["training"]
    return schema


def model_settings(overrides: Mapping[str, Any] | None = None, where: str = "model") -> dict[str, Any]:
    """Full, validated model settings: defaults < size preset < ``overrides`` (deep merge).

    Dicts merge key by key, except ``blocks``, which replaces the default blocks
    as a whole (so that giving two blocks means two blocks). A validated result
    passed back in comes out unchanged.

    Args:
        overrides: user settings (nested dicts), possibly partial.
        where: prefix of error messages (the settings' place in the config).

    Raises:
        ConfigError: ``<where>.<key>: <problem>`` for an unknown key, a wrong type or a bad value.
    """
    overrides = copy.deepcopy(dict(overrides) if isinstance(overrides, Mapping) else overrides or {})
    # The schema that checks a config file's models, also for what the Python API is
    # handed without a config (settings read back from a checkpoint, a test's dict).
    check_settings(overrides, _settings_schema(), where)
    size = overrides.get("size", DEFAULT_MODEL_SETTINGS["size"])
    merged = _merge(copy.deepcopy(DEFAULT_MODEL_SETTINGS), copy.deepcopy(SIZE_PRESETS[size]))
    merged = _merge(merged, overrides)
    _check_combinations(merged, where)
    return merged


def _merge(base: dict[str, Any], over: Mapping[str, Any], top: bool = True) -> dict[str, Any]:
    """``over`` (valid by the schema) over ``base``; a float setting given as an integer becomes a float."""
    for key, value in over.items():
        default = base[key]
        if key == "blocks" and top:
            label = BLOCK_DEFAULTS["label"]
            base[key] = {
                name: {"size": block["size"], "label": block.get("label", label)} for name, block in value.items()
            }
        elif isinstance(default, dict):
            base[key] = _merge(default, value, top=False)
        else:
            base[key] = float(value) if isinstance(default, float) else value
    return base


def _check_combinations(s: dict[str, Any], where: str) -> None:
    """What the schema does not check: values that must agree with each other, odd and power-of-two sizes."""

    def fail(key: str, problem: str) -> None:
        raise ConfigError(f"{where}.{key}: {problem}")

    for key in ("kernel_size", "stem_kernel_size"):
        if s[key] % 2 == 0:
            fail(key, f"must be odd (length-preserving convolution), got {s[key]}")
    if s["downsample"] & (s["downsample"] - 1):
        fail("downsample", f"must be a power of two, got {s['downsample']}")
    d = s["denoise"]
    if d["substitution_rate"] + d["mask_rate"] > 1.0:
        fail("denoise", "substitution_rate + mask_rate must not exceed 1")
    if s["kind"] == "vq":
        n_groups = s["vq"]["n_groups"]
        for name, block in s["blocks"].items():
            if block["size"] % n_groups:
                fail(f"blocks.{name}.size", f"{block['size']} is not divisible by vq.n_groups = {n_groups}")
    dec, local = s["decoder"], s["local"]
    reach = dec["reach"]
    if reach == 1 or reach & (reach - 1):
        fail("decoder.reach", f"must be 0 or a power of two from 2 to 1024, got {reach}")
    if dec["kind"] == "autoregressive" and s["weights"]["chain"] <= 0 and local["latent_dropout"] <= 0:
        fail(
            "weights.chain",
            "the autoregressive decoder's chain (latent off) needs weights.chain > 0 or local.latent_dropout > 0",
        )
    if local["enabled"] and dec["kind"] != "autoregressive":
        fail("local.enabled", "a local latent sequence needs decoder.kind: autoregressive")
    if s["cpc"]["chunk"] % s["downsample"]:
        fail("cpc.chunk", f"{s['cpc']['chunk']} bp is not a multiple of downsample = {s['downsample']}")
