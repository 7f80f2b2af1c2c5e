"""The label heads of :class:`~seqae.models.autoencoder.SequenceAutoencoder`'s latent blocks and their losses.

Every labelled block has a supervised head that reads its own label off it;
every block has one adversarial head per label of the *other* labelled
blocks (less the labels nested with its own, which would take its own label
away). :func:`build_label_heads` makes them; :class:`LabelHeadsMixin` adds
their loss terms to the model (see the objectives in
:mod:`seqae.models.autoencoder`'s docstring).
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from typing import Any

import torch
from torch import Tensor, nn

from seqae.models.heads import (
    AdversarialHead,
    ClassifierHead,
    adversarial_lambda,
    confusion_loss,
    label_correlation_loss,
)
from seqae.models.layout import LatentLayout
from seqae.models.objectives import masked_cross_entropy

__all__ = ["LabelHeadsMixin", "build_label_heads"]


def build_label_heads(
    layout: LatentLayout,
    block_labels: Mapping[str, str],
    label_classes: Mapping[str, int],
    hidden: int,
    nested: Set[tuple[str, str]],
) -> tuple[nn.ModuleDict, nn.ModuleDict, list[tuple[str, str, str]]]:
    """The supervised heads, the adversaries and the adversaries' ``(module key, block, label)`` pairs.

    Args:
        layout: the latent blocks.
        block_labels: block -> its own label (labelled blocks only).
        label_classes: label -> number of classes.
        hidden: width of every head's hidden layer (``head_hidden``).
        nested: ``(fine, coarse)`` label pairs; a block is not guarded against a label nested with its own.

    Returns:
        ``(supervised_heads, adversaries, adversary_pairs)``: the heads keyed by block, the
        adversaries by ``<block>__<label>`` (dots replaced), and the pairs in the order they are built.
    """
    supervised = nn.ModuleDict(
        {
            block: ClassifierHead(layout.sizes[block], label_classes[label], hidden)
            for block, label in block_labels.items()
        }
    )
    # (module key, block, label): every block against every label that is not its own
    # and not nested with it.
    pairs: list[tuple[str, str, str]] = []
    adversaries = nn.ModuleDict()
    labels_in_order = list(dict.fromkeys(block_labels.values()))
    for block in layout.names:
        for label in labels_in_order:
            own = block_labels.get(block)
            if own == label or (own, label) in nested or (label, own) in nested:
                continue
            key = f"{block}__{label}".replace(".", "_")
            adversaries[key] = AdversarialHead(layout.sizes[block], label_classes[label], hidden, lambda_=0.0)
            pairs.append((key, block, label))
    return supervised, adversaries, pairs


class LabelHeadsMixin:
    """The label heads' loss terms of :class:`~seqae.models.autoencoder.SequenceAutoencoder`.

    The model holds the attributes below (annotated only: a class-level value
    would shadow the submodules ``nn.Module`` keeps in its own registry).
    """

    settings: dict[str, Any]
    label_classes: dict[str, int]
    block_labels: dict[str, str]
    supervised_heads: nn.ModuleDict
    adversaries: nn.ModuleDict
    adversary_pairs: list[tuple[str, str, str]]

    def _head_terms(
        self, blocks: Mapping[str, Tensor], labels: Mapping[str, Tensor], step: int, metrics: dict[str, Tensor]
    ) -> dict[str, Tensor]:
        """Supervised (weighted) and adversarial losses; accuracies into ``metrics``.

        Args:
            blocks: block -> ``[B, size]`` views of the deterministic latent.
            labels: label column -> ``int64 [B]`` class codes, -1 = unknown.
            step: training step, for the adversarial ramp.
            metrics: filled with ``supervised_acc/<block>``, ``adversary_acc/<block>/<label>`` and ``grl_lambda``.
        """
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
