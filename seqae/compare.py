"""Side-by-side comparison of evaluated models: one row per ``metrics.json``.

``compare_models(["eval/plain/metrics.json", "eval/vq/metrics.json"], "comparison.tsv", "comparison.png")``
writes ``comparison.tsv``, the same table as Markdown in ``comparison.md``,
and a grouped bar figure of the 0..1 headline numbers.

Columns (NaN / empty where a model has no such number):

* ``model``, ``kind``, ``n_test``, ``metrics`` (the file read);
* ``recon_accuracy`` vs ``pca_recon_accuracy`` (PCA with the same latent size);
* per labelled block ``<b>`` (e.g. ``chrom``, ``gene``): ``<b>_label``,
  ``<b>_probe`` (held-out probe accuracy of the block on its label),
  ``<b>_kmer`` (the k-mer baseline), ``<b>_residual`` (the ``residual`` block,
  or the first unlabelled block, on that label), ``<b>_chance``,
  ``<b>_recoverable`` (the k-mer baseline beats chance);
* ``tf_identity_latent`` / ``tf_identity_kmer``: the window's peak set (TF)
  read by a held-out probe from the whole embedding / from its k-mer spectrum;
* ``swap_<b>_donor`` / ``swap_<b>_recipient``: fraction of swapped windows the
  judge assigns to the donor's / recipient's label (empty when not computed);
  ``swap_<b>_kept`` / ``swap_<b>_moved``: share of the swapped windows'
  likeliest bases that are the recipient's / the donor's own
  reconstruction's (what the swap keeps of the recipient, and how far its
  bases moved to the donor's: a decoder that ignores the latent scores high
  on both); ``swap_<b>_judge``: the judge's accuracy on real test windows;
  ``swap_<b>_judge_recon``: its accuracy on the model's own (unswapped)
  reconstructions, decoded as the swaps are; ``swap_<b>_real_mixture``: its
  donor fraction on real recipient windows that keep the swap's kept share of
  their bases and take the rest from the donor's real window;
* ``mig``, ``dci_disentanglement``;
* ``auroc_shuffled``, ``auroc_foreign`` (and ``pca_auroc_*``,
  ``seq_corrected_auroc_shuffled`` of the sequence error less an order-1
  chain's, ``markov_auroc_*`` of the model-free Markov baseline (order-k
  to order-1 likelihood ratio) and ``markov_raw_auroc_shuffled`` of the
  order-k chain's own error, the reference of ``seq_auroc_shuffled``);
  ``seq_gain_real`` / ``seq_gain_shuffled``: the mean sequence error's gain
  over each window's own base-composition entropy (nats per base), on real
  test windows and on their shuffles (the AUROC rests on the difference);
  ``latent_gain_real`` / ``latent_gain_shuffled``: an autoregressive
  decoder's per-base log-likelihood with its latent minus without it (nats
  per base), on real test windows and on their shuffles;
  ``latent_gain_vs_chain_*``: the same against the decoder's chain over its
  reach (differs where the latent path reads only the k-base table, whose
  no-latent counterpart is then an order-k chain);
  ``chain_auroc_shuffled`` / ``chain_corrected_auroc_shuffled`` /
  ``chain_auroc_foreign``: the same decoder's error with its latent off (its
  own learnt chain over ``decoder.context`` or ``decoder.reach`` bases);
* ``local_bits_per_base`` (capacity of a local latent sequence) and
  ``pca_same_dims_recon_accuracy`` (PCA with one component per global
  coordinate and per local code);
* VQ: ``vq_perplexity`` (mean over blocks), ``vq_usage``;
* VAE: ``vae_spectrum_k<k>`` (generated vs test) and ``vae_spectrum_k<k>_ref`` (train vs test).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from seqae.errors import InputError
from seqae.fileio import atomic_output, require_file, write_tsv

__all__ = ["compare_models", "comparison_row", "markdown_table"]


def _get(data: Any, *keys: Any, default: Any = None) -> Any:
    for key in keys:
        if not isinstance(data, Mapping) or key not in data or data[key] is None:
            return default
        data = data[key]
    return data


def _num(value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return float("nan")
    return out


def comparison_row(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The comparison columns (see the module docstring) of one evaluation's metrics dict."""
    row: dict[str, Any] = {
        "model": _get(metrics, "model", "name", default=""),
        "kind": _get(metrics, "model", "kind", default=""),
        "n_test": _get(metrics, "data", "n_test", default=float("nan")),
        "recon_accuracy": _num(_get(metrics, "reconstruction", "base_accuracy")),
        "pca_recon_accuracy": _num(_get(metrics, "reconstruction", "pca_base_accuracy")),
        "local_bits_per_base": _num(_get(metrics, "reconstruction", "bottleneck", "local_bits_per_base")),
        "pca_same_dims_recon_accuracy": _num(
            _get(metrics, "reconstruction", "bottleneck", "pca_same_dims_base_accuracy")
        ),
    }
    blocks = _get(metrics, "model", "blocks", default={}) or {}
    unlabelled = [name for name, b in blocks.items() if not _get(b, "label")]
    residual_block = "residual" if "residual" in unlabelled else (unlabelled[0] if unlabelled else None)
    probe_blocks = _get(metrics, "probes", "blocks", default={}) or {}
    accuracy = _get(metrics, "probes", "accuracy", default={}) or {}
    for block, entry in probe_blocks.items():
        label = entry.get("label")
        row[f"{block}_label"] = label
        row[f"{block}_probe"] = _num(entry.get("probe"))
        row[f"{block}_kmer"] = _num(entry.get("kmer_baseline"))
        residual = float("nan")
        if residual_block is not None:
            residual = _num(_get(entry, "residual", residual_block, default=_get(accuracy, residual_block, label)))
        row[f"{block}_residual"] = residual
        row[f"{block}_chance"] = _num(entry.get("chance"))
        row[f"{block}_recoverable"] = entry.get("recoverable")
    # TF identity (the window's peak set) read from the whole embedding, beside the k-mer probe.
    kmer_row = _get(metrics, "probes", "baseline_row", default="kmer4")
    row["tf_identity_latent"] = _num(_get(accuracy, "latent", "peak_set"))
    row["tf_identity_kmer"] = _num(_get(accuracy, kmer_row, "peak_set"))
    for block, entry in (_get(metrics, "swap", default={}) or {}).items():
        computed = bool(entry.get("computed"))
        row[f"swap_{block}_donor"] = _num(entry.get("donor_fraction")) if computed else float("nan")
        row[f"swap_{block}_recipient"] = _num(entry.get("recipient_fraction")) if computed else float("nan")
        row[f"swap_{block}_kept"] = _num(entry.get("recipient_base_agreement")) if computed else float("nan")
        row[f"swap_{block}_moved"] = _num(entry.get("donor_base_agreement")) if computed else float("nan")
        # The judge's accuracy on real test windows: the ceiling a swap to the donor is measured against.
        row[f"swap_{block}_judge"] = _num(entry.get("judge_heldout_accuracy"))
        # The judge on the model's own plain reconstructions, and on real windows that keep the
        # swap's share of the recipient's bases (the rest the donor's): what a swap could show.
        row[f"swap_{block}_judge_recon"] = _num(entry.get("reconstruction_kept_fraction")) if computed else float("nan")
        mixture = entry.get("real_mixture_donor_fraction") or {}
        row[f"swap_{block}_real_mixture"] = _num(mixture.get("at_kept")) if computed else float("nan")
    row["mig"] = _num(_get(metrics, "disentanglement", "mig", "latent"))
    row["dci_disentanglement"] = _num(_get(metrics, "disentanglement", "dci", "latent", "disentanglement"))
    for key in (
        "auroc_shuffled",
        "auroc_foreign",
        "seq_auroc_shuffled",
        "pca_auroc_shuffled",
        "pca_auroc_foreign",
        "seq_corrected_auroc_shuffled",
        "markov_auroc_shuffled",
        "markov_raw_auroc_shuffled",
        "markov_auroc_foreign",
    ):
        row[key] = _num(_get(metrics, "anomaly", key))
    for control in ("real", "shuffled"):
        row[f"seq_gain_{control}"] = _num(_get(metrics, "anomaly", "seq_gain_over_composition", control))
        row[f"latent_gain_{control}"] = _num(_get(metrics, "anomaly", "latent_contribution", "nats_per_base", control))
        # Against the decoder's chain over the reach: the same, unless the latent path reads no reach.
        row[f"latent_gain_vs_chain_{control}"] = _num(
            _get(metrics, "anomaly", "latent_contribution", "vs_chain_nats_per_base", control)
        )
    # An autoregressive decoder's own chain (latent off): a learnt anomaly score of its own.
    for key in ("auroc_shuffled", "corrected_auroc_shuffled", "auroc_foreign"):
        row[f"chain_{key}"] = _num(_get(metrics, "anomaly", "latent_contribution", f"no_latent_{key}"))
    vq = _get(metrics, "vq")
    row["vq_perplexity"] = (
        float(np.mean([_num(v) for v in vq["perplexity"].values()])) if vq and vq.get("perplexity") else float("nan")
    )
    row["vq_usage"] = (
        float(np.mean([_num(v) for v in vq["usage"].values()])) if vq and vq.get("usage") else float("nan")
    )
    for k, entry in (_get(metrics, "vae", "spectrum_distance", default={}) or {}).items():
        row[f"vae_spectrum_k{k}"] = _num(entry.get("generated_vs_test"))
        row[f"vae_spectrum_k{k}_ref"] = _num(entry.get("train_vs_test"))
    return row


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, float | np.floating):
        return f"{value:.3f}"
    return str(value).replace("|", "\\|")


