"""The optimiser of a training run: AdamW with weight decay on the weight matrices only,
gradient clipping per part of the model, and the learning-rate schedule."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch


def lr_factor(step: int, warmup_steps: int, total_steps: int, schedule: str) -> float:
    """Learning-rate multiplier before optimiser step ``step`` (0-based).

    Linear warm-up ``(step + 1) / warmup_steps``, then 1 (``constant``) or a
    cosine decay reaching 0 at ``total_steps`` (``cosine``).
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def clip_groups(module: torch.nn.Module) -> list[list[torch.nn.Parameter]]:
    """Trainable parameters grouped by the model's top-level parts (one group per child module,
    one for parameters held directly), each clipped to ``grad_clip_norm`` on its own.

    Per part (encoder, decoder, local codes, each set of heads, ...) because under
    one global norm the label heads' large gradients (norm ~13 against ~0.5 without
    them, on the demo's two-level model) scaled every update of the decoder down with theirs.
    """
    groups = [[p for p in child.parameters() if p.requires_grad] for _, child in module.named_children()]
    direct = [p for p in module.parameters(recurse=False) if p.requires_grad]
    return [g for g in [*groups, direct] if g]


def make_optimizer(module: torch.nn.Module, training: Mapping[str, Any], device: torch.device) -> torch.optim.AdamW:
    """AdamW over the trainable parameters: ``training.weight_decay`` on the matrices and kernels,
    none on biases, norms' scales and other vectors; fused kernels on CUDA."""
    decay, no_decay = [], []
    for p in module.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": training["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}],
        lr=training["lr"],
        fused=device.type == "cuda",
    )


def total_steps(training: Mapping[str, Any], steps_per_epoch: int) -> int:
    """Optimiser steps of the whole run: ``training.epochs`` epochs, at most ``training.max_steps``."""
    total = steps_per_epoch * training["epochs"]
    if training["max_steps"] is not None:
        total = min(total, training["max_steps"])
    return total


def make_scheduler(
    optimizer: torch.optim.Optimizer, training: Mapping[str, Any], total: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """The learning-rate schedule of :func:`lr_factor` over ``total`` steps, stepped once per optimiser step."""
    warmup, schedule = training["warmup_steps"], training["schedule"]
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, warmup, total, schedule))
