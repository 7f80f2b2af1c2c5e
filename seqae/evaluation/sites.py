"""Known sites (``evaluate.truth_sites``): reconstruction accuracy on site bases against the rest,
and the information the local code at each site carries on its TF.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from seqae.errors import InputError, SeqaeError
from seqae.evaluation.data import EvaluationData
from seqae.fileio import require_file

__all__ = ["evaluate_sites"]


def evaluate_sites(
    model: Any, data: EvaluationData, test_out: Mapping[str, Any], pca: Mapping[str, Any], cfg: Mapping[str, Any]
) -> dict[str, Any] | None:
    """Known sites (``cfg["truth_sites"]``): accuracy on site bases vs the rest, and code-TF information.

    Reconstructions are the test pass's (decoded from the latent alone); PCA's
    (arg-max of its inverse transform) are scored the same way beside them.
    With a local latent sequence, the code whose stride holds each site's
    centre is compared with the site's TF by mutual information.
    """
    from seqae.metrics.sites import accuracy_inside_outside, code_label_information, site_masks

    path = cfg["truth_sites"]
    if path is None:
        return None
    if data.test_chrom is None or data.test_first_base is None:
        raise SeqaeError(f"{data.windows}: no chrom and start label columns to place evaluate.truth_sites on")
    p = require_file(path, "evaluate.truth_sites")
    try:
        sites = pd.read_csv(p, sep="\t", dtype={"chrom": str})
    except (ValueError, pd.errors.ParserError) as exc:
        raise InputError(p, f"not a tab-separated sites table ({exc})") from None
    missing = [c for c in ("chrom", "start", "end", "tf") if c not in sites.columns]
    if missing:
        raise InputError(p, f"no column {missing[0]!r} (needed: chrom, start, end, tf)")
    masks = site_masks(data.test_chrom, data.test_first_base, model.window_len, sites, "tf")
    length = data.test_seq.shape[1]
    pca_pred = (
        np.concatenate(
            [
                pca["pca"].inverse_transform(pca["test_emb"][lo : lo + 2048]).reshape(-1, length, 4).argmax(-1)
                for lo in range(0, data.test_seq.shape[0], 2048)
            ]
        )
        if data.test_seq.shape[0]
        else np.zeros_like(data.test_seq)
    )
    out: dict[str, Any] = {
        "path": str(path),
        "n_sites_in_windows": int(masks.window.size),
        "reconstruction": accuracy_inside_outside(test_out["pred"], data.test_seq, masks.mask),
        "pca_reconstruction": accuracy_inside_outside(pca_pred, data.test_seq, masks.mask),
        "next_base": None,
        "local_code_tf_information": None,
    }
    if test_out.get("next_base_pred") is not None:
        out["next_base"] = accuracy_inside_outside(test_out["next_base_pred"], data.test_seq, masks.mask)
    local = test_out.get("local_codes")
    if local is not None and masks.window.size:
        stride = model.settings["downsample"]
        codes = local[masks.window, np.minimum(masks.centre // stride, local.shape[1] - 1)]
        out["local_code_tf_information"] = code_label_information(codes, masks.label, seed=cfg["seed"])
    return out
