"""The evaluation run: :func:`evaluate_model` loads the model and the windows, runs every section
in turn (timed) and writes metrics.json; see :mod:`seqae.evaluation` for what is measured.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqae import __version__
from seqae.evaluation.anomaly import evaluate_anomaly
from seqae.evaluation.data import load_data
from seqae.evaluation.figures import FIGURE_PATTERNS, draw_figures
from seqae.evaluation.generative import vae_spectra, vq_usage
from seqae.evaluation.passes import encode_latents, model_pass
from seqae.evaluation.probes import evaluate_disentanglement, evaluate_probes
from seqae.evaluation.reconstruction import evaluate_reconstruction
from seqae.evaluation.settings import METRICS_FORMAT, METRICS_FORMAT_VERSION, evaluate_settings
from seqae.evaluation.sites import evaluate_sites
from seqae.evaluation.swaps import evaluate_swaps
from seqae.fileio import atomic_output, output_folder, remove_earlier_outputs
from seqae.runtime import forward_batch_size, resolve_device

log = logging.getLogger("seqae")

__all__ = ["evaluate_model"]


def evaluate_model(
    model_path: str | os.PathLike[str],
    windows_path: str | os.PathLike[str],
    outdir: str | os.PathLike[str],
    settings: Mapping[str, Any] | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate a trained model on the test split of a windows file (see :mod:`seqae.evaluation`).

    Args:
        model_path: ``best.pt`` (or ``checkpoint.pt``) written by training.
        windows_path: the windows HDF5 file (its ``train`` split fits the
            probes, baselines and judges; its ``test`` split is scored).
        outdir: output folder (created).
        settings: evaluation settings overriding :data:`DEFAULT_EVALUATE_SETTINGS`.
        device: ``cuda``, ``cpu`` or None / ``auto`` (the GPU when there is one). On CUDA
            the model runs under bf16 autocast, as for ``seqae embed`` (:mod:`seqae.inference`).
        progress: show progress bars over the model passes.

    Returns:
        The metrics dict written to ``outdir/metrics.json`` (keys: :data:`METRICS_KEYS`;
        NaN written as null).

    Raises:
        SeqaeError: unreadable model or windows file, a windows file whose
            tracks differ from the model's, no test or train windows, bad settings.
    """
    cfg = evaluate_settings(settings)
    if cfg["blas_threads"] is None:
        return _evaluate(model_path, windows_path, outdir, cfg, device, progress)
    from threadpoolctl import threadpool_limits

    # Multithreaded BLAS on these small matrices is slower than one thread, and on a
    # busy machine oversubscribed BLAS threads make lbfgs up to ~100x slower.
    with threadpool_limits(limits=cfg["blas_threads"], user_api="blas"):
        return _evaluate(model_path, windows_path, outdir, cfg, device, progress)


