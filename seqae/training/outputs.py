"""What a training run writes and logs: model.json, metrics.csv, loss_curves.png, TensorBoard, best.pt.

:class:`RunOutputsMixin` holds the methods of :class:`~seqae.training.loop.TrainingRun`
that write its folder and its log lines; only rank 0 writes files. checkpoint.pt
and best.pt themselves are written by :mod:`seqae.training.checkpoint` from
the record :meth:`RunOutputsMixin._common_record` gives.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping
from typing import Any

import pandas as pd

from seqae import __version__
from seqae.checkpoint import FORMAT_VERSION
from seqae.fileio import atomic_output
from seqae.training.checkpoint import (
    BEST_NAME,
    CHECKPOINT_NAME,
    restore_best_file,
    save_best,
    save_run_checkpoint,
)
from seqae.training.plots import plot_loss_curves
from seqae.training.run_state import RunState

__all__ = ["OUTPUT_NAMES", "PLOT_EVERY_SECONDS", "RunOutputsMixin"]

log = logging.getLogger("seqae")

# Redraw loss_curves.png at most this often during a run (and always at its end).
PLOT_EVERY_SECONDS = 30.0

#: The files a run writes into its folder (their stale temporaries are removed when a run starts).
OUTPUT_NAMES = (CHECKPOINT_NAME, BEST_NAME, "model.json", "metrics.csv", "loss_curves.png")


class RunOutputsMixin(RunState):
    """The output files and log lines of :class:`~seqae.training.loop.TrainingRun`.

    They use the run's attributes (:class:`~seqae.training.run_state.RunState`); only rank 0 calls
    the methods that write files.
    """

    def _open_tensorboard(self) -> Any:
        """A TensorBoard writer into ``outdir/tensorboard`` (None where tensorboard cannot be imported)."""
        try:
            from torch.utils.tensorboard import SummaryWriter
        except Exception:  # noqa: BLE001 - tensorboard is optional: any import failure means none
            return None
        return SummaryWriter(str(self.outdir / "tensorboard"), purge_step=self.progress.step if self.resumed else None)

    def _model_json(self) -> dict[str, Any]:
        """model.json: the run's settings, data and outcome so far."""
        p = self.progress
        return {
            "model_name": self.model_name,
            "kind": self.settings["kind"],
            "seqae_version": __version__,
            "settings": self.settings,
            "training": self.training,
            "seed": self.seed,
            "schema": self.schema.to_dict(),
            "label_categories": self.data.label_categories,
            "label_classes": {c: len(v) for c, v in self.data.label_categories.items()},
            "latent_blocks": {n: b["size"] for n, b in self.settings["blocks"].items()},
            "n_parameters": self.n_parameters,
            "windows": str(self.windows),
            "n_train": len(self.data.train),
            "n_val": len(self.data.val),
            "device": str(self.device),
            "processes": self.ctx.world_size,
            "precision": "fp32" if self.amp_dtype is None else "bf16",
            "epochs_completed": p.epoch,
            "steps": p.step,
            "best_epoch": p.best_epoch,
            "best_val_loss": p.best_val_loss if math.isfinite(p.best_val_loss) else None,
            "finished": p.finished,
            "stop_reason": p.stop_reason,
        }

    def _common_record(self) -> dict[str, Any]:
        """The keys checkpoint.pt and best.pt share: the model as it is now, its settings and data, epoch and step."""
        return {
            "format_version": FORMAT_VERSION,
            "seqae_version": __version__,
            "model_name": self.model_name,
            "model_init": self.module.init_kwargs,
            "model_state": self.module.state_dict(),
            "training": self.training,
            "seed": self.seed,
            "data": {
                "schema": self.schema.to_dict(),
                "label_categories": self.data.label_categories,
                "windows_fingerprint": self.data.windows_fingerprint,
                "n_train": len(self.data.train),
                "n_val": len(self.data.val),
            },
            "epoch": self.progress.epoch,
            "step": self.progress.step,
        }

    def _save_best(self, val_loss: float) -> None:
        """Write best.pt from the current weights and keep a CPU copy of them for the checkpoint."""
        self.progress.best_state = {k: v.detach().to("cpu", copy=True) for k, v in self.module.state_dict().items()}
        save_best(self.best_path, self._common_record(), val_loss)

    def _write_json(self) -> None:
        """Rewrite model.json (atomically)."""
        with atomic_output(self.outdir / "model.json") as tmp:
            tmp.write_text(json.dumps(self._model_json(), indent=2) + "\n")

    def _write_metrics(self) -> None:
        """Rewrite metrics.csv, a row per epoch (atomically)."""
        # Rewritten whole from the history kept in the checkpoint, so after a
        # resumption metrics.csv never holds rows of epochs that were replayed.
        with atomic_output(self.outdir / "metrics.csv") as tmp:
            pd.DataFrame(self.progress.history).to_csv(tmp, index=False)

    def _plot(self, force: bool) -> None:
        """Redraw loss_curves.png when forced or stale; never twice for the same epochs."""
        if not self.progress.history or self._plotted_epoch == self.progress.epoch:
            return
        if not force and time.monotonic() - self._last_plot < PLOT_EVERY_SECONDS:
            return
        from seqae.report_plots import training_note

        note = training_note(self._model_json())
        plot_loss_curves(self.progress.history, self.outdir / "loss_curves.png", title=self.model_name, note=note)
        self._last_plot = time.monotonic()
        self._plotted_epoch = self.progress.epoch

    def _write_epoch(self, row: Mapping[str, Any], improved: bool, val_loss: float, save: bool, stopping: bool,
                     rngs: list[dict[str, Any]] | None) -> None:  # fmt: skip
        """Rank 0, after an epoch: best.pt when ``improved``, checkpoint.pt when ``save``
        (``rngs``: every process's RNG state), metrics.csv, loss_curves.png, TensorBoard."""
        if improved:
            self._save_best(val_loss)
        if save:
            save_run_checkpoint(self.checkpoint_path, self._common_record(), self.optimizer, self.scheduler,
                                self.progress, self.ctx.world_size, rngs)  # fmt: skip
        self._write_metrics()
        self._plot(force=stopping)
        if self.tensorboard is not None:
            for key, value in row.items():
                if key not in ("epoch", "step"):
                    self.tensorboard.add_scalar(f"epoch/{key}", value, row["epoch"])
            self.tensorboard.flush()

    def _finish_outputs(self) -> None:
        """Rank 0, when the run returns: best.pt restored where needed, model.json, metrics.csv, loss_curves.png."""
        if not self.is_main:
            return
        restore_best_file(self.best_path, self._common_record(), self.progress, self.model_name)
        self._write_json()
        if self.progress.history:
            self._write_metrics()
            if not (self.outdir / "loss_curves.png").exists():
                self._plotted_epoch = -1
            self._plot(force=True)

    def _last_good(self) -> str:
        """Where a failed run can be taken up again, for its error message."""
        if self.checkpoint_path.exists():
            return f"last good checkpoint: {self.checkpoint_path}"
        return "no checkpoint was written (lower training.lr, or check the data)"

    def _log_steps(self, means: Mapping[str, float], bar: Any) -> None:
        """The last steps' means on the progress bar (rank 0 with a bar) and in TensorBoard."""
        lr = self.scheduler.get_last_lr()[0]
        if self.show_progress:
            shown = {"loss": means.get("loss", math.nan)}
            shown.update({k.split("/", 1)[1]: v for k, v in means.items() if k.startswith("loss/")})
            bar.set_postfix({k: f"{v:.4g}" for k, v in shown.items()} | {"lr": f"{lr:.2e}"}, refresh=False)
        if self.tensorboard is not None:
            for key, value in means.items():
                self.tensorboard.add_scalar(f"train_step/{key}", value, self.progress.step)
            self.tensorboard.add_scalar("train_step/lr", lr, self.progress.step)

    def _open_outputs(self) -> None:
        """Before the first epoch of this call: open the outputs (rank 0) and log what is trained where."""
        t = self.training
        if self.is_main:
            self.tensorboard = self._open_tensorboard()
            self._write_json()
            if self.resumed:
                self._write_metrics()  # drop rows of epochs after the checkpoint
                log.info("%s: resuming after epoch %d (step %d)", self.model_name, self.progress.epoch,
                         self.progress.step)  # fmt: skip
        log.info(
            "%s: %s model, %s parameters, %d train / %d val windows, %s%s, %s data%s",
            self.model_name,
            self.settings["kind"],
            f"{self.n_parameters:,}",
            len(self.data.train),
            len(self.data.val),
            self.device,
            "" if self.amp_dtype is None else " bf16",
            "staged" if self.data.staged else "streamed",
            (
                f", {self.ctx.world_size} processes ({t['batch_size'] // self.ctx.world_size} windows each per step)"
                if self.ctx.enabled
                else ""
            ),
        )
        if not len(self.data.val):
            log.warning(
                "%s: no validation windows; best.pt and early stopping follow the training loss", self.model_name
            )

    def _log_epoch(
        self, row: Mapping[str, Any], train: Mapping[str, float], val: Mapping[str, float], improved: bool, eta: str
    ) -> None:
        """The line of an epoch: its losses (``row``, the metrics.csv row, with the ``train`` and ``val``
        means it was made of), the shuffle monitor's numbers, its speed and the run's ``eta``."""
        shuffles = (
            f", val vs shuffled: AUROC {val['auroc_shuffled']:.3f}, gap {val['shuffle_gap']:.4f} nats/base"
            if "auroc_shuffled" in val
            else ""
        )
        log.info(
            "%s epoch %d/%d: train loss %.4g, val loss %.4g, selection loss %.4g%s%s (%.1f s, %.0f windows/s%s)",
            self.model_name,
            row["epoch"],
            self.training["epochs"],
            train["loss"],
            val.get("loss", math.nan),
            row["selection_loss"],
            " *" if improved else "",
            shuffles,
            row["seconds"],
            row["samples_per_s"],
            eta,
        )
