"""Block swaps: windows decoded with another window's block, read by a raw-sequence judge;
framed by real-base mixtures that keep the same share of the recipient.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from seqae.evaluation.data import EvaluationData, subsample
from seqae.evaluation.labels import known
from seqae.inference import autocast, batches, inference_mode

__all__ = ["MIXTURE_KEPT_SHARES", "evaluate_swaps"]


def evaluate_swaps(
    model: Any,
    data: EvaluationData,
    block_labels: Mapping[str, str],
    probed: Sequence[str],
    test_out: Mapping[str, Any],
    cfg: Mapping[str, Any],
    device: torch.device,
) -> dict[str, Any]:
    """Swap success of every labelled block, judged by a raw-sequence classifier trained on train windows.

    Swapped and plain reconstructions are turned into bases the same way
    (``cfg["swap_decoding"]``), so the judge's ceiling (how often it still
    recognises the recipient's label in the plain reconstruction) is measured
    on the same kind of sequence as the swaps. The plain reconstructions are
    the test pass's (``test_out``: ``latent``, ``pred``, ``sampled``), or, for a
    model with a converter (``weights.conversion``), the converter's own
    rendering of the recipients, as it renders their swaps.
    """
    from seqae.metrics import swap_success, train_judge
    from seqae.models.decoder import bases_from_logits
    from seqae.swap import decode_latents, swap_latents

    sample = cfg["swap_decoding"] == "sample"
    seed = cfg["seed"]
    latent = torch.from_numpy(test_out["latent"]).to(device)
    test_judged = test_out["sampled"] if sample else test_out["pred"]
    out: dict[str, Any] = {}
    for i, (block, label) in enumerate(block_labels.items()):
        entry: dict[str, Any] = {"label": label, "computed": False, "skipped": None}
        out[block] = entry
        if label not in probed:
            entry["skipped"] = f"label {label!r} not available"
            continue
        y_tr, y_te = data.y_train[label], data.y_test[label]
        known_te = np.flatnonzero(known(y_te))
        judge_rows = subsample(np.flatnonzero(known(y_tr)), cfg["judge_max"], np.random.default_rng([seed, 3]))
        if np.unique(y_tr[judge_rows].astype(str)).size < 2 or known_te.size < 2:
            entry["skipped"] = f"fewer than two {label!r} classes to judge"
            continue
        judge_y, test_y = y_tr[judge_rows].astype(str), y_te[known_te].astype(str)
        judge = train_judge(
            data.train_seq[judge_rows],
            judge_y,
            k=cfg["judge_k"],
            codes_heldout=data.test_seq[known_te],
            y_heldout=test_y,
            seed=seed,
        )
        chance = _majority_chance(judge_y, test_y)
        learns = bool(judge.heldout_accuracy > chance + cfg["recoverable_margin"])
        entry.update(
            judge_heldout_accuracy=judge.heldout_accuracy,
            judge_heldout_balanced_accuracy=judge.heldout_balanced_accuracy,
            judge_chance=chance,
            judge_learns=learns,
            n_judge_train=judge.n_train,
        )
        if not learns:
            entry["skipped"] = (
                f"the judge cannot read {label!r} from real test sequence "
                f"(accuracy {judge.heldout_accuracy:.3f}, chance {chance:.3f})"
            )
            continue
        rng = np.random.default_rng([seed, 4, i])
        recipients = subsample(known_te, cfg["swap_max"], rng)
        recipient_y = y_te[recipients].astype(str)
        donors = _different_label_donors(recipient_y, rng)
        own = latent[torch.from_numpy(recipients).to(device)]
        swapped = swap_latents(model.layout, own, donors, block)
        generator = torch.Generator(device=device).manual_seed(int(rng.integers(2**62)))
        judged_own, own_likeliest = test_judged[recipients], test_out["pred"][recipients]
        if getattr(model, "autoregressive", False):
            # Decoded from the recipient's local codes and the swapped global latent: by the
            # converter where there is one (and then its own unswapped rendering frames the
            # swap), else by the direct head, else base after base.
            local = test_out["local_codes"]
            own_local = torch.from_numpy(local[recipients]).to(device) if local is not None else None
            if getattr(model, "converter", None) is not None:
                own_likeliest, judged_own = _decode_swapped(model, own, own_local, sample, generator, cfg["batch_size"])
            swapped_likeliest, swapped_codes = _decode_swapped(
                model, swapped, own_local, sample, generator, cfg["batch_size"]
            )
        else:
            with autocast(device):  # the precision of the test pass whose reconstructions frame the swap
                logits, _ = decode_latents(model, swapped, cfg["batch_size"])
            swapped_likeliest = logits.argmax(1).to(torch.uint8).cpu().numpy()
            swapped_codes = (
                bases_from_logits(logits, True, generator).to(torch.uint8).cpu().numpy()
                if sample
                else swapped_likeliest
            )
        result = swap_success(judge, swapped_codes, recipient_y[donors], recipient_y)
        # The ceiling: how often the judge still recognises the recipient's label in its plain reconstruction.
        kept = judge.predict(judged_own) == recipient_y
        entry.update(
            {k: v for k, v in result.items() if not k.startswith("judge_")},
            computed=True,
            decoding=cfg["swap_decoding"],
            reconstruction_kept_fraction=float(np.mean(kept)),
            # Is the rest of the recipient kept? Per-base agreement of the swapped window's
            # likeliest bases with the recipient's own reconstruction and with the donor's.
            recipient_base_agreement=float(np.mean(swapped_likeliest == own_likeliest)),
            donor_base_agreement=float(np.mean(swapped_likeliest == own_likeliest[donors])),
        )
        kept_share = entry["recipient_base_agreement"]
        entry["real_mixture_donor_fraction"] = _real_mixture_frontier(
            judge, data.test_seq[recipients], donors, recipient_y, kept_share, np.random.default_rng([seed, 5, i])
        )
    return out


#: Shares of the recipient's real bases kept in the real-base mixtures that frame a swap's figure.
MIXTURE_KEPT_SHARES = (0.5, 0.7, 0.8, 0.9, 0.95, 0.98)


def _real_mixture_frontier(
    judge: Any,
    recipient_seq: np.ndarray,
    donors: np.ndarray,
    recipient_y: np.ndarray,
    kept_share: float,
    rng: np.random.Generator,
) -> dict[str, float]:
    """How far a window can move to the donor while keeping a share of the recipient's bases.

    Each recipient's real test window keeps a random share ``k`` of its bases
    and takes the rest, position by position, from its donor's real window;
    the judge's donor fraction on these mixtures, over pairs with different
    labels, is what any swap that keeps ``k`` of the recipient could show
    with real bases. Measured at :data:`MIXTURE_KEPT_SHARES` and at the
    swap's own kept share (``at_kept``).

    Args:
        judge: the fitted swap judge.
        recipient_seq: ``uint8 [N, L]`` the recipients' real test windows.
        donors: ``int [N]`` row of each recipient's donor among them.
        recipient_y: ``[N]`` the recipients' labels.
        kept_share: the swap's ``recipient_base_agreement``.
        rng: random generator for the kept positions.

    Returns:
        ``{"<k>": donor fraction, ..., "at_kept": donor fraction}``.
    """
    scored = recipient_y[donors] != recipient_y
    out: dict[str, float] = {}
    if not scored.any():
        return out
    recipient = recipient_seq[scored]
    donor = recipient_seq[donors[scored]]
    donor_y = recipient_y[donors[scored]]
    u = rng.random(recipient.shape)  # one draw per position, shared by every share: nested mixtures
    for name, k in [*((f"{k:g}", k) for k in MIXTURE_KEPT_SHARES), ("at_kept", kept_share)]:
        mixed = np.where(u < k, recipient, donor)
        out[name] = float(np.mean(judge.predict(mixed) == donor_y))
    return out


@inference_mode()
def _decode_swapped(
    model: Any,
    latent: torch.Tensor,
    local_codes: torch.Tensor | None,
    sample: bool,
    generator: torch.Generator,
    batch_size: int,
) -> tuple[np.ndarray, np.ndarray]:
    """An autoregressive model's windows from latents: (likeliest ``uint8 [N, L]``, judged bases ``uint8 [N, L]``).

    Rendered by the model's converter where it has one (``weights.conversion``), else
    by its direct head or base after base (:meth:`decode_bases`). The likeliest bases
    are the greedy ones; the judged ones are drawn when ``sample`` (every position
    at once from the converter's or the direct head's softmax; base after base, each
    given the bases drawn before it, otherwise), else the greedy ones.
    """
    from seqae.models.decoder import bases_from_logits

    converter = getattr(model, "converter", None) is not None
    greedy, drawn = [], []
    for sl in batches(latent.shape[0], batch_size):
        codes = None if local_codes is None else local_codes[sl]
        # The precision of the test pass whose reconstructions frame the swap.
        with autocast(latent.device):
            if converter:
                logits = model.convert_logits(latent[sl], None if codes is None else model.local.lookup(codes))
                greedy.append(logits.argmax(1).to(torch.uint8))
                if sample:
                    drawn.append(bases_from_logits(logits, True, generator).to(torch.uint8))
                continue
            g, _, _ = model.decode_bases(latent[sl], codes, sample=False)
            greedy.append(g.to(torch.uint8))
            if sample:
                d, _, _ = model.decode_bases(latent[sl], codes, sample=True, generator=generator)
                drawn.append(d.to(torch.uint8))
    likeliest = torch.cat(greedy).cpu().numpy()
    return likeliest, (torch.cat(drawn).cpu().numpy() if sample else likeliest)


def _majority_chance(y_train: np.ndarray, y_test: np.ndarray) -> float:
    """Accuracy on ``y_test`` of always answering the most common ``y_train`` label (NaN without test rows)."""
    classes, counts = np.unique(y_train, return_counts=True)
    return float(np.mean(y_test == classes[np.argmax(counts)])) if y_test.size else float("nan")


def _different_label_donors(labels: np.ndarray, rng: np.random.Generator, tries: int = 20) -> np.ndarray:
    """For every row, a random other row, preferably with a different label (``int64 [N]``)."""
    n = labels.shape[0]
    donors = rng.integers(0, n, size=n)
    for _ in range(tries):  # a few vectorised redraws of the rows that drew their own label
        same = labels[donors] == labels
        if not same.any():
            break
        donors[same] = rng.integers(0, n, size=int(same.sum()))
    return donors
