"""``trees.tsv``: the columns of a family's summary row, the rows gathered, their summary and its figure.

Each family of the tree stage (:mod:`seqae.phylo.stage`) writes one row,
``<family>.tsv``, with the columns :data:`TREES_COLUMNS`;
:func:`gather_trees` concatenates the rows into ``trees.tsv`` (``seqae
trees-gather``), :func:`summarise_trees` reduces that table to mean nRF per
method and how the latent trees fare against NJ on p-distances and the
likelihood baselines, and :func:`draw_tree_summary` draws the mean nRF per
method. nRF is the normalised Robinson–Foulds distance to the family's
reference tree (0: same topology, 1: no split shared); log-likelihoods are in
nats.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from seqae.errors import InputError
from seqae.fileio import require_file, write_tsv

__all__ = [
    "LOGLIK_TIE",
    "NRF_COLUMNS",
    "TREES_COLUMNS",
    "draw_tree_summary",
    "gather_trees",
    "summarise_trees",
]

#: Columns of ``<family>.tsv`` and ``trees.tsv``, in order.
TREES_COLUMNS = (
    "family",  # family name
    "n_taxa",  # sequences
    "n_sites",  # alignment columns
    "geometry",  # latent geometry
    "device",  # where the tree-AE trained
    "nrf_latent",  # nRF of the latent tree to the reference tree (empty without one)
    "nrf_nj_p",  # nRF of NJ on p-distances
    "nrf_bme_p",  # nRF of NJ on p-distances refined by BME NNIs (the latent tree's search, on raw distances)
    "nrf_nj_jc69",  # nRF of NJ on JC69 distances
    "nrf_fasttree",  # nRF of FastTree -gtr -gamma (empty when not installed)
    "nrf_iqtree",  # nRF of IQ-TREE -m GTR+G (empty when not installed)
    "loglik_latent",  # log-likelihood of the latent topology under the family's one GTR+G4 model (ML branch lengths)
    "loglik_nj_p",  # the same for each baseline tree
    "loglik_bme_p",
    "loglik_nj_jc69",
    "loglik_fasttree",
    "loglik_iqtree",
    "loglik_model_tree",  # the tree the shared GTR+G4 model was fitted on (iqtree, fasttree or latent)
    "nrf_latent_noadv",  # tree_latent: nRF of the family's latent tree fitted without the adversary
    "nrf_latent_adv",  # the same family fitted with the adversary (weight adversarial_weight_adv)
    "loglik_latent_noadv",  # their log-likelihoods under the family's one model
    "loglik_latent_adv",
    "adversarial_weight_adv",  # the adversarial weight of the fit with it (empty when there was none)
    "disc_score",  # the judge's probability that the written latent tree (points: latent metric) is a real tree's
    "disc_auc_before",  # the judge's held-out AUC, real trees vs the latent, without the adversary (points: before it)
    "disc_auc_after",  # the same with the adversary (closer to 0.5: more like a real tree)
    "disc_auc_after_cotrained",  # points: the co-trained adversary's AUC on the final latent
    "epochs",  # training steps run (warm-up + adversarial)
    "seconds",  # wall-clock seconds of the tree-AE fit
    "seconds_loglik",  # scoring every tree under the shared model, and the ancestral sequences
    "seconds_total",  # the whole family: reading, fit, baselines, likelihoods, figures, files
)
#: Log-likelihoods closer than this count as equal in the summary (the fits stop at 1e-6 per site).
LOGLIK_TIE = 0.01
#: nRF columns of trees.tsv and the names the summary gives them.
NRF_COLUMNS = {
    "nrf_latent": "latent",
    "nrf_latent_adv": "latent, with adversary",
    "nrf_nj_p": "NJ p-distance",
    "nrf_bme_p": "BME-NNI p-distance",
    "nrf_nj_jc69": "NJ JC69",
    "nrf_fasttree": "FastTree",
    "nrf_iqtree": "IQ-TREE",
}


def gather_trees(rows: Sequence[str | os.PathLike[str]], out_tsv: str | os.PathLike[str]) -> pd.DataFrame:
    """Concatenate one-row family TSVs (from :func:`seqae.phylo.stage.run_family`) into ``trees.tsv``.

    Raises:
        InputError: no rows given, a file that is not a family row (columns
            differ from :data:`TREES_COLUMNS`), or a family listed twice.
    """
    if not rows:
        raise InputError(out_tsv, "no family rows to gather")
    frames = []
    for path in rows:
        p = require_file(path, "family row file")
        try:
            frame = pd.read_csv(p, sep="\t")
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise InputError(p, f"not a tab-separated table ({str(exc).splitlines()[0]})") from None
        if tuple(frame.columns) != TREES_COLUMNS:
            raise InputError(p, f"columns are not those of a family row ({', '.join(TREES_COLUMNS[:3])}, ...)")
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    twice = table["family"][table["family"].duplicated()].tolist()
    if twice:
        raise InputError(out_tsv, f"family {twice[0]!r} appears in more than one row file")
    write_tsv(table, out_tsv)
    return table


def summary_line(summary: Mapping[str, Any]) -> str:
    """One line of :func:`summarise_trees` for the terminal: the mean nRFs, else the log-likelihoods."""
    if summary["n_with_reference"]:
        vs = summary["latent_vs_nj_p"]
        latent, nj = (summary[c]["mean"] for c in ("nrf_latent", "nrf_nj_p"))
        return (
            f"mean nRF over {summary['n_with_reference']} families with a reference: latent {latent:.3f}, NJ-p "
            + (f"{nj:.3f}" if nj is not None else "not run")
            + f" (latent better/tied/worse than NJ-p: {vs['better']}/{vs['tied']}/{vs['worse']})"
        )
    parts = [
        f"{method}'s {entry['mean_difference']:+.2f} ({entry['latent_ge']} of {entry['n']} at least as likely)"
        for method, entry in (("FastTree", summary.get("loglik_latent_vs_fasttree")),
                              ("IQ-TREE", summary.get("loglik_latent_vs_iqtree")))
        if entry and entry.get("n")
    ]  # fmt: skip
    return f"{summary['n_families']} families, no reference tree: no nRF; the latent tree's log-likelihood minus " + (
        "; ".join(parts) if parts else "no baseline's (FastTree and IQ-TREE not run)"
    )


def summarise_trees(table: pd.DataFrame) -> dict[str, Any]:
    """Mean nRF to the reference per method, and how the latent trees fare against NJ on p-distances.

    Args:
        table: ``trees.tsv`` (:data:`TREES_COLUMNS`).

    Returns:
        ``n_families``, ``n_with_reference``; per nRF column ``mean``, ``sem``
        and ``n`` (families with a value); ``latent_vs_nj_p``: families where
        the latent tree is ``better``, ``tied`` or ``worse`` than NJ-p, and
        ``latent_le_nj_p`` (mean latent nRF <= mean NJ-p nRF; None without a
        reference); the mean discriminator AUC before and after;
        ``loglik_latent_vs_fasttree`` and ``loglik_latent_vs_iqtree``: over
        the families with both log-likelihoods, ``n``, ``latent_ge`` (the
        latent tree's is at least the method's, within :data:`LOGLIK_TIE`
        units) and ``mean_difference`` (latent minus the method; None
        without families).
    """
    summary: dict[str, Any] = {"n_families": len(table),
                               "n_with_reference": int(table["nrf_latent"].notna().sum())}  # fmt: skip
    for column in NRF_COLUMNS:
        values = table[column].dropna().to_numpy(float) if column in table else np.zeros(0)  # older tables lack some
        sem = float(values.std(ddof=1) / np.sqrt(values.size)) if values.size > 1 else float("nan")
        summary[column] = {"mean": float(values.mean()) if values.size else None,
                           "sem": sem if math.isfinite(sem) else None, "n": int(values.size)}  # fmt: skip
    both = table[["nrf_latent", "nrf_nj_p"]].dropna()
    diff = both["nrf_latent"] - both["nrf_nj_p"]
    summary["latent_vs_nj_p"] = {
        "better": int((diff < -1e-9).sum()),
        "tied": int((diff.abs() <= 1e-9).sum()),
        "worse": int((diff > 1e-9).sum()),
        "latent_le_nj_p": bool(diff.mean() <= 1e-9) if len(both) else None,
    }
    for column in ("disc_auc_before", "disc_auc_after"):
        values = table[column].dropna()
        summary[f"mean_{column}"] = float(values.mean()) if len(values) else None
    for method in ("fasttree", "iqtree"):
        columns = ["loglik_latent", f"loglik_{method}"]
        if not set(columns) <= set(table.columns):  # a table written before these columns
            summary[f"loglik_latent_vs_{method}"] = {"n": 0, "latent_ge": 0, "mean_difference": None}
            continue
        pair = table[columns].dropna()
        diff = pair["loglik_latent"] - pair[f"loglik_{method}"]
        summary[f"loglik_latent_vs_{method}"] = {
            "n": len(pair),
            "latent_ge": int((diff >= -LOGLIK_TIE).sum()),
            "mean_difference": float(diff.mean()) if len(pair) else None,
        }
    return summary


def draw_tree_summary(table: pd.DataFrame, path: str | os.PathLike[str], title: str = "Trees") -> Path:
    """Bar figure of the mean nRF to the reference per method (± s.e.m.), one point per family.

    Families without a reference have no nRF; with none at all the figure
    says so instead of drawing empty bars.
    """
    from seqae.figure import plt, save_figure

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    summary = summarise_trees(table)
    columns = [c for c in NRF_COLUMNS if summary[c]["n"]]
    if not columns:
        ax.text(0.5, 0.5, "no reference trees: no nRF to show", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
    else:
        rng = np.random.default_rng(0)  # fixed jitter: the same table draws the same figure
        for i, column in enumerate(columns):
            values = table[column].dropna().to_numpy(float)
            ax.bar(i, summary[column]["mean"], yerr=summary[column]["sem"] or 0.0, edgecolor="black", capsize=4,
                   color="#2c7fb8" if column == "nrf_latent" else "#bdbdbd", zorder=1)  # fmt: skip
            ax.scatter(i + rng.uniform(-0.25, 0.25, values.size), values, s=10, color="black", alpha=0.6, zorder=2)
        ax.set_xticks(range(len(columns)), [NRF_COLUMNS[c] for c in columns], rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("normalised RF to the reference\n(lower is better; 0 = same topology)", fontsize=9)
        ax.set_ylim(0, 1.05)  # nRF lies in [0, 1]; the margin keeps dots at 1 whole
    ax.set_title(f"{title}\n{len(table)} families: mean ± s.e.m., a dot per family", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)
