"""seqae.evaluation.swaps: swap success, the real-mixture frontier and base agreement with hand-made decoders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from seqae.checkpoint import build_model, load_checkpoint, save_checkpoint
from seqae.evaluation import evaluate_model
from seqae.evaluation.swaps import MIXTURE_KEPT_SHARES
from tests.evaluation.helpers import FAST, N_WINDOWS

# Tiny models: one torch thread (see conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_swap_success_reported(evaluated: dict[str, Any]) -> None:
    swap = evaluated["metrics"]["plain"]["swap"]
    chrom = swap["chrom"]
    assert chrom["judge_learns"] is True and chrom["computed"] is True and chrom["skipped"] is None
    assert chrom["judge_heldout_accuracy"] > chrom["judge_chance"]
    assert chrom["n"] > 0.5 * N_WINDOWS["test"]  # donors are drawn with a different chromosome
    total = chrom["donor_fraction"] + chrom["recipient_fraction"] + chrom["other_fraction"]
    assert total == pytest.approx(1.0)
    assert 0.0 <= chrom["reconstruction_kept_fraction"] <= 1.0
    assert chrom["decoding"] == "sample"
    assert 0.0 <= chrom["donor_base_agreement"] <= 1.0 and 0.0 <= chrom["recipient_base_agreement"] <= 1.0
    mixture = chrom["real_mixture_donor_fraction"]
    assert set(mixture) == {f"{k:g}" for k in MIXTURE_KEPT_SHARES} | {"at_kept"}
    assert all(0.0 <= v <= 1.0 for v in mixture.values())
    gene = swap["gene"]
    assert gene["label"] == "gene_family"
    assert gene["computed"] or "cannot read" in gene["skipped"]


class _GCJudge:
    """A judge that calls a window "gc" when over half of its bases are C or G, else "at"."""

    def predict(self, codes: np.ndarray) -> np.ndarray:
        gc = np.isin(codes, (1, 2)).mean(axis=1)
        return np.where(gc > 0.5, "gc", "at")


def test_real_mixture_frontier_moves_from_recipient_to_donor() -> None:
    from seqae.evaluation.swaps import _real_mixture_frontier

    rng = np.random.default_rng(0)
    n, length = 200, 400
    labels = np.array(["gc", "at"] * (n // 2))
    # GC windows are all C/G, AT windows all A/T: the judge is exact on real windows.
    seq = np.where(labels[:, None] == "gc", rng.choice([1, 2], (n, length)), rng.choice([0, 3], (n, length)))
    donors = (np.arange(n) + 1) % n  # every donor has the other label
    out = _real_mixture_frontier(_GCJudge(), seq.astype(np.uint8), donors, labels, 0.0, np.random.default_rng(1))
    assert out["at_kept"] == 1.0  # nothing kept: the donor's real window, judged the donor's
    assert out["0.98"] == 0.0 and out["0.9"] == 0.0  # mostly the recipient: judged the recipient's
    assert out["0.5"] == pytest.approx(0.5, abs=0.15)  # half and half: a coin flip at the threshold
    shares = [out[f"{k:g}"] for k in MIXTURE_KEPT_SHARES]
    assert shares == sorted(shares, reverse=True)  # keeping more of the recipient never moves it further
    same = _real_mixture_frontier(_GCJudge(), seq.astype(np.uint8), np.arange(n), labels, 0.5, rng)
    assert same == {}  # no pair with different labels: nothing to score


@pytest.mark.parametrize("decoder_reads", ["all but chrom", "only chrom"])
def test_swap_base_agreement_on_hand_made_decoders(
    evaluated: dict[str, Any], tmp_path: Path, decoder_reads: str
) -> None:
    """The trained plain model with its decoder's input weights zeroed for some blocks: a decoder blind
    to the chrom block rebuilds every recipient exactly whatever the swap; one that reads only the chrom
    block rebuilds the donor."""
    state = load_checkpoint(evaluated["model"]["plain"])
    model = build_model(state)
    chrom = model.layout.slice("chrom")
    weight = state["model_state"]["decoder.from_latent.weight"].clone()  # [C * L0, D]
    if decoder_reads == "all but chrom":
        weight[:, chrom] = 0.0
    else:
        keep = weight[:, chrom].clone()
        weight.zero_()
        weight[:, chrom] = keep
    state["model_state"]["decoder.from_latent.weight"] = weight
    path = save_checkpoint(state, tmp_path / "best.pt")
    settings = {**FAST, "labels": ["chrom"], "figures": False}
    metrics = evaluate_model(
        path, evaluated["windows"], tmp_path / "eval", settings=settings, device="cpu", progress=False
    )
    swap = metrics["swap"]["chrom"]
    if decoder_reads == "all but chrom":
        assert swap["recipient_base_agreement"] == 1.0 and swap["donor_base_agreement"] < 1.0
    else:
        assert swap["donor_base_agreement"] == 1.0 and swap["recipient_base_agreement"] < 1.0


def test_a_converter_renders_the_swaps_and_their_ceiling(evaluated: dict[str, Any], tmp_path: Path) -> None:
    """A model with a converter (weights.conversion) is swapped through it, not through its direct head:
    a converter made to render every window as G gives swaps that agree with the recipient's and the
    donor's renderings at every base."""
    from tests.evaluation.helpers import TWO_LEVEL, model_file

    extra = {**TWO_LEVEL, "weights": {"direct": 1.0, "conversion": 1.0}}
    path = model_file(tmp_path / "model.pt", evaluated["windows"], evaluated["labels"], "plain", 0, extra=extra)
    state = load_checkpoint(path)
    state["model_state"]["converter.head.weight"].zero_()
    state["model_state"]["converter.head.bias"].copy_(torch.tensor([0.0, 0.0, 30.0, 0.0]))
    path = save_checkpoint(state, tmp_path / "best.pt")
    settings = {**FAST, "labels": ["chrom"], "figures": False}
    metrics = evaluate_model(
        path, evaluated["windows"], tmp_path / "eval", settings=settings, device="cpu", progress=False
    )
    swap = metrics["swap"]["chrom"]
    assert swap["computed"]
    assert swap["recipient_base_agreement"] == 1.0 and swap["donor_base_agreement"] == 1.0
    # The direct head of the same model does not render all G: its reconstruction is not what was swapped.
    assert metrics["reconstruction"]["base_accuracy"] < 0.9
