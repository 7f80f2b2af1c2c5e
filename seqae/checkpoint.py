"""Checkpoints of training runs and trained models: write atomically, read, check compatibility.

Two kinds of file, both ``torch.save`` dicts of plain types and tensors
(loadable with ``torch.load(..., weights_only=True)``):

``checkpoint.pt`` (``format="seqae-checkpoint"``): everything needed to
continue a run exactly where it stopped::

    model_name, model_init (SequenceAutoencoder's arguments, settings filled in),
    model_state, optimizer_state, scheduler_state,
    training (effective training settings), seed,
    data {schema (WindowsSchema.to_dict()), label_categories, windows_fingerprint, n_train, n_val},
    rng {torch, cuda, numpy, python}, epoch (completed), step (optimiser steps),
    best_val_loss, best_epoch, epochs_without_improvement,
    history (one dict per epoch = the rows of metrics.csv),
    finished, stop_reason, seqae_version,
    world_size (processes of the run that wrote it),
    rng_ranks (data-parallel runs only: every process's rng, in rank order;
               ``rng`` is rank 0's)

``model_state`` is the bare module's ``state_dict`` (never a DDP wrapper's,
whose keys carry a ``module.`` prefix), so a checkpoint written by N
processes resumes in any number of processes and loads for embedding as it is.

``best.pt`` (``format="seqae-model"``): the model at its best validation
loss, what ``embed`` and ``evaluate`` load (:func:`load_model`)::

    model_name, model_init, model_state, training, seed, data,
    epoch, step, val_loss, seqae_version
"""

from __future__ import annotations

import logging
import os
import pickle
import random
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqae import __version__
from seqae.errors import SeqaeError
from seqae.fileio import atomic_output

log = logging.getLogger("seqae")

CHECKPOINT_FORMAT = "seqae-checkpoint"
MODEL_FORMAT = "seqae-model"
FORMAT_VERSION = 1

# Training keys that may change between a run and its resumption: they do not
# change what is computed (only where, how fast, how often it is saved or when
# the run gives up).
RUN_ONLY_TRAINING_KEYS = frozenset(
    {
        "num_workers",
        "log_every_steps",
        "checkpoint_every_epochs",
        "stage_on_device",
        "device",
        "early_stopping_patience",
        # Validation extras: an eval-mode pass with its own generator, no training state touched.
        "monitor_shuffled",
        # GPUs (processes) of a data-parallel run: batch_size is the global batch, so
        # only batch-size effects change (resuming with another count is not exact).
        "gpus",
    }
)


