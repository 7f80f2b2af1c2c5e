"""Training: fit one configured model on a windows file, with exact resumption and data parallelism.

One module per concern:

* :mod:`~seqae.training.stage` - :func:`train_model`, the ``seqae train`` stage: its
  output files, reproducibility and data-parallel runs are described there.
* :mod:`~seqae.training.settings` - a model's settings and effective training settings.
* :mod:`~seqae.training.data` - the train and validation windows, staged on the device
  or streamed, and their batches (each process's part in a data-parallel run).
* :mod:`~seqae.training.model` - the model built for the labels of the windows.
* :mod:`~seqae.training.optimizer` - AdamW, gradient clipping groups, the learning-rate schedule.
* :mod:`~seqae.training.monitor` - metric means on the device, the non-finite loss check,
  the selection loss and the shuffle monitor.
* :mod:`~seqae.training.checkpoint` - how far a run has come, checkpoint.pt and best.pt, resumption.
* :mod:`~seqae.training.loop` - :class:`~seqae.training.loop.TrainingRun`, the epochs of one run.
* :mod:`~seqae.training.epoch` - one epoch's passes: the training steps, the erasers' refit, validation.
* :mod:`~seqae.training.outputs` - model.json, metrics.csv, TensorBoard and the log lines of a run.
* :mod:`~seqae.training.run_state` - the attributes of a run, declared for the two above.
* :mod:`~seqae.training.plots` - loss_curves.png.

The device, mixed precision and the seeding of random streams are
:mod:`seqae.runtime`'s; the process group and the reductions of a
data-parallel run are :mod:`seqae.distributed`'s; the checkpoint file formats
are :mod:`seqae.checkpoint`'s.
"""

from seqae.training.monitor import SELECTIONS, selection_loss
from seqae.training.optimizer import lr_factor
from seqae.training.plots import plot_loss_curves
from seqae.training.settings import resolve_model
from seqae.training.stage import train_model

__all__ = ["SELECTIONS", "lr_factor", "plot_loss_curves", "resolve_model", "selection_loss", "train_model"]
