"""The training loop: one run of one model, epoch by epoch, with its outputs and resumption.

:class:`TrainingRun` ties the pieces together: the windows
(:mod:`~seqae.training.data`), the model (:mod:`~seqae.training.model`),
the optimiser (:mod:`~seqae.training.optimizer`), what is measured
(:mod:`~seqae.training.monitor`) and the checkpoints
(:mod:`~seqae.training.checkpoint`). Each epoch's passes over the data are
:mod:`~seqae.training.epoch`'s, the files and log lines
:mod:`~seqae.training.outputs`'. :func:`~seqae.training.stage.train_model`
runs one; :mod:`seqae.training.stage` describes the outputs, the
reproducibility and the data-parallel runs.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import torch

from seqae import distributed
from seqae.checkpoint import check_data, rng_state
from seqae.config import Config
from seqae.errors import SeqaeError
from seqae.fileio import output_folder, remove_stale_temporaries
from seqae.progress import duration
from seqae.runtime import autocast_dtype, cpu_has_native_bf16, seed_global_rngs
from seqae.training.checkpoint import BEST_NAME, CHECKPOINT_NAME, RunProgress, previous_run, restore_rngs
from seqae.training.data import RunData
from seqae.training.epoch import EpochPassesMixin
from seqae.training.model import build_model
from seqae.training.monitor import NonFinite, selection_loss
from seqae.training.optimizer import clip_groups, make_optimizer, make_scheduler, total_steps
from seqae.training.outputs import OUTPUT_NAMES, RunOutputsMixin
from seqae.training.settings import resolve_model

log = logging.getLogger("seqae")


class TrainingRun(EpochPassesMixin, RunOutputsMixin):
    """One training run of one model; see :func:`~seqae.training.stage.train_model`.

    Args:
        config: the validated pipeline configuration.
        model_name: a key of ``config["models"]``.
        data: the windows it trains on (:func:`~seqae.training.data.open_run_data`), on the run's device.
        outdir: the run's folder.
        resume: continue from ``outdir/checkpoint.pt`` when it exists.
        progress: show a progress bar per epoch (rank 0 only).
        ctx: this process's place in a data-parallel run.
    """

    def __init__(
        self,
        config: Config,
        model_name: str,
        data: RunData,
        outdir: Path,
        resume: bool,
        progress: bool,
        ctx: distributed.Dist = distributed.SINGLE,
    ):
        self.model_name = model_name
        self.windows = windows = data.path
        self.outdir = outdir
        self.ctx = ctx
        self.is_main = ctx.is_main  # only rank 0 writes files (and shows the progress bar)
        self.show_progress = progress and self.is_main
        self.settings, self.training = resolve_model(config, model_name)
        self.seed = int(config["seed"])
        t = self.training
        self.checkpoint_path = outdir / CHECKPOINT_NAME
        self.best_path = outdir / BEST_NAME
        previous = previous_run(
            self.checkpoint_path,
            resume,
            model_name=model_name,
            model_settings=self.settings,
            training=self.training,
            seed=self.seed,
        )

        from seqae.windows.store import read_schema

        self.schema = read_schema(windows)
        if previous is not None:
            check_data(previous, self.checkpoint_path, windows, self.schema.to_dict())

        self.device = data.device
        self.amp_dtype = autocast_dtype(t["precision"], self.device)
        if self.amp_dtype is not None and self.device.type == "cpu" and not cpu_has_native_bf16():
            log.warning(
                "%s: training.precision is bf16 on a CPU without bf16 instructions (AVX512-BF16 or AMX): "
                "it is emulated there and slower than fp32; set training.precision: fp32",
                model_name,
            )
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True

        self.data = data
        if previous is not None:
            check_data(
                previous,
                self.checkpoint_path,
                windows,
                self.schema.to_dict(),
                self.data.label_categories,
                self.data.windows_fingerprint,
                (len(self.data.train), len(self.data.val)),
            )

        seed_global_rngs(self.seed)  # before the model: its initial weights draw from the torch RNG
        self.module = build_model(self.settings, self.schema, self.data, self.device, model_name, notes=self.is_main)
        self.n_parameters = sum(p.numel() for p in self.module.parameters())
        self.clip_groups = clip_groups(self.module)
        self.optimizer = make_optimizer(self.module, t, self.device)
        self.total_steps = total_steps(t, self.data.steps_per_epoch)
        if t["warmup_steps"] >= self.total_steps and previous is None:
            log.warning(
                "%s: warmup_steps (%d) >= total steps (%d): the learning rate never reaches training.lr; set "
                "training.warmup_steps below the total (epochs x steps per epoch)",
                model_name,
                t["warmup_steps"],
                self.total_steps,
            )
        self.scheduler = make_scheduler(self.optimizer, t, self.total_steps)

        self.progress = RunProgress()
        self.resumed = previous is not None
        if previous is not None:
            self.module.load_state_dict(previous["model_state"])
            self.optimizer.load_state_dict(previous["optimizer_state"])
            self.scheduler.load_state_dict(previous["scheduler_state"])
            self.progress = RunProgress.from_checkpoint(previous)
        restore_rngs(previous, ctx, self.seed, self.progress.epoch)
        # Forward passes go through self.model (DDP's wrapper in a data-parallel
        # run); self.module is what is saved, so checkpoints never hold DDP's
        # "module." prefix and load in any number of processes.
        self.model: torch.nn.Module = (
            distributed.data_parallel(self.module, self.device) if ctx.enabled else self.module
        )
        self.buffers = distributed.BufferSync(self.module, ctx)
        if ctx.world_size == 1 and int(t.get("gpus", 1)) > 1 and self.device.type == "cuda":
            log.warning(
                "%s: training.gpus is %d but this is a single process; start it with "
                "`torchrun --standalone --nproc_per_node %d -m seqae train ...` to use them (the workflow does)",
                model_name,
                t["gpus"],
                t["gpus"],
            )
        self.tensorboard: Any = None  # opened in run(), once there is something to train
        self._last_plot = time.monotonic()
        self._plotted_epoch = -1

    # ------------------------------------------------------------------ the run

    def run(self, stop_after: int | None) -> dict[str, Any]:
        """Train until the run stops (or for ``stop_after`` epochs of this call); returns :meth:`summary`."""
        t, p = self.training, self.progress
        output_folder(self.outdir)
        if self.is_main:
            stale = remove_stale_temporaries(self.outdir, OUTPUT_NAMES)
            if stale:
                log.info("%s: removed %d temporary files of a killed run (%s)", self.model_name, len(stale),
                         ", ".join(path.name for path in stale[:3]))  # fmt: skip
        if p.finished:
            log.info("%s: training is already complete (%d epochs, %s); nothing to do", self.model_name, p.epoch,
                     p.stop_reason)  # fmt: skip
            self._finish_outputs()
            distributed.barrier(self.ctx)
            return self.summary()
        self._open_outputs()
        epochs_run = 0
        run_seconds = 0.0  # of the epochs run by this process, for the ETA
        for epoch in range(p.epoch + 1, t["epochs"] + 1):
            start = time.perf_counter()
            try:
                train, seen, train_seconds = self._train_epoch(epoch)
            except NonFinite as exc:
                raise SeqaeError(f"{exc}; {self._last_good()}") from None
            self._refit_erasers()
            val = self._validate() if len(self.data.val) else {}
            val_loss = selection_loss(val if val else train, t["selection"])
            if not math.isfinite(val_loss):
                raise SeqaeError(
                    f"validation loss is {val_loss} after epoch {epoch} (step {p.step}); {self._last_good()}"
                )
            row: dict[str, Any] = {"epoch": epoch, "step": p.step, "lr": self.scheduler.get_last_lr()[0]}
            row.update({f"train_{k}": v for k, v in train.items()})
            row.update({f"val_{k}": v for k, v in val.items()})
            row["selection_loss"] = val_loss
            row["seconds"] = time.perf_counter() - start
            row["samples_per_s"] = seen / train_seconds if train_seconds > 0 else math.nan
            improved = p.end_epoch(epoch, row, val_loss, t)
            epochs_run += 1
            run_seconds += row["seconds"]
            stopping = p.finished or (stop_after is not None and epochs_run >= stop_after)
            save = p.finished or epoch % t["checkpoint_every_epochs"] == 0
            rngs = None
            if self.ctx.enabled:
                distributed.check_replicas(self.ctx, self.module)
                if save:  # every process's RNG state, for an exact resumption (all take part in the gather)
                    rngs = distributed.all_gather_objects(self.ctx, rng_state())
            if self.is_main:
                self._write_epoch(row, improved, val_loss, save, stopping, rngs)
            eta = "" if stopping else f", ETA {duration(run_seconds / epochs_run * (t['epochs'] - epoch))}"
            self._log_epoch(row, train, val, improved, eta)
            if stopping:
                break
        if p.finished:
            log.info(
                "%s: training complete after %d epochs (%s); best selection loss %.4g at epoch %d",
                self.model_name,
                p.epoch,
                p.stop_reason,
                p.best_val_loss,
                p.best_epoch,
            )
        self._finish_outputs()
        distributed.barrier(self.ctx)  # when any process returns, rank 0's files are written
        return self.summary()

    def summary(self) -> dict[str, Any]:
        """The last epoch's metrics.csv row and the run's outcome (see :func:`~seqae.training.stage.train_model`)."""
        p = self.progress
        last = dict(p.history[-1]) if p.history else {}
        return {
            **last,
            "model": self.model_name,
            "epochs_completed": p.epoch,
            "steps": p.step,
            "best_epoch": p.best_epoch,
            "best_val_loss": p.best_val_loss,
            "finished": p.finished,
            "stop_reason": p.stop_reason,
            "n_parameters": self.n_parameters,
            "outdir": str(self.outdir),
        }

    def close(self) -> None:
        """Close the TensorBoard writer and the windows file."""
        if self.tensorboard is not None:
            self.tensorboard.close()
        self.data.close()
