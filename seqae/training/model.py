"""The model a training run fits, built for the labels of its windows."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import torch

from seqae.training.data import RunData
from seqae.windows.store import WindowsSchema

if TYPE_CHECKING:
    from seqae.models import SequenceAutoencoder

log = logging.getLogger("seqae")


def build_model(
    settings: dict[str, Any], schema: WindowsSchema, data: RunData, device: torch.device, model_name: str, notes: bool
) -> SequenceAutoencoder:
    """The :class:`~seqae.models.SequenceAutoencoder` of ``settings`` for the windows of ``data``, on ``device``.

    Its initial weights draw from the global torch RNG (seeded by the run).

    Args:
        settings: full model settings (:func:`~seqae.training.settings.resolve_model`).
        schema: the windows file's schema (window length, tracks, their transform).
        data: the run's windows; their label categories size the heads, and labels that
            nest (each fine label has one coarse label) are not guarded against each other.
        notes: log the nested labels and warn of erasure that takes most of a block (rank 0 only).
    """
    from seqae.models import SequenceAutoencoder
    from seqae.models.layout import nested_labels

    label_classes = {c: len(cats) for c, cats in data.label_categories.items()}
    nested = nested_labels({c: v.cpu().numpy() for c, v in data.label_codes.items()})
    for fine, coarse in nested if notes else []:
        log.info(
            "%s: labels %s and %s are nested (each %s has one %s): no block is guarded against the other",
            model_name,
            fine,
            coarse,
            fine,
            coarse,
        )
    module = SequenceAutoencoder(
        settings,
        n_tracks=len(schema.track_names),
        window_len=schema.window_len,
        label_classes=label_classes,
        track_transform=schema.track_transform,
        nested_labels=nested,
    ).to(device)
    if notes and module.erasers is not None:
        for block, labels in module.erased_labels.items():
            # LEACE takes one direction per class beyond the first, however weak the
            # label: an 8-coordinate block erased of an 8-class label keeps 1.
            erased = sum(label_classes[label] - 1 for label in labels)
            size = module.layout.sizes[block]
            if erased >= size / 2:
                labelled = settings["blocks"][block].get("label") is not None
                log.warning(
                    "%s: erasure takes up to %d of the %d coordinates of block %s (%s); %s %d: give the block more "
                    "coordinates (blocks.<name>.size), %sor leave contigs with few windows out "
                    "(extract.chromosomes.exclude: chrM, *_random, chrUn_*, *_alt, ...)",
                    model_name,
                    min(erased, size),
                    size,
                    block,
                    ", ".join(f"{label}: {label_classes[label]} classes" for label in labels),
                    "its own label keeps" if labelled else "coordinates left:",
                    max(size - erased, 0),
                    "erase only the unlabelled blocks (erasure.labelled_blocks: false), " if labelled else "",
                )
    return module
