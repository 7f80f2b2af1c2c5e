"""Model settings: every key with its default, size presets, deep-merge and validation.

``model_settings(overrides)`` is the one way in: it layers
``DEFAULT_MODEL_SETTINGS`` < ``SIZE_PRESETS[size]`` < ``overrides`` and
checks every key, so a wrong name, type or value fails with one line naming
the key (a :class:`~seqae.errors.ConfigError`). ``MODEL_SETTINGS_HELP`` gives
a one-line description per dotted key, for the configuration schema.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

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
    },
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
    "composition_k": "k of the window's k-mer spectrum (4^k frequencies) fed to the latent beside the pooled features, so composition-level labels (species) are one linear map away; 0: none, at most 6.",
    "scan.channels": "Learnt motif detectors read from the one-hot bases (ReLU of a convolution), averaged and maxed over the window and fed to the global blocks beside the pooled features: a learnt k-mer spectrum for labels written in composition or repeats (chromosome, species); 0: none.",
    "scan.kernel_size": "Width of the scan's detectors (bp).",
    "upsample_mode": "Decoder upsampling: nearest (nearest-neighbour x2 + conv) or transposed (transposed conv).",
    "decoder.kind": "conv (the latent alone is upsampled to per-base logits) or autoregressive (each base from its decoder.context previous bases, the local latent sequence and the global blocks; with the latent off it is an order-k Markov chain, so the latent's own contribution can be measured).",
    "decoder.context": "Previous bases the autoregressive decoder reads (0 to 8; a table of 4^k learnt vectors). Structure beyond them must come through the latent.",
    "decoder.hidden": "Width of the autoregressive decoder.",
    "decoder.n_layers": "Residual per-position MLPs of the autoregressive decoder.",
    "decoder.latent_layers": "Dilated residual convolutions (dilations 1, 2, 4, ...) over the local latent sequence in the autoregressive decoder, so that each base's conditioning sees several codes around it.",
    "decoder.reach": "Previous bases read by a causal dilated convolution (kernel 2, dilations 1, 2, 4, ...) beside the context table: 0 (none) or a power of two up to 1024. With it the latent-off decoder is an order-reach neural chain.",
    "decoder.reach_width": "Channels of the causal convolution over the previous bases (decoder.reach).",
    "decoder.latent_reach": "Whether the latent path reads the decoder.reach bases too (true), or only the decoder.context table (false): then whatever lies beyond k bases has to come through the latent, the latent's contribution is measured against a learnt order-k chain, and the chain over the reach stays the anomaly score.",
    "local.enabled": "Add a latent sequence: one VQ code per downsample bases (log2(codebook_size) / downsample bits per base) beside the global blocks (needs decoder.kind autoregressive).",
    "local.dim": "Width of the local code vectors.",
    "local.codebook_size": "Codes in the local codebook (256 at downsample 8: 1 bit per base).",
    "local.latent_dropout": "Share of training windows decoded with the whole latent switched off, so the decoder also learns its no-latent order-k chain (the baseline of the latent's contribution); mostly replaced by weights.chain, which trains that chain on every window.",
    "dropout": "Dropout inside the residual blocks.",
    "head_hidden": "Hidden width of the supervised and adversarial classifier heads.",
    "blocks": "Latent blocks in order, name -> {size, label}; replaces the default blocks as a whole.",
    "blocks.*.size": "Number of latent coordinates of the block.",
    "blocks.*.label": "Label column the block is trained to predict, or null (predicts no label).",
    "denoise.enabled": "Train as a denoising autoencoder (corrupted inputs, clean targets).",
    "denoise.substitution_rate": "Fraction of called bases replaced by another base.",
    "denoise.mask_rate": "Fraction of positions masked to N.",
    "denoise.track_noise": "Standard deviation of Gaussian noise added to the stored track values.",
    "track_loss": "mse on stored (e.g. log1p) values, or poisson on raw values with a log-rate prediction.",
    "weights.seq": "Weight of the sequence cross-entropy (nats per base).",
    "weights.tracks": "Weight of the track loss (also the track weight of the anomaly score).",
    "weights.supervised": "Weight of the supervised heads' cross-entropy (summed over labelled blocks).",
    "weights.adversarial": "Final strength lambda of the adversarial objective: the encoder gets -lambda x the adversaries' gradient (reversal) or lambda x the confusion KL's or the label correlations' (the other objectives).",
    "weights.kl": "beta of the VAE: weight of the KL in nats per window (1/window_len matches the per-base ELBO).",
    "weights.vq_commitment": "Multiplier of the VQ commitment loss (beta itself is vq.commitment).",
    "weights.infomax": "Weight of the InfoMax discriminator loss.",
    "weights.cpc": "Weight of the CPC InfoNCE loss.",
    "weights.direct": "Weight of the bottleneck's own reconstruction (autoregressive decoder): every base rebuilt from the local codes and global blocks alone, without any previous base, in one parallel pass. > 0 builds the direct head; reconstructions, swaps and the windows' decoded bases then come from it. 0: none (they are decoded base after base). The convolutional decoder ignores it: it rebuilds every base from the latent alone anyway.",
    "weights.chain": "Weight of the autoregressive decoder's own chain loss: the same windows decoded with the latent off, on every training window, so the no-latent chain (the baseline of the latent's contribution and an anomaly score of its own) is fully trained. 0 turns it off (then local.latent_dropout trains the chain on a share of windows).",
    "adversarial_schedule.shape": "Ramp of the gradient-reversal strength from 0: sigmoid (DANN) or linear.",
    "adversarial_schedule.warmup_steps": "Training steps over which the ramp reaches weights.adversarial.",
    "adversarial_objective": "What the encoder does against the adversaries: reversal (gradient reversal: ascend their cross-entropy, unbounded), confusion (descend the KL from the batch's label frequencies to their predictions, zero once they learn nothing) or decorrelation (descend the squared correlations between the block's coordinates and the label's classes on the batch, zero once no linear read-out carries the label; the adversaries still train and report their accuracy).",
    "head_gradient_cap": "Cap on the heads' push on the encoder: the supervised and adversarial heads' gradient on the latent is scaled down, per batch, to at most this multiple of the decoder's gradient there (the sequence loss, a mean over bases, otherwise has a tiny share of it); 0: no cap. metrics.csv logs the mean factor applied per epoch (train_head_gradient_scale; 1: the cap did not bind).",
    "erasure.enabled": "Erase each block's foreign labels (the labels of the other blocks; every label for an unlabelled block) linearly in the forward pass (LEACE, from running covariances): after it every class has the same mean in the block, so no linear read-out of it tells the label. The decoder, heads and embeddings read the erased blocks; the adversaries still train and report what a non-linear head reads.",
    "erasure.momentum": "Weight of each training batch in the erasers' running means and covariances (0.02: about the last 50 batches).",
    "erasure.labelled_blocks": "Also erase the foreign labels from the blocks that have a label of their own (false: erase only the unlabelled blocks, e.g. the residual, and leave the labelled ones to the adversaries). Where labels share a cause, as a species and a gene family both shift base composition, erasing one from the other's block also takes part of the block's own label.",
    "vq.codebook_size": "Codes per codebook.",
    "vq.n_groups": "Groups per block, each with its own codebook (block sizes must divide by it).",
    "vq.commitment": "beta of the commitment loss ||z - sg(q)||^2.",
    "vq.decay": "EMA decay of the codebook statistics.",
    "vq.dead_code_steps": "Restart a code unused for this many training steps (0: never).",
    "infomax.enabled": "Add the InfoMax (features, latent) discriminator objective.",
    "infomax.hidden": "Width of the InfoMax discriminator.",
    "cpc.enabled": "Add the contrastive predictive coding objective on the encoder features.",
    "cpc.n_future": "Number of future chunks predicted.",
    "cpc.chunk": "Chunk length (bp, a multiple of downsample).",
    "cpc.dim": "Size of the CPC chunk embeddings and context.",
}

_CHOICES: dict[str, tuple[str, ...]] = {
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
    overrides = copy.deepcopy(dict(overrides or {}))
    size = overrides.get("size", DEFAULT_MODEL_SETTINGS["size"])
    if size not in SIZE_PRESETS:
        raise ConfigError(f"{where}.size: {size!r} is not one of {list(SIZE_PRESETS)}")
    merged = _merge(copy.deepcopy(DEFAULT_MODEL_SETTINGS), SIZE_PRESETS[size], where)
    merged = _merge(merged, overrides, where)
    _validate(merged, where)
    return merged


def _type_ok(default: Any, value: Any) -> bool:
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, type(default))


def _merge(base: dict[str, Any], over: Mapping[str, Any], path: str, top: bool = True) -> dict[str, Any]:
    if not isinstance(over, Mapping):
        raise ConfigError(f"{path}: expected a mapping of keys, got {over!r}")
    for key, value in over.items():
        here = f"{path}.{key}"
        if key not in base:
            raise ConfigError(f"{here}: unknown key (allowed here: {', '.join(sorted(base))})")
        default = base[key]
        if key == "blocks" and top:
            if not isinstance(value, Mapping):
                raise ConfigError(f"{here}: expected a mapping of block name -> {{size, label}}")
            base[key] = copy.deepcopy(dict(value))
        elif isinstance(default, dict):
            base[key] = _merge(default, value, here, top=False)
        elif not _type_ok(default, value):
            raise ConfigError(f"{here}: {value!r} is not of type {type(default).__name__}")
        else:
            base[key] = float(value) if isinstance(default, float) else value
    return base


def _validate(s: dict[str, Any], where: str) -> None:
    def fail(key: str, problem: str) -> None:
        raise ConfigError(f"{where}.{key}: {problem}")

    for key, choices in _CHOICES.items():
        node: Any = s
        for part in key.split("."):
            node = node[part]
        if node not in choices:
            fail(key, f"{node!r} is not one of {list(choices)}")
    for key in ("channels", "n_res_blocks", "kernel_size", "stem_kernel_size", "downsample", "head_hidden"):
        if s[key] < (0 if key == "n_res_blocks" else 1):
            fail(key, f"must be {'>= 0' if key == 'n_res_blocks' else 'positive'}, got {s[key]}")
    for key in ("kernel_size", "stem_kernel_size"):
        if s[key] % 2 == 0:
            fail(key, f"must be odd (length-preserving convolution), got {s[key]}")
    if s["downsample"] & (s["downsample"] - 1):
        fail("downsample", f"must be a power of two, got {s['downsample']}")
    if not s["dilations"] or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in s["dilations"]):
        fail("dilations", f"must be a non-empty list of positive integers, got {s['dilations']!r}")
    if not 0.0 <= s["dropout"] < 1.0:
        fail("dropout", f"must be in [0, 1), got {s['dropout']}")
    if not 0 <= s["composition_k"] <= 6:
        fail("composition_k", f"must be 0 (off) to 6, got {s['composition_k']}")
    for key, least in (("channels", 0), ("kernel_size", 1)):
        value = s["scan"][key]
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            fail(f"scan.{key}", f"must be an integer >= {least}, got {value!r}")

    blocks = s["blocks"]
    if not blocks:
        fail("blocks", "at least one latent block is needed")
    for name, block in blocks.items():
        if not isinstance(name, str) or not name or "." in name:
            fail("blocks", f"block name {name!r} must be a non-empty string without '.'")
        if not isinstance(block, Mapping):
            fail(f"blocks.{name}", "expected a mapping with size and label")
        extra = sorted(set(block) - {"size", "label"})
        if extra:
            fail(f"blocks.{name}.{extra[0]}", "unknown key (allowed here: label, size)")
        size = block.get("size")
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            fail(f"blocks.{name}.size", f"must be a positive integer, got {size!r}")
        label = block.get("label")
        if label is not None and (not isinstance(label, str) or not label):
            fail(f"blocks.{name}.label", f"must be a label column name or null, got {label!r}")
        blocks[name] = {"size": size, "label": label}

    d = s["denoise"]
    for key in ("substitution_rate", "mask_rate"):
        if not 0.0 <= d[key] <= 1.0:
            fail(f"denoise.{key}", f"must be in [0, 1], got {d[key]}")
    if d["substitution_rate"] + d["mask_rate"] > 1.0:
        fail("denoise", "substitution_rate + mask_rate must not exceed 1")
    if d["track_noise"] < 0:
        fail("denoise.track_noise", f"must be >= 0, got {d['track_noise']}")
    for key, value in s["weights"].items():
        if value < 0:
            fail(f"weights.{key}", f"must be >= 0, got {value}")
    if s["head_gradient_cap"] < 0:
        fail("head_gradient_cap", f"must be >= 0 (0: no cap), got {s['head_gradient_cap']}")
    if s["adversarial_schedule"]["warmup_steps"] < 0:
        fail("adversarial_schedule.warmup_steps", "must be >= 0")
    if not 0.0 < s["erasure"]["momentum"] <= 1.0:
        fail("erasure.momentum", f"must be in (0, 1], got {s['erasure']['momentum']}")

    vq = s["vq"]
    for key in ("codebook_size", "n_groups"):
        if vq[key] < 1:
            fail(f"vq.{key}", f"must be positive, got {vq[key]}")
    if vq["commitment"] < 0 or vq["dead_code_steps"] < 0:
        fail("vq", "commitment and dead_code_steps must be >= 0")
    if not 0.0 <= vq["decay"] < 1.0:
        fail("vq.decay", f"must be in [0, 1), got {vq['decay']}")
    if s["kind"] == "vq":
        for name, block in blocks.items():
            if block["size"] % vq["n_groups"]:
                fail(f"blocks.{name}.size", f"{block['size']} is not divisible by vq.n_groups = {vq['n_groups']}")

    dec, local = s["decoder"], s["local"]
    if not 0 <= dec["context"] <= 8:
        fail("decoder.context", f"must be 0 to 8 bases, got {dec['context']}")
    reach = dec["reach"]
    if reach and (reach < 2 or reach > 1024 or reach & (reach - 1)):
        fail("decoder.reach", f"must be 0 or a power of two from 2 to 1024, got {reach}")
    if dec["reach_width"] < 1:
        fail("decoder.reach_width", f"must be positive, got {dec['reach_width']}")
    for key in ("hidden", "n_layers", "latent_layers"):
        if dec[key] < (1 if key == "hidden" else 0):
            fail(f"decoder.{key}", f"must be {'positive' if key == 'hidden' else '>= 0'}, got {dec[key]}")
    if local["dim"] < 1:
        fail("local.dim", f"must be positive, got {local['dim']}")
    if local["codebook_size"] < 2:
        fail("local.codebook_size", f"must be at least 2, got {local['codebook_size']}")
    if not 0.0 <= local["latent_dropout"] < 1.0:
        fail("local.latent_dropout", f"must be in [0, 1), got {local['latent_dropout']}")
    if dec["kind"] == "autoregressive" and s["weights"]["chain"] <= 0 and local["latent_dropout"] <= 0:
        fail(
            "weights.chain",
            "the autoregressive decoder's chain (latent off) needs weights.chain > 0 or local.latent_dropout > 0",
        )
    if local["enabled"] and dec["kind"] != "autoregressive":
        fail("local.enabled", "a local latent sequence needs decoder.kind: autoregressive")

    if s["infomax"]["hidden"] < 1:
        fail("infomax.hidden", "must be positive")
    cpc = s["cpc"]
    if cpc["n_future"] < 1 or cpc["dim"] < 1 or cpc["chunk"] < 1:
        fail("cpc", "n_future, chunk and dim must be positive")
    if cpc["chunk"] % s["downsample"]:
        fail("cpc.chunk", f"{cpc['chunk']} bp is not a multiple of downsample = {s['downsample']}")
