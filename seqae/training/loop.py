"""The training loop: one run of one model, epoch by epoch, with its outputs and resumption.

:class:`TrainingRun` ties the pieces together: the windows
(:mod:`~seqae.training.data`), the model (:mod:`~seqae.training.model`),
the optimiser (:mod:`~seqae.training.optimizer`), what is measured
(:mod:`~seqae.training.monitor`) and the checkpoints
(:mod:`~seqae.training.checkpoint`). :func:`~seqae.training.stage.train_model`
runs one; :mod:`seqae.training.stage` describes the outputs, the
reproducibility and the data-parallel runs.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from seqae import __version__, distributed
from seqae.checkpoint import FORMAT_VERSION, check_data, rng_state
from seqae.config import Config
from seqae.errors import SeqaeError
from seqae.fileio import atomic_output, remove_stale_temporaries
from seqae.progress import progress_bar
from seqae.runtime import autocast, autocast_dtype, epoch_seed, resolve_device, seed_global_rngs
from seqae.training.checkpoint import (
    BEST_NAME,
    CHECKPOINT_NAME,
    RunProgress,
    previous_run,
    restore_best_file,
    restore_rngs,
    save_best,
    save_run_checkpoint,
)
from seqae.training.data import open_run_data
from seqae.training.model import build_model
from seqae.training.monitor import (
    DeviceMeans,
    NonFinite,
    NonFiniteWatch,
    ShuffleMonitor,
    selection_loss,
    step_items,
)
from seqae.training.optimizer import clip_groups, make_optimizer, make_scheduler, total_steps
from seqae.training.plots import plot_loss_curves
from seqae.training.settings import resolve_model

log = logging.getLogger("seqae")

# Redraw loss_curves.png at most this often during a run (and always at its end).
PLOT_EVERY_SECONDS = 30.0
# Without progress bars (--quiet, as in the workflow), a line on the progress of
# the epoch at most this often, so that a slow epoch is not minutes of silence.
PROGRESS_EVERY_SECONDS = 60.0

#: The files a run writes into its folder (their stale temporaries are removed when a run starts).
OUTPUT_NAMES = (CHECKPOINT_NAME, BEST_NAME, "model.json", "metrics.csv", "loss_curves.png")


class TrainingRun:
    """One training run of one model; see :func:`~seqae.training.stage.train_model`.

    Args:
        config: the validated pipeline configuration.
        model_name: a key of ``config["models"]``.
        windows: the windows HDF5 file.
        outdir: the run's folder.
        resume: continue from ``outdir/checkpoint.pt`` when it exists.
        progress: show a progress bar per epoch (rank 0 only).
        ctx: this process's place in a data-parallel run.
    """

    def __init__(
        self,
        config: Config,
        model_name: str,
        windows: str,
        outdir: Path,
        resume: bool,
        progress: bool,
        ctx: distributed.Dist = distributed.SINGLE,
    ):
        self.model_name = model_name
        self.windows = windows
        self.outdir = outdir
        self.ctx = ctx
        self.is_main = ctx.is_main  # only rank 0 writes files (and shows the progress bar)
        self.show_progress = progress and self.is_main
        self.settings, self.training = resolve_model(config, model_name)
        self.seed = int(config["seed"])
        t = self.training
        if t["batch_size"] % ctx.world_size:
            raise SeqaeError(
                f"training.batch_size {t['batch_size']} is the global batch of a step and must be divisible "
                f"by the number of processes, {ctx.world_size} (torchrun --nproc_per_node)"
            )
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

        self.device = resolve_device(t["device"], "training.device")
        self.amp_dtype = autocast_dtype(t["precision"], self.device)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True

        label_columns = list(dict.fromkeys(b["label"] for b in self.settings["blocks"].values() if b["label"]))
        self.data = open_run_data(windows, t, label_columns, self.device, ctx)
        if previous is not None:
            check_data(previous, self.checkpoint_path, windows, self.schema.to_dict(), self.data.label_categories)

        seed_global_rngs(self.seed)  # before the model: its initial weights draw from the torch RNG
        self.module = build_model(self.settings, self.schema, self.data, self.device, model_name, notes=self.is_main)
        self.n_parameters = sum(p.numel() for p in self.module.parameters())
        self.clip_groups = clip_groups(self.module)
        self.optimizer = make_optimizer(self.module, t, self.device)
        self.total_steps = total_steps(t, self.data.steps_per_epoch)
        if t["warmup_steps"] >= self.total_steps and previous is None:
            log.warning(
                "%s: warmup_steps (%d) >= total steps (%d): the learning rate never reaches training.lr",
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

    # ------------------------------------------------------------------ outputs

    def _open_tensorboard(self) -> Any:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except Exception:  # noqa: BLE001 - tensorboard is optional: any import failure means none
            return None
        return SummaryWriter(str(self.outdir / "tensorboard"), purge_step=self.progress.step if self.resumed else None)

    def _model_json(self) -> dict[str, Any]:
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
        with atomic_output(self.outdir / "model.json") as tmp:
            tmp.write_text(json.dumps(self._model_json(), indent=2) + "\n")

    def _write_metrics(self) -> None:
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
        if self.checkpoint_path.exists():
            return f"last good checkpoint: {self.checkpoint_path}"
        return "no checkpoint was written (lower training.lr, or check the data)"

    # ------------------------------------------------------------------ epochs

    def _train_inputs(
        self, batch: Mapping[str, torch.Tensor], generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``seq [B, L]`` and ``tracks [B, T, L]`` of a training batch cropped to the window length
        (at random with ``augment.jitter``) and reverse-complemented at random with ``augment.reverse_complement``."""
        from seqae.models.augment import centre_crop, random_crop, random_reverse_complement

        augment = self.training["augment"]
        seq, tracks, window_len = batch["seq"], batch["tracks"], self.schema.window_len
        if augment["jitter"] and seq.shape[-1] > window_len:
            seq, tracks = random_crop(seq, tracks, window_len, generator=generator)
        else:
            seq, tracks = centre_crop(seq, tracks, window_len)
        if augment["reverse_complement"]:
            seq, tracks = random_reverse_complement(seq, tracks, generator=generator)
        return seq, tracks

    def _train_epoch(self, epoch: int) -> tuple[dict[str, float], int, float]:
        """One pass over the training batches; returns (means, windows seen, seconds)."""
        t = self.training
        self.model.train()
        start = time.perf_counter()
        # The same permutation in every process (each takes its part of each batch); its own augmentation draws.
        shuffle = torch.Generator().manual_seed(epoch_seed(self.seed, epoch, 0))
        augment = torch.Generator(device=self.device).manual_seed(epoch_seed(self.seed, epoch, 1, self.ctx.rank))
        sums = DeviceMeans()
        n_steps = self.data.steps_per_epoch
        if t["max_steps"] is not None:
            n_steps = min(n_steps, t["max_steps"] - self.progress.step)
        watch = NonFiniteWatch(self.progress.step + 1, n_steps, self.device, epoch)
        clip = t["grad_clip_norm"]
        seen = 0
        bar = progress_bar(n_steps, f"{self.model_name} {epoch}/{t['epochs']}", "step", self.show_progress)
        log_lines = not self.show_progress and self.is_main  # progress lines in the log instead of the bar
        last_line = start
        try:
            for i, batch in enumerate(itertools.islice(self.data.train_batches(shuffle), n_steps)):
                seq, tracks = self._train_inputs(batch, augment)
                labels = self.data.labels(batch["index"])
                self.buffers.before_step()
                with autocast(self.device, self.amp_dtype):
                    out = self.model(seq, tracks, labels, step=self.progress.step)
                self.optimizer.zero_grad(set_to_none=True)
                out.loss.backward()  # in a data-parallel run DDP averages the gradients over the processes here
                if clip is not None:
                    for group in self.clip_groups:
                        torch.nn.utils.clip_grad_norm_(group, clip)
                self.optimizer.step()
                self.buffers.after_step()
                self.scheduler.step()
                self.progress.step += 1
                n = seq.shape[0]
                seen += n
                watch.update(i, out.loss.detach())
                sums.add(step_items(out), n)
                if self.progress.step % t["log_every_steps"] == 0:
                    if self.ctx.enabled:
                        self._log_steps(watch.check_and_merge(self.ctx, sums.interval_totals()), bar)
                    else:
                        watch.check()
                        self._log_steps(sums.interval_means(), bar)
                bar.update(1)
                if log_lines and time.perf_counter() - last_line >= PROGRESS_EVERY_SECONDS:
                    last_line = time.perf_counter()
                    rate = seen * self.ctx.world_size / (last_line - start)
                    log.info(
                        "%s epoch %d/%d: step %d/%d, %.0f windows/s, epoch ETA %s",
                        self.model_name, epoch, t["epochs"], i + 1, n_steps, rate,
                        _duration((last_line - start) / (i + 1) * (n_steps - i - 1)),
                    )  # fmt: skip
        finally:
            bar.close()
        if self.ctx.enabled:
            means = watch.check_and_merge(self.ctx, sums.totals())
            seen *= self.ctx.world_size  # every process saw as many windows
            self.buffers.average_rest()  # BatchNorm statistics, before validation and the checkpoint
        else:
            means = sums.means()  # synchronises: the time below includes the device's work
            watch.check()
        return means, seen, time.perf_counter() - start

    def _log_steps(self, means: Mapping[str, float], bar: Any) -> None:
        lr = self.scheduler.get_last_lr()[0]
        if self.show_progress:
            shown = {"loss": means.get("loss", math.nan)}
            shown.update({k.split("/", 1)[1]: v for k, v in means.items() if k.startswith("loss/")})
            bar.set_postfix({k: f"{v:.4g}" for k, v in shown.items()} | {"lr": f"{lr:.2e}"}, refresh=False)
        if self.tensorboard is not None:
            for key, value in means.items():
                self.tensorboard.add_scalar(f"train_step/{key}", value, self.progress.step)
            self.tensorboard.add_scalar("train_step/lr", lr, self.progress.step)

    def _refit_erasers(self) -> None:
        """Refit the model's label erasers exactly on all training windows (evaluation mode, centre
        crops), so that validation, best.pt and the embeddings read blocks erased with statistics of
        the encoder as it is now. Every process reads every window: the same result everywhere."""
        from seqae.models.augment import centre_crop

        if getattr(self.module, "erasers", None) is None:
            return

        def batches() -> Iterator[tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]]:
            for batch in self.data.train_batches_in_order():
                seq, tracks = centre_crop(batch["seq"], batch["tracks"], self.schema.window_len)
                yield seq, tracks, self.data.labels(batch["index"])

        with autocast(self.device, self.amp_dtype):
            self.module.fit_erasers(batches())

    @torch.inference_mode()
    def _validate(self) -> dict[str, float]:
        """Means of the loss, its components and the metrics over the validation windows (centre crops),
        and with ``training.monitor_shuffled`` those of :class:`~seqae.training.monitor.ShuffleMonitor`."""
        from seqae.models.augment import centre_crop

        # The bare module: each process evaluates its own whole batches, with no collective in
        # the forward pass; the sums are merged below.
        self.module.eval()
        monitor = None
        if self.training["monitor_shuffled"]:
            monitor = ShuffleMonitor(self.module, self.seed, self.amp_dtype, self.ctx)
        sums = DeviceMeans()
        for batch in self.data.val_batches():
            seq, tracks = centre_crop(batch["seq"], batch["tracks"], self.schema.window_len)
            with autocast(self.device, self.amp_dtype):
                out = self.module(seq, tracks, self.data.labels(batch["index"]), step=self.progress.step)
            items = step_items(out)
            if monitor is not None:
                items |= monitor.add(seq, tracks, batch["index"], out.seq_logits)
            sums.add(items, seq.shape[0])
        if self.ctx.enabled:
            means = distributed.merge_totals(distributed.all_gather_objects(self.ctx, sums.totals()))
        else:
            means = sums.means()
        if monitor is not None:  # every process takes part in the gather, with or without batches of its own
            means["auroc_shuffled"] = monitor.gathered_auroc()
        return means

    # ------------------------------------------------------------------ the run

    def _start(self) -> None:
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

    def run(self, stop_after: int | None) -> dict[str, Any]:
        """Train until the run stops (or for ``stop_after`` epochs of this call); returns :meth:`summary`."""
        t, p = self.training, self.progress
        self.outdir.mkdir(parents=True, exist_ok=True)
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
        self._start()
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
            shuffles = (
                f", val vs shuffled: AUROC {val['auroc_shuffled']:.3f}, gap {val['shuffle_gap']:.4f} nats/base"
                if "auroc_shuffled" in val
                else ""
            )
            eta = "" if stopping else f", ETA {_duration(run_seconds / epochs_run * (t['epochs'] - epoch))}"
            log.info(
                "%s epoch %d/%d: train loss %.4g, val loss %.4g, selection loss %.4g%s%s (%.1f s, %.0f windows/s%s)",
                self.model_name,
                epoch,
                t["epochs"],
                train["loss"],
                val.get("loss", math.nan),
                val_loss,
                " *" if improved else "",
                shuffles,
                row["seconds"],
                row["samples_per_s"],
                eta,
            )
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
        if self.tensorboard is not None:
            self.tensorboard.close()
        self.data.close()


def _duration(seconds: float) -> str:
    """A duration for a person: "40 s", "7 min", "1.5 h"."""
    if not math.isfinite(seconds):
        return "?"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
