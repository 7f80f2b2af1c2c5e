"""A training run's checkpoints: how far the run has come, what checkpoint.pt and best.pt hold, and resumption.

The file formats, their reading and the compatibility checks are
:mod:`seqae.checkpoint`'s; this module fills them from a run and restores a
run from them. Everything random is seeded from ``config["seed"]``; the
global RNG states (every process's, in a data-parallel run) are saved in
every checkpoint and restored, so a resumed run ends as an uninterrupted
one would (see :mod:`seqae.training.stage`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from seqae import distributed
from seqae.checkpoint import (
    CHECKPOINT_FORMAT,
    MODEL_FORMAT,
    check_resumable,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from seqae.errors import SeqaeError
from seqae.runtime import seed_process_rngs

log = logging.getLogger("seqae")

CHECKPOINT_NAME = "checkpoint.pt"
BEST_NAME = "best.pt"


@dataclass
class RunProgress:
    """How far a run has come: what checkpoint.pt keeps besides the model, optimiser, scheduler and RNG states."""

    epoch: int = 0  # epochs completed
    step: int = 0  # optimiser steps taken
    best_val_loss: float = math.inf  # lowest selection loss so far
    best_epoch: int = 0  # the epoch that reached it (0: none yet)
    # The weights at best_epoch, on the CPU, kept in checkpoint.pt so that
    # best.pt can be rewritten after a resumption: Snakemake deletes a
    # failed job's outputs (best.pt among them) before it retries the job,
    # and the resumed run may never improve on the best epoch again.
    best_state: dict[str, torch.Tensor] | None = None
    bad_epochs: int = 0  # epochs since best_epoch, for early stopping
    history: list[dict[str, Any]] = field(default_factory=list)  # the rows of metrics.csv
    finished: bool = False
    stop_reason: str | None = None  # "epochs", "max_steps" or "early_stopping" once finished

    @classmethod
    def from_checkpoint(cls, state: Mapping[str, Any]) -> RunProgress:
        """The progress saved in a checkpoint.pt dict."""
        return cls(
            epoch=int(state["epoch"]),
            step=int(state["step"]),
            best_val_loss=float(state["best_val_loss"]),
            best_epoch=int(state["best_epoch"]),
            best_state=state.get("best_model_state"),
            bad_epochs=int(state["epochs_without_improvement"]),
            history=list(state["history"]),
            finished=bool(state["finished"]),
            stop_reason=state["stop_reason"],
        )

    def checkpoint_entries(self) -> dict[str, Any]:
        """The checkpoint.pt keys this holds but ``epoch`` and ``step`` (those are in the record that
        checkpoint.pt shares with best.pt)."""
        return {
            "best_val_loss": self.best_val_loss,
            "best_epoch": self.best_epoch,
            "best_model_state": self.best_state,
            "epochs_without_improvement": self.bad_epochs,
            "history": self.history,
            "finished": self.finished,
            "stop_reason": self.stop_reason,
        }

    def end_epoch(self, epoch: int, row: dict[str, Any], val_loss: float, training: Mapping[str, Any]) -> bool:
        """Record a completed epoch (its metrics.csv ``row`` and selection loss) and decide whether the run stops.

        Returns:
            Whether ``val_loss`` improved on the best so far (best.pt is to be rewritten).
        """
        self.history.append(row)
        self.epoch = epoch
        improved = val_loss < self.best_val_loss
        if improved:
            self.best_val_loss, self.best_epoch, self.bad_epochs = val_loss, epoch, 0
        else:
            self.bad_epochs += 1
        if training["max_steps"] is not None and self.step >= training["max_steps"]:
            self.stop_reason = "max_steps"
        elif training["early_stopping_patience"] and self.bad_epochs >= training["early_stopping_patience"]:
            self.stop_reason = "early_stopping"
        elif epoch == training["epochs"]:
            self.stop_reason = "epochs"
        self.finished = self.stop_reason is not None
        return improved


def previous_run(
    checkpoint_path: Path,
    resume: bool,
    *,
    model_name: str,
    model_settings: Mapping[str, Any],
    training: Mapping[str, Any],
    seed: int,
) -> dict[str, Any] | None:
    """The checkpoint.pt dict a run resumes from, checked against this run's settings; None for a new run.

    Raises:
        SeqaeError: a checkpoint is there but ``resume`` is off (it is never
            overwritten), or it is of another model, settings or seed.
    """
    if checkpoint_path.exists():
        if not resume:
            raise SeqaeError(
                f"{checkpoint_path}: a training run is already here; "
                "pass --resume to continue it, or choose another --outdir"
            )
        previous = load_checkpoint(checkpoint_path, expect=CHECKPOINT_FORMAT)
        check_resumable(
            previous,
            checkpoint_path,
            model_name=model_name,
            model_settings=model_settings,
            training=training,
            seed=seed,
        )
        return previous
    if resume:
        log.info("%s: no checkpoint in %s; starting a new run", model_name, checkpoint_path.parent)
    return None


def restore_rngs(previous: Mapping[str, Any] | None, ctx: distributed.Dist, seed: int, epoch: int) -> None:
    """Set this process's global RNGs for the run (after they were seeded with ``seed``).

    Resumed with as many processes as wrote the checkpoint, each process continues
    its own streams; with another number, rank 0 continues the saved stream and the
    others start new ones (:func:`seed_process_rngs`) after ``epoch``. A new run
    (``previous`` None): rank 0 keeps the seeded stream, the others get their own.
    """
    if previous is not None:
        ranks = previous.get("rng_ranks")
        if ranks is not None and len(ranks) == ctx.world_size:
            set_rng_state(ranks[ctx.rank])  # same number of processes: each continues its own streams
        else:
            set_rng_state(previous["rng"])
            if ctx.rank > 0:
                seed_process_rngs(seed, ctx.rank, epoch)
    elif ctx.rank > 0:
        seed_process_rngs(seed, ctx.rank, 0)


def save_run_checkpoint(
    path: Path,
    common: Mapping[str, Any],
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    progress: RunProgress,
    world_size: int,
    rng_ranks: list[dict[str, Any]] | None = None,
) -> None:
    """Write checkpoint.pt (see :mod:`seqae.checkpoint` for its keys).

    Args:
        common: the keys checkpoint.pt shares with best.pt (model, settings, data, epoch, step).
        rng_ranks: every process's RNG state in a data-parallel run (this process's is saved as ``rng``).
    """
    state = {
        "format": CHECKPOINT_FORMAT,
        **common,
        "optimizer_state": optimizer.state_dict(),
        "scheduler_state": scheduler.state_dict(),
        "rng": rng_state(),
        "world_size": world_size,
        **progress.checkpoint_entries(),
    }
    if rng_ranks is not None:
        state["rng_ranks"] = rng_ranks
    save_checkpoint(state, path)


def save_best(path: Path, common: Mapping[str, Any], val_loss: float) -> None:
    """Write best.pt: the model of ``common`` (the current weights) and its selection loss."""
    save_checkpoint({"format": MODEL_FORMAT, **common, "val_loss": val_loss}, path)


def restore_best_file(path: Path, common: Mapping[str, Any], progress: RunProgress, model_name: str) -> None:
    """Rewrite a missing best.pt from the best weights kept in the checkpoint (``progress.best_state``)."""
    if path.exists() or progress.best_state is None:
        return
    steps = [row["step"] for row in progress.history if row["epoch"] == progress.best_epoch]
    record = {**common, "model_state": progress.best_state, "epoch": progress.best_epoch}
    record["step"] = int(steps[0]) if steps else progress.step
    save_best(path, record, progress.best_val_loss)
    log.info("%s: best.pt rewritten from the checkpoint (epoch %d)", model_name, progress.best_epoch)