def _evaluate(
    model_path: str | os.PathLike[str],
    windows_path: str | os.PathLike[str],
    outdir: str | os.PathLike[str],
    cfg: dict[str, Any],
    device: str | torch.device | None,
    progress: bool,
) -> dict[str, Any]:
    from seqae.checkpoint import load_model
    from seqae.metrics import NOT_RECOVERABLE

    t_total = t = time.perf_counter()
    timings: dict[str, float] = {}
    dev = resolve_device(device)
    cfg = {**cfg, "batch_size": forward_batch_size(cfg["batch_size"], dev)}
    model, meta = load_model(model_path, dev)
    model.eval()
    name = str(meta.get("model_name") or Path(model_path).parent.name)
    block_labels = {b: s["label"] for b, s in model.settings["blocks"].items() if s["label"] is not None}
    data = load_data(model, meta, model_path, str(windows_path), cfg, block_labels)
    outdir = output_folder(outdir)  # after the inputs were found good: a failed run leaves no empty folder
    t = _stage(timings, "load", t)

    # A VAE's reconstructions are compared with its prior samples by k-mer spectrum: both are drawn from the softmax.
    # Reconstructions drawn from the softmax: what the swap judge reads (its ceiling) and
    # what a VAE's prior samples are compared with by k-mer spectrum.
    sampler = torch.Generator(device=dev).manual_seed(int(np.random.default_rng([cfg["seed"], 8]).integers(2**62)))
    test_out = model_pass(
        model, data.test_seq, data.test_tracks, cfg["batch_size"], dev, progress, "evaluate test", sampler
    )
    train_latent = encode_latents(model, data.train_seq, data.train_tracks, cfg["batch_size"], dev, progress)
    test_latent = test_out["latent"]
    t = _stage(timings, "model_pass", t)

    reconstruction, pca = evaluate_reconstruction(data, test_out, model, cfg)
    t = _stage(timings, "reconstruction_pca", t)

    features = {
        b: (train_latent[:, model.layout.slice(b)], test_latent[:, model.layout.slice(b)]) for b in model.layout.names
    }
    features["latent"] = (train_latent, test_latent)
    features["pca"] = (pca["train_emb"], pca["test_emb"])
    probes, pm, flags = evaluate_probes(data, model.layout, block_labels, features, cfg, outdir)
    t = _stage(timings, "probes", t)

    factors = [lab for lab in dict.fromkeys(block_labels.values()) if lab in probes["labels"]]
    disentanglement = evaluate_disentanglement(data, factors, features, cfg)
    t = _stage(timings, "disentanglement", t)

    swap = evaluate_swaps(model, data, block_labels, probes["labels"], test_out, cfg, dev)
    t = _stage(timings, "swap", t)

    anomaly, scores, seq_scores, chain_scores = evaluate_anomaly(model, data, test_out, pca, cfg, dev)
    t = _stage(timings, "anomaly", t)

    sites = evaluate_sites(model, data, test_out, pca, cfg)
    t = _stage(timings, "sites", t)

    vae = vae_spectra(model, data, test_out["sampled"], cfg, dev) if model.kind == "vae" else None
    vq = vq_usage(model, test_out["codes"]) if model.kind == "vq" and test_out["codes"] is not None else None
    t = _stage(timings, "generative", t)

    figures: dict[str, str] = {}
    if cfg["figures"]:
        colour_labels = [lab for lab in dict.fromkeys(block_labels.values()) if lab in data.y_test] or (
            ["chrom"] if "chrom" in data.y_test else []
        )
        colours = {lab: data.y_test[lab] for lab in colour_labels}
        from seqae.report_plots import model_training_note

        trained = model_training_note(model_path)  # the figures' titles say how long the model trained
        titled = f"{name} ({trained})" if trained else name
        figures = draw_figures(
            outdir, model, titled, pm, flags, colours, test_latent, scores, seq_scores, anomaly, cfg["seed"],
            chain_scores=chain_scores,
        )  # fmt: skip
    else:
        stale = remove_earlier_outputs(outdir, FIGURE_PATTERNS)
        if stale:
            log.info("evaluate.figures is false: removed %d figures of an earlier run from %s", len(stale), outdir)
    curves = Path(model_path).parent / "loss_curves.png"
    if curves.is_file() and curves.resolve() != (outdir / "loss_curves.png").resolve():
        with atomic_output(outdir / "loss_curves.png") as tmp:
            shutil.copyfile(curves, tmp)
        figures["loss_curves"] = "loss_curves.png"
    t = _stage(timings, "figures", t)

    timings["total"] = round(time.perf_counter() - t_total, 3)
    metrics: dict[str, Any] = {
        "format": METRICS_FORMAT,
        "format_version": METRICS_FORMAT_VERSION,
        "seqae_version": __version__,
        "model": {
            "name": name,
            "kind": model.kind,
            "path": str(model_path),
            "latent_dim": int(model.layout.dim),
            "blocks": {
                b: {"size": int(model.layout.sizes[b]), "label": block_labels.get(b)} for b in model.layout.names
            },
            "epoch": meta.get("epoch"),
            "n_parameters": int(sum(p.numel() for p in model.parameters())),
        },
        "data": {
            "windows": data.windows,
            "window_len": int(model.window_len),
            "track_names": list(data.schema.track_names),
            "n_test": int(data.test_seq.shape[0]),
            "n_test_available": data.n_test_available,
            "n_train": int(data.train_seq.shape[0]),
            "n_train_available": data.n_train_available,
            "n_pca_train": reconstruction["pca_n_train"],
            "labels": data.label_names,
        },
        "settings": cfg,
        "device": str(dev),
        "reconstruction": reconstruction,
        "probes": probes,
        "disentanglement": disentanglement,
        "swap": swap,
        "anomaly": anomaly,
        "sites": sites,
        "vae": vae,
        "vq": vq,
        "figures": figures,
        "timings": timings,
    }
    _write_json(metrics, outdir / "metrics.json")
    not_recoverable = [lab for lab, flag in probes["flag"].items() if flag == NOT_RECOVERABLE]
    log.info(
        "evaluate: %s on %d test windows: base accuracy %.3f (PCA %.3f); %s; written to %s",
        name,
        data.test_seq.shape[0],
        reconstruction["base_accuracy"],
        reconstruction["pca_base_accuracy"],
        f"not recoverable from sequence: {', '.join(not_recoverable)}"
        if not_recoverable
        else "every label recoverable from sequence",
        outdir,
    )
    return json.loads(json.dumps(_clean(metrics)))


def _clean(value: Any) -> Any:
    """JSON-ready copy: numpy scalars and arrays to Python, NaN and infinities to None."""
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_clean(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def _write_json(data: Mapping[str, Any], path: Path) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(_clean(data), indent=2, allow_nan=False) + "\n")


def _stage(timings: dict[str, float], name: str, start: float) -> float:
    now = time.perf_counter()
    timings[name] = round(now - start, 3)
    log.info("evaluate: %s done in %.1f s", name, now - start)
    return now