def save_checkpoint(state: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """``torch.save`` to a temporary file beside ``path``, then rename: a kill never leaves half a checkpoint."""
    path = Path(path)
    with atomic_output(path) as tmp:
        torch.save(dict(state), tmp)
    return path


def load_checkpoint(path: str | os.PathLike[str], expect: str | None = None) -> dict[str, Any]:
    """Read a checkpoint or model file onto the CPU.

    Args:
        path: ``checkpoint.pt`` or ``best.pt``.
        expect: ``CHECKPOINT_FORMAT`` or ``MODEL_FORMAT`` to require one kind; None accepts both.

    Raises:
        SeqaeError: missing, unreadable, or not a seqae checkpoint (of the expected kind).
    """
    path = Path(path)
    if path.is_dir():
        raise SeqaeError(f"{path}: is a folder; give the checkpoint file in it (best.pt or checkpoint.pt)")
    if not path.is_file():
        raise SeqaeError(f"{path}: checkpoint does not exist")
    # torch.save writes a zip archive: anything else is truncated or another kind of file, which torch's own
    # messages describe in its internals' terms (and with advice to unpickle untrusted code).
    if not zipfile.is_zipfile(path):
        raise SeqaeError(f"{path}: not a PyTorch checkpoint (truncated, or another kind of file)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise SeqaeError(
            f"{path}: holds Python objects other than tensors and plain values, which seqae does not load "
            "(not a seqae checkpoint)"
        ) from None
    except Exception as exc:  # noqa: BLE001 - any other reading problem is one user-facing line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SeqaeError(f"{path}: not a readable checkpoint ({first[:200]})") from None
    fmt = state.get("format") if isinstance(state, dict) else None
    if fmt not in (CHECKPOINT_FORMAT, MODEL_FORMAT):
        raise SeqaeError(f"{path}: not a seqae checkpoint")
    if expect is not None and fmt != expect:
        raise SeqaeError(f"{path}: is a {fmt} file, expected a {expect} file")
    if state.get("format_version") != FORMAT_VERSION:
        raise SeqaeError(
            f"{path}: checkpoint format version {state.get('format_version')}; "
            f"this seqae reads version {FORMAT_VERSION}"
        )
    return state


def build_model(
    state: Mapping[str, Any], device: torch.device | str = "cpu", source: str | os.PathLike[str] = "checkpoint"
) -> torch.nn.Module:
    """The :class:`~seqae.models.SequenceAutoencoder` of a checkpoint or model file, weights loaded, in eval mode.

    Raises:
        SeqaeError: the file's model does not fit this version's model (``source`` names the file).
    """
    from seqae.models import SequenceAutoencoder

    try:
        model = SequenceAutoencoder(**state["model_init"])
        model.load_state_dict(state["model_state"])
    except (TypeError, KeyError, RuntimeError) as exc:
        # torch's message spreads over lines ("Error(s) in loading state_dict ...:\n\tMissing key(s) ..."): one line.
        detail = " ".join(str(exc).split())[:200] or type(exc).__name__
        written = state.get("seqae_version", "?")
        origin = (
            "it was written by this seqae version, so the file was changed since"
            if written == __version__
            else f"it was written by seqae {written}, this is {__version__}"
        )
        raise SeqaeError(f"{source}: its model does not fit this seqae's ({detail}); {origin}") from None
    return model.to(device).eval()


def load_model(
    path: str | os.PathLike[str], device: torch.device | str = "cpu"
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Load a trained model (``best.pt`` or ``checkpoint.pt``) for embedding or evaluation.

    Returns:
        ``(model in eval mode on device, metadata)``; metadata is the file's
        dict without the tensors: ``model_name``, ``model_init`` (settings,
        ``window_len``, ``n_tracks``, ``label_classes``, ``track_transform``),
        ``data`` (``schema``, ``label_categories``), ``training``, ``epoch``, ...
    """
    state = load_checkpoint(path)
    if state.get("format") == CHECKPOINT_FORMAT and state.get("best_epoch") not in (None, state.get("epoch")):
        # Given for --model, a training checkpoint is the last epoch's weights, not the best one's.
        log.warning("%s: a training checkpoint, so the weights of its last epoch (%s), not of the best (%s, in "
                    "best.pt)", path, state.get("epoch"), state.get("best_epoch"))  # fmt: skip
    model = build_model(state, device, path)
    skip = {"model_state", "best_model_state", "optimizer_state", "scheduler_state", "rng", "rng_ranks"}
    return model, {k: v for k, v in state.items() if k not in skip}


# ---------------------------------------------------------------------- RNG state


def check_model_fits(metadata: dict[str, Any], schema: Any, model_path: Any, windows_path: Any) -> None:
    """Raise a one-line :class:`SeqaeError` naming the first of window length, tracks, track transform
    in which a model (its ``load_model`` metadata) differs from a windows file's :class:`~seqae.windows.store.WindowsSchema`.

    The flank may differ: the model reads the centre crop.
    """
    init = metadata.get("model_init", {})
    trained = dict(metadata.get("data", {}).get("schema", {}))
    trained.setdefault("window_len", init.get("window_len"))
    trained.setdefault("track_transform", init.get("track_transform"))
    model_tracks = trained.get("track_names")
    here = f"{windows_path}: does not fit the model {model_path}"
    if trained["window_len"] != schema.window_len or init.get("window_len", schema.window_len) != schema.window_len:
        raise SeqaeError(f"{here}: window_len is {schema.window_len} here, {trained['window_len']} for the model")
    if init.get("n_tracks", len(schema.track_names)) != len(schema.track_names) or (
        model_tracks is not None and list(model_tracks) != list(schema.track_names)
    ):
        theirs = list(model_tracks) if model_tracks is not None else f"{init.get('n_tracks')} tracks"
        raise SeqaeError(f"{here}: tracks are {list(schema.track_names)} here, {theirs} for the model")
    if trained["track_transform"] != schema.track_transform:
        raise SeqaeError(
            f"{here}: track_transform is {schema.track_transform!r} here, {trained['track_transform']!r} for the model"
        )


def rng_state() -> dict[str, Any]:
    """The global RNG states (torch CPU and every CUDA device, NumPy, Python) as plain types and tensors."""
    np_state = np.random.get_state(legacy=False)
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            "key": torch.from_numpy(np.asarray(np_state["state"]["key"], dtype=np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "python": random.getstate(),
    }


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what :func:`rng_state` returned. CUDA states are restored when CUDA is present
    (a CPU-saved state leaves the CUDA generators as seeded)."""
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    n = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": n["bit_generator"],
            "state": {"key": n["key"].numpy().astype(np.uint32), "pos": n["pos"]},
            "has_gauss": n["has_gauss"],
            "gauss": n["gauss"],
        }
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


# ---------------------------------------------------------------------- compatibility


def first_difference(old: Any, new: Any, prefix: str = "") -> tuple[str, Any, Any] | None:
    """The first dotted key at which two nested dicts differ, with both values; None when equal.

    Numbers compare by value (``1`` equals ``1.0``); lists and tuples compare alike.
    """
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in list(old) + [k for k in new if k not in old]:
            here = f"{prefix}.{key}" if prefix else str(key)
            if key not in old or key not in new:
                return here, old.get(key, "<absent>"), new.get(key, "<absent>")
            diff = first_difference(old[key], new[key], here)
            if diff is not None:
                return diff
        return None
    if isinstance(old, list | tuple) and isinstance(new, list | tuple):
        return None if list(old) == list(new) else (prefix, list(old), list(new))
    if isinstance(old, bool) or isinstance(new, bool):
        return None if old is new else (prefix, old, new)
    return None if old == new else (prefix, old, new)


def check_resumable(
    state: Mapping[str, Any],
    path: str | os.PathLike[str],
    *,
    model_name: str,
    model_settings: Mapping[str, Any],
    training: Mapping[str, Any],
    seed: int,
) -> None:
    """Raise a one-line :class:`SeqaeError` naming the first setting in which a checkpoint differs from this run.

    Keys in :data:`RUN_ONLY_TRAINING_KEYS` may differ.
    """
    hint = "; delete it, or train with a new --outdir, to start afresh"
    if state["model_name"] != model_name:
        raise SeqaeError(f"{path}: is a checkpoint of model {state['model_name']!r}, not {model_name!r}{hint}")
    diff = first_difference(state["model_init"]["settings"], dict(model_settings), f"models.{model_name}")
    if diff is not None:
        key, old, new = diff
        raise SeqaeError(f"{path}: was trained with {key}={old!r}, this config says {new!r}{hint}")
    old_blocks, new_blocks = list(state["model_init"]["settings"]["blocks"]), list(model_settings["blocks"])
    if old_blocks != new_blocks:  # same blocks in another order: another latent layout
        raise SeqaeError(
            f"{path}: was trained with the latent blocks {old_blocks} (models.{model_name}.blocks), "
            f"this config gives {new_blocks}{hint}"
        )
    keep = {k: v for k, v in state["training"].items() if k not in RUN_ONLY_TRAINING_KEYS}
    now = {k: v for k, v in training.items() if k not in RUN_ONLY_TRAINING_KEYS}
    diff = first_difference(keep, now, "training")
    if diff is not None:
        key, old, new = diff
        raise SeqaeError(f"{path}: was trained with {key}={old!r}, this config says {new!r}{hint}")
    if state["seed"] != seed:
        raise SeqaeError(f"{path}: was trained with seed={state['seed']!r}, this config says {seed!r}{hint}")


def check_data(
    state: Mapping[str, Any],
    path: str | os.PathLike[str],
    windows: str | os.PathLike[str],
    schema: Mapping[str, Any],
    label_categories: Mapping[str, list[str]] | None = None,
    windows_fingerprint: str | None = None,
    split_sizes: tuple[int, int] | None = None,
) -> None:
    """Raise a one-line :class:`SeqaeError` when a windows file does not match the data a checkpoint was trained on.

    Args:
        state: the checkpoint (or model file) dict.
        path: its path, for the message.
        windows: the windows file, for the message.
        schema: ``WindowsSchema.to_dict()`` of the windows file.
        label_categories: label column -> categories of the windows file (only
            the columns the checkpoint used are compared); None skips the check.
        windows_fingerprint: :func:`seqae.windows.store.windows_fingerprint` of the windows file;
            None skips the check.
        split_sizes: ``(train windows, validation windows)`` of the windows file, compared where the
            checkpoint was written before fingerprints were recorded (it holds these counts); None skips.
    """
    diff = first_difference(state["data"]["schema"], dict(schema))
    if diff is not None:
        key, old, new = diff
        raise SeqaeError(
            f"{windows}: windows file schema differs from the one {path} was trained on: "
            f"{key} {old!r} there, {new!r} here"
        )
    if label_categories is not None:
        for column, old in state["data"]["label_categories"].items():
            new = label_categories.get(column)
            if new is not None and list(new) != list(old):
                extra = sorted(set(new) - set(old))
                missing = sorted(set(old) - set(new))
                detail = f"new {extra[:3]}" if extra else f"missing {missing[:3]}" if missing else "in another order"
                raise SeqaeError(
                    f"{windows}: label {column!r} has other categories than the windows "
                    f"{path} was trained on ({detail})"
                )
    # Snakemake reruns training when the windows are rebuilt (other peaks, splits or genome) but keeps
    # checkpoint.pt, which is no declared output: resuming it would hand on a model of other windows.
    recorded = state["data"].get("windows_fingerprint")
    if recorded is not None:
        other = windows_fingerprint is not None and recorded != windows_fingerprint
    else:  # an older checkpoint: its split sizes are what it recorded of the windows
        before = (state["data"].get("n_train"), state["data"].get("n_val"))
        other = split_sizes is not None and None not in before and tuple(split_sizes) != before
    if other:
        raise SeqaeError(
            f"{windows}: holds other windows than {path} was trained on (other peaks, signal, genome, splits or "
            f"extraction settings); delete {path}, or train with a new --outdir, to start afresh"
        )