def markdown_table(table: pd.DataFrame) -> str:
    """A DataFrame as a GitHub-flavoured Markdown table (floats to 3 decimals, missing values empty)."""
    head = "| " + " | ".join(map(str, table.columns)) + " |"
    numeric = [
        pd.api.types.is_numeric_dtype(table[c]) and not pd.api.types.is_bool_dtype(table[c]) for c in table.columns
    ]
    rule = "|" + "|".join("---:" if n else "---" for n in numeric) + "|"
    body = ["| " + " | ".join(_cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([head, rule, *body]) + "\n"


def _read_metrics(path: str | os.PathLike[str]) -> dict[str, Any]:
    p = require_file(path, "metrics file")
    try:
        data = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(p, f"not a JSON metrics file ({exc})") from None
    if not isinstance(data, dict) or "model" not in data:
        raise InputError(p, "not a seqae metrics.json (no 'model' entry)")
    return data


# Bars of the comparison figure per labelled block ``{b}``: (column, label) templates.
_BLOCK_PROBE_BARS = (
    ("{b}_probe", "{b} block probe"),
    ("{b}_kmer", "{b}: k-mer baseline"),
    ("{b}_residual", "{b}: residual probe"),
    ("{b}_chance", "{b}: chance"),
)
_BLOCK_SWAP_BARS = (
    ("swap_{b}_donor", "swap {b}: donor"),
    ("swap_{b}_judge", "swap {b}: judge on real windows"),
    ("swap_{b}_judge_recon", "swap {b}: judge on reconstructions"),
    ("swap_{b}_real_mixture", "swap {b}: real bases mixed at the kept share"),
    ("swap_{b}_recipient", "swap {b}: recipient"),
    ("swap_{b}_kept", "swap {b}: kept bases"),
    ("swap_{b}_moved", "swap {b}: donor's bases"),
)
_ANOMALY_BARS = (
    ("auroc_shuffled", "AUROC shuffled"),
    ("seq_corrected_auroc_shuffled", "AUROC shuffled, order-1 corrected"),
    ("markov_auroc_shuffled", "shuffled: Markov baseline"),
    ("seq_auroc_shuffled", "AUROC shuffled, sequence error"),
    ("markov_raw_auroc_shuffled", "shuffled: Markov chain's error"),
    ("chain_corrected_auroc_shuffled", "AUROC shuffled, chain (latent off), corrected"),
    ("auroc_foreign", "AUROC foreign"),
)


def _figure_columns(table: pd.DataFrame) -> list[tuple[str, str]]:
    """Bars of the comparison figure, ``(column, label)``: every column on a 0..1 scale, in this order."""

    def present(column: str) -> bool:
        return column in table and table[column].notna().any()

    def per_block(templates: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
        return [(col.format(b=b), label.format(b=b)) for b in blocks for col, label in templates]

    blocks = [c[: -len("_probe")] for c in table.columns if c.endswith("_probe")]
    cols = [("recon_accuracy", "recon accuracy"), ("pca_recon_accuracy", "PCA recon accuracy")]
    if present("pca_same_dims_recon_accuracy"):
        cols.append(("pca_same_dims_recon_accuracy", "PCA recon, same dims"))
    cols += per_block(_BLOCK_PROBE_BARS)
    if present("tf_identity_latent"):
        cols += [
            ("tf_identity_latent", "TF identity from the embedding"),
            ("tf_identity_kmer", "TF identity: k-mer baseline"),
        ]
    return cols + per_block(_BLOCK_SWAP_BARS) + list(_ANOMALY_BARS)


def compare_models(
    metrics_paths: Sequence[str | os.PathLike[str]],
    out_tsv: str | os.PathLike[str],
    out_png: str | os.PathLike[str] | None = None,
) -> pd.DataFrame:
    """Tabulate several evaluations side by side.

    Args:
        metrics_paths: ``metrics.json`` files written by :func:`seqae.evaluation.evaluate_model`.
        out_tsv: the table (tab-separated); the Markdown version goes beside it with suffix ``.md``.
        out_png: grouped bar figure (format from the extension); None: ``out_tsv`` with suffix ``.png``.

    Returns:
        The table, one row per file in the order given. Duplicate model names get
        the metrics file's folder appended (``plain (run2)``).

    Raises:
        SeqaeError: no file given, a file given twice, a missing or unreadable metrics file.
    """
    from seqae.errors import SeqaeError

    if not metrics_paths:
        raise SeqaeError("compare needs at least one metrics.json")
    resolved = [os.path.realpath(path) for path in metrics_paths]
    for i, real in enumerate(resolved):
        if real in resolved[:i]:
            first = metrics_paths[resolved.index(real)]
            raise SeqaeError(f"{metrics_paths[i]}: given twice (first as {first}); give each metrics.json once")
    from seqae.figure import figure_path
    from seqae.report_plots import draw_comparison, model_training_note

    # The figure's path is checked before the table is written: no half set of outputs.
    png = figure_path(out_png if out_png is not None else Path(out_tsv).with_suffix(".png"))

    rows, notes = [], []
    for path in metrics_paths:
        metrics = _read_metrics(path)
        row = comparison_row(metrics)
        row["metrics"] = str(path)
        rows.append(row)
        # How long the model trained (its model.json beside best.pt), for the figure's legend.
        notes.append(
            model_training_note(_get(metrics, "model", "path", default="")) if _get(metrics, "model", "path") else None
        )
    names = [r["model"] or Path(r["metrics"]).parent.name for r in rows]
    duplicated = {n for n in names if names.count(n) > 1}
    for r, n in zip(rows, names, strict=True):
        r["model"] = f"{n} ({Path(r['metrics']).parent.name})" if n in duplicated else n
    # Columns in first-seen order across rows, metrics path last.
    columns = list(dict.fromkeys(c for r in rows for c in r if c != "metrics")) + ["metrics"]
    table = pd.DataFrame.from_records(rows, columns=columns)
    out_tsv = Path(out_tsv)
    write_tsv(table, out_tsv)
    with atomic_output(out_tsv.with_suffix(".md")) as tmp:
        tmp.write_text(markdown_table(table.drop(columns=["metrics"])))
    draw_comparison(table, _figure_columns(table), png, notes=dict(zip(table["model"], notes, strict=True)))
    return table
