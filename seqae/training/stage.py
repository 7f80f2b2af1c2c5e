"""The training stage: fit one configured model on a windows file, with exact resumption.

``train_model(config, "vq", "windows.h5", "results/models/vq")`` writes into the output folder::

    checkpoint.pt       the run's state after the last saved epoch (see seqae.checkpoint);
                        `resume=True` continues from it
    best.pt             the model at its lowest validation selection loss
                        (:func:`~seqae.training.monitor.selection_loss`,
                        ``training.selection``; what embed/evaluate load)
    model.json          settings, data schema, label categories, parameter count, outcome
    metrics.csv         one row per epoch: epoch, step, lr, train_* and val_* means
                        (loss, loss/<component>, every model metric), seconds, samples_per_s;
                        with ``training.monitor_shuffled``, the validation windows against
                        their dinucleotide shuffles: val_shuffled_seq_ce, val_shuffle_gap
                        (nats per base) and val_auroc_shuffled
                        (:class:`~seqae.training.monitor.ShuffleMonitor`)
    loss_curves.png     train vs validation loss, its main components per epoch and the
                        shuffle monitor
    tensorboard/        event files (when torch.utils.tensorboard imports)

Reproducibility: everything random is seeded from ``config["seed"]``. The
shuffling of epoch ``e`` and its augmentation draws (jitter offsets,
reverse-complement coin flips, on the device) come from generators seeded by
``(seed, e)``, so a resumed run needs no generator state for them; the global
torch (CPU and CUDA), NumPy and Python RNGs (dropout, VAE sampling, denoising
corruption, VQ restarts) are saved in every checkpoint and restored. A run
stopped after epoch ``k`` and resumed therefore ends with the same parameters
and the same metrics.csv rows (but the timings) as an uninterrupted run, on
the same device and software.

Speed: the train and validation windows are staged on the device when they
fit (``training.stage_on_device``), so a step only gathers rows on the device;
metrics accumulate on the device and reach the host only every
``training.log_every_steps`` steps and at the end of an epoch. Non-finite
losses are tracked on the device too: the error names the exact step.

Several GPUs (data parallelism): ``torchrun --standalone --nproc_per_node N
-m seqae train ...`` runs one process per GPU (``train_model`` joins the
process group that torchrun's environment describes, see
:mod:`seqae.distributed`). ``training.batch_size`` stays the global batch
(``batch_size / N`` windows per process; it must be divisible by N): each
step's batch is the single-process batch of the same global permutation, cut
into N parts, and ``DistributedDataParallel`` averages the gradients, so the
steps, the learning-rate schedule, the validation metrics and the early
stopping are those of one GPU, and the parameters follow the same path up to
batch-size effects (BatchNorm statistics and the means over known labels
are taken over each process's part; augmentation, dropout and sampling draw
from per-process streams). Only rank 0 writes files and logs; each
checkpoint holds every process's RNG state, so resuming with the same number
of processes is exact, and a checkpoint from N processes resumes in any other
number (it stores the bare module's state, never DDP's). On the CPU the
same runs with the gloo backend (how the tests run it).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from seqae import distributed
from seqae.config import Config, validate_config
from seqae.runtime import deterministic_cpu, resolve_device
from seqae.training.data import open_run_data
from seqae.training.loop import TrainingRun
from seqae.training.settings import block_labels, resolve_model

log = logging.getLogger("seqae")


def train_model(
    config: Config,
    model_name: str,
    windows_path: str | os.PathLike[str],
    outdir: str | os.PathLike[str],
    resume: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
) -> dict[str, Any]:
    """Train the configured model ``model_name`` on a windows file.

    Args:
        config: the pipeline configuration (validated here, defaults filled);
            uses ``seed``, ``training`` and ``models[model_name]``.
        model_name: a key of ``config["models"]``.
        windows_path: the windows HDF5 file (its ``train`` and ``val`` splits are used).
        outdir: output folder (see the module docstring for its files).
        resume: continue from ``outdir/checkpoint.pt`` when it exists (a
            finished run is reported complete; with no checkpoint a new run starts).
            Without ``resume`` an existing checkpoint is an error, never overwritten.
        progress: show a tqdm bar per epoch.
        stop_after: end this call after this many epochs, as if the process
            were killed there (for tests; the run stays resumable).

    Under torchrun (``WORLD_SIZE`` > 1) every process calls this with the
    same arguments; they train data-parallel (see the module docstring), and
    only rank 0 writes files and logs below warnings. A process group the
    caller initialised is used as it is.

    Returns:
        The last epoch's metrics.csv row (``epoch``, ``step``, ``lr``,
        ``train_*``, ``val_*``, ``seconds``, ``samples_per_s``) plus
        ``model``, ``epochs_completed``, ``steps``, ``best_epoch``,
        ``best_val_loss``, ``finished``, ``stop_reason``, ``n_parameters``, ``outdir``.

    Raises:
        SeqaeError: unknown model, bad settings, a checkpoint from another
            config or data schema, a non-finite loss (naming the step; the last
            good checkpoint is kept).
    """
    config = validate_config(copy.deepcopy(dict(config)))
    settings, training = resolve_model(config, model_name)
    device_type = resolve_device(training["device"], "training.device").type
    with distributed.process_group(device_type) as ctx, _quiet_unless_main(ctx):
        device = resolve_device(training["device"], "training.device")
        # What the model trains on: the train and validation windows as tensors, staged on the
        # device when they fit, with the labels its blocks name (seqae.training.data).
        data = open_run_data(str(windows_path), training, block_labels(settings), device, ctx)
        run = TrainingRun(config, model_name, data, Path(outdir), resume, progress, ctx)
        try:
            with deterministic_cpu(run.device):
                return run.run(stop_after)
        finally:
            run.close()


@contextlib.contextmanager
def _quiet_unless_main(ctx: distributed.Dist) -> Iterator[None]:
    """Only warnings from the processes other than rank 0 (their info lines would repeat rank 0's)."""
    if ctx.is_main:
        yield
        return
    before = log.level
    log.setLevel(max(before, logging.WARNING))
    try:
        yield
    finally:
        log.setLevel(before)
