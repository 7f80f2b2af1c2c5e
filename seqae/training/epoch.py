"""The passes over the data of one training epoch: the training steps, the erasers' refit, validation.

:class:`EpochPassesMixin` holds these methods of :class:`~seqae.training.loop.TrainingRun`.
Every draw of an epoch comes from generators seeded by the run's seed and the
epoch (:func:`~seqae.runtime.epoch_seed`), so an epoch replayed after a
resumption, and the same epoch in any number of processes, draw the same.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterator, Mapping

import torch

from seqae import distributed
from seqae.progress import LOG_EVERY_SECONDS, duration, progress_bar
from seqae.runtime import autocast, epoch_seed
from seqae.training.monitor import DeviceMeans, NonFiniteWatch, ShuffleMonitor, step_items
from seqae.training.run_state import RunState

__all__ = ["PROGRESS_EVERY_SECONDS", "EpochPassesMixin"]

log = logging.getLogger("seqae")

# Without progress bars (--quiet, as in the workflow), a line on the progress of
# the epoch at most this often, so that a slow epoch is not minutes of silence
# (the interval every stage's log lines keep).
PROGRESS_EVERY_SECONDS = LOG_EVERY_SECONDS


class EpochPassesMixin(RunState):
    """One epoch's passes of :class:`~seqae.training.loop.TrainingRun`.

    They use the run's ``_log_steps`` and its attributes (:class:`~seqae.training.run_state.RunState`).
    """

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
                        duration((last_line - start) / (i + 1) * (n_steps - i - 1)),
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
