"""The attributes of a :class:`~seqae.training.loop.TrainingRun`, declared once for the mixins that read them.

:class:`~seqae.training.epoch.EpochPassesMixin` and
:class:`~seqae.training.outputs.RunOutputsMixin` hold methods of the run;
:class:`RunState` tells a reader (and a type checker) what they may use. It
only annotates: :meth:`TrainingRun.__init__ <seqae.training.loop.TrainingRun>`
sets every attribute.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from seqae import distributed
from seqae.training.checkpoint import RunProgress
from seqae.training.data import RunData
from seqae.windows.store import WindowsSchema

if TYPE_CHECKING:
    from seqae.models import SequenceAutoencoder

__all__ = ["RunState"]


class RunState:
    """What a training run holds (annotations only)."""

    model_name: str
    windows: str  # the windows HDF5 file
    outdir: Path
    ctx: distributed.Dist  # this process's place in a data-parallel run
    is_main: bool  # rank 0: writes the files
    show_progress: bool  # a progress bar per epoch (rank 0 only)
    settings: dict[str, Any]  # the model's settings
    training: dict[str, Any]  # the effective training settings
    seed: int
    schema: WindowsSchema
    device: torch.device
    amp_dtype: torch.dtype | None  # autocast dtype, None for fp32
    data: RunData
    module: SequenceAutoencoder  # the model itself: what is saved
    model: torch.nn.Module  # what forward passes go through (DDP's wrapper in a data-parallel run)
    n_parameters: int
    buffers: distributed.BufferSync
    clip_groups: list[list[torch.nn.Parameter]]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    checkpoint_path: Path
    best_path: Path
    progress: RunProgress
    resumed: bool  # continued from checkpoint.pt
    tensorboard: Any  # a SummaryWriter, or None
    _last_plot: float  # time.monotonic() of the last loss_curves.png
    _plotted_epoch: int  # the epoch loss_curves.png shows (-1: none yet)
