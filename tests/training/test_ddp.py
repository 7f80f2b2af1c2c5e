"""Data-parallel training: real 2-process runs on the CPU (gloo), and what they rely on.

The process runs start ``python -m torch.distributed.run --standalone
--nproc_per_node 2`` twice (the CLI, and a small worker script that runs
several jobs in one process group and dumps each process's final state), with
the tiny windows and models of tests/training/conftest.py; the whole module
takes about half a minute on two cores, most of it starting the processes.
The pure functions of seqae.distributed are tested in tests/test_distributed.py.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from typing import Any

import pandas as pd
import pytest
import torch

from seqae import distributed
from seqae.checkpoint import load_checkpoint
from seqae.config import config_to_json
from seqae.errors import SeqaeError
from seqae.training import resolve_model, train_model
from seqae.training.data import open_run_data
from tests.conftest import REPO
from tests.training.conftest import TIMING, assert_same_run, make_config, metrics, tiny

# BatchNorm, dropout, augmentation, VQ codebooks with restarts, heads on labels
# with unknowns: everything whose state or randomness DDP could get wrong.
VQ = tiny(kind="vq", dropout=0.1, vq={"codebook_size": 8, "n_groups": 2, "dead_code_steps": 2})
# A model whose 2-process gradient is the 1-process gradient but for rounding:
# no BatchNorm (GroupNorm), no augmentation, no dropout, and labels that every
# window has (the heads' means over known labels are then means over the batch).
# Its head gradient cap binds (0.01), so the cap's norms must be the whole batch's.
EXACT = tiny(
    norm="group",
    blocks={"chrom": {"size": 4, "label": "chrom"}, "residual": {"size": 8, "label": None}},
    head_gradient_cap=0.01,
)
MODELS = {"vq": VQ, "exact": EXACT}
TRAINING = {"epochs": 2, "augment": {"reverse_complement": False, "jitter": False}}


def test_batch_size_must_be_divisible_by_the_processes(windows, tmp_path):
    config = make_config(MODELS, **TRAINING)  # batch_size 16
    expected = r"training\.batch_size 16 is the global batch .* divisible by the number of processes, 3"
    with pytest.raises(SeqaeError, match=expected):
        open_run_data(str(windows), resolve_model(config, "vq")[1], [], torch.device("cpu"), distributed.Dist(0, 3))


@pytest.mark.parametrize("weights", [{}, {"supervised": 0.0, "adversarial": 0.0}])
@pytest.mark.parametrize("kind", ["plain", "vae", "vq"])
def test_every_parameter_gets_a_gradient_at_every_step(kind, weights):
    """What DDP's find_unused_parameters=False relies on: also with zero loss weights,
    labels all unknown in the batch and the gradient reversal still at 0 (step 0)."""
    from seqae.models import SequenceAutoencoder

    entry = tiny(kind=kind, denoise={"enabled": True}, infomax={"enabled": True}, cpc={"enabled": True})
    if weights:
        entry["weights"] = weights
    settings, _ = resolve_model(make_config({"m": entry}), "m")
    classes = {"chrom": 3, "gene_family": 2}
    model = SequenceAutoencoder(settings, n_tracks=2, window_len=64, label_classes=classes).train()
    labels = {"chrom": torch.randint(0, 3, (8,)), "gene_family": torch.full((8,), -1)}
    model(torch.randint(0, 4, (8, 64)), torch.rand(8, 2, 64), labels, step=0).loss.backward()
    unused = [name for name, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert unused == []


# ---------------------------------------------------------------------- 2-process runs


WORKER = textwrap.dedent(
    """
    # Runs jobs in one gloo process group (started by torchrun); dumps each process's final module state.
    import json, shutil, sys
    from pathlib import Path
    import torch
    import torch.distributed as dist
    from seqae import training
    from seqae.training.loop import TrainingRun
    from seqae.config import load_config
    from seqae.errors import SeqaeError
    from seqae.models import SequenceAutoencoder

    spec = json.loads(Path(sys.argv[1]).read_text())
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    close = TrainingRun.close

    def close_and_dump(self):
        torch.save(self.module.state_dict(), Path(spec["dump"]) / f"{self.outdir.name}.rank{rank}.pt")
        close(self)

    TrainingRun.close = close_and_dump
    forward = SequenceAutoencoder.forward
    for job in spec["jobs"]:
        config = load_config(text=job["config"])
        nan_step = job.get("nan_step") if rank == job.get("nan_rank") else None

        def maybe_nan(self, seq, tracks, labels=None, step=0):
            out = forward(self, seq, tracks, labels, step)
            if self.training and step == nan_step:
                out.loss = out.loss * float("nan")
            return out

        SequenceAutoencoder.forward = maybe_nan
        try:
            training.train_model(config, job["model"], job["windows"], job["outdir"], resume=job.get("resume", False),
                                 progress=False, stop_after=job.get("stop_after"))
        except SeqaeError as exc:
            (Path(spec["dump"]) / f"{Path(job['outdir']).name}.rank{rank}.error").write_text(str(exc))
        if job.get("copy_to") and rank == 0:
            shutil.copytree(job["outdir"], job["copy_to"])
        dist.barrier()
    dist.destroy_process_group()
    """
)


def torchrun(args: list[str], nproc: int = 2) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *args]
    proc = subprocess.run(command, check=False, capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


@pytest.fixture(scope="module")
def runs(windows, tmp_path_factory) -> dict[str, Any]:
    """Every run of the module, 1-process ones in this process (one thread)."""
    root = tmp_path_factory.mktemp("ddp")
    dump = root / "dump"
    dump.mkdir()
    config = make_config(MODELS, **TRAINING)
    streamed = make_config(MODELS, **TRAINING, stage_on_device=False, num_workers=1)
    # The VQ model keeps its augmentation: nothing below compares it with one process.
    vq_config = make_config(MODELS, epochs=2)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train_model(config, "exact", windows, root / "exact_1", progress=False)
        train_model(vq_config, "vq", windows, root / "vq_1to2", progress=False, stop_after=1)
        one_epoch_single = metrics(root / "vq_1to2")
    finally:
        torch.set_num_threads(before)

    # The command line: what the workflow runs for several GPUs.
    cli = torchrun(
        ["-m", "seqae", "train", "--config-json", config_to_json(vq_config), "--model", "vq"]
        + ["--windows", str(windows), "--outdir", str(root / "vq_2")]
    )
    job = {"windows": str(windows), "config": config_to_json(vq_config), "model": "vq"}
    spec = {
        "dump": str(dump),
        "jobs": [
            # Stopped after one epoch (as if killed), copied, resumed: must end where vq_2 ended.
            {**job, "outdir": str(root / "vq_resumed"), "stop_after": 1, "copy_to": str(root / "vq_2to1")},
            {**job, "outdir": str(root / "vq_resumed"), "resume": True},
            # A 1-process checkpoint continued by 2 processes.
            {**job, "outdir": str(root / "vq_1to2"), "resume": True},
            {**job, "config": config_to_json(config), "model": "exact", "outdir": str(root / "exact_2")},
            # The same, read from the file by DataLoader workers instead of staged.
            {**job, "config": config_to_json(streamed), "model": "exact", "outdir": str(root / "exact_2_streamed")},
            # A NaN loss in process 1 only, at the 5th step (epoch 2).
            {**job, "outdir": str(root / "vq_nan"), "nan_rank": 1, "nan_step": 4},
        ],
    }
    (root / "spec.json").write_text(json.dumps(spec))
    (root / "worker.py").write_text(WORKER)
    torchrun([str(root / "worker.py"), str(root / "spec.json")])
    return {"root": root, "dump": dump, "cli": cli, "vq_config": vq_config, "single_epoch1": one_epoch_single}


def test_cli_run_writes_one_set_of_outputs(runs):
    out = runs["root"] / "vq_2"
    names = {p.name for p in out.iterdir()} - {"tensorboard"}
    assert names == {"checkpoint.pt", "best.pt", "model.json", "metrics.csv", "loss_curves.png"}
    table = metrics(out)
    # batch_size is the global batch: the steps of one process (60 train windows // 16).
    assert list(table["epoch"]) == [1, 2] and list(table["step"]) == [3, 6]
    ckpt = load_checkpoint(out / "checkpoint.pt")
    assert ckpt["world_size"] == 2 and len(ckpt["rng_ranks"]) == 2 and ckpt["finished"]
    assert not any(key.startswith("module.") for key in ckpt["model_state"])
    assert json.loads((out / "model.json").read_text())["processes"] == 2
    log = runs["cli"].stderr
    # Rank 0 logs and shows the progress bar; the other process only warnings.
    assert log.count("vq epoch 2/2: train loss") == 1 and log.count("training complete after 2 epochs (6 steps)") == 1
    assert "2 processes (8 windows each per step)" in log
    assert "vq 1/2" in log


def test_processes_end_with_identical_states(runs):
    for name in ("vq_resumed", "exact_2", "vq_1to2"):
        states = [torch.load(runs["dump"] / f"{name}.rank{r}.pt") for r in range(2)]
        saved = load_checkpoint(runs["root"] / name / "checkpoint.pt")["model_state"]
        assert states[0].keys() == states[1].keys() == saved.keys()
        for key in saved:
            assert torch.equal(states[0][key], states[1][key]), f"{name}: {key} differs between the processes"
            assert torch.equal(states[0][key], saved[key]), f"{name}: {key} differs from the checkpoint"
    # The VQ statistics really moved (so their synchronisation was exercised) and BatchNorm's too.
    assert any(k.endswith("ema_count") for k in saved) and any(k.endswith("running_mean") for k in saved)


def test_resume_after_a_ddp_stop_is_exact(runs):
    assert_same_run(runs["root"] / "vq_2", runs["root"] / "vq_resumed")


def test_staged_and_streamed_ddp_runs_are_identical(runs):
    assert_same_run(runs["root"] / "exact_2", runs["root"] / "exact_2_streamed")


def test_two_processes_follow_one_process_up_to_rounding(runs):
    """Same global batches (one permutation), and the gradient of two processes - the mean of the halves'
    mean gradients - is the batch's mean gradient, because every loss term of EXACT is a mean over windows
    and the halves are equal. Only the order of float summation differs: the metrics agree to about 1e-7
    (measured 1.5e-7 relative after 6 steps; checked at 1e-5). Parameters get a looser bound: AdamW divides
    each coordinate's step by its own gradient scale, so a coordinate whose gradient is at rounding level
    may step by up to lr (3e-3) differently; measured at most 2.5e-5 after 6 steps, checked at 2e-4."""
    one, two = metrics(runs["root"] / "exact_1"), metrics(runs["root"] / "exact_2")
    assert list(two.columns) == list(one.columns)
    columns = [c for c in one.columns if c not in TIMING]
    pd.testing.assert_frame_equal(one[columns], two[columns], check_exact=False, rtol=1e-5, atol=1e-6)
    first = load_checkpoint(runs["root"] / "exact_1" / "checkpoint.pt")["model_state"]
    second = load_checkpoint(runs["root"] / "exact_2" / "checkpoint.pt")["model_state"]
    assert first.keys() == second.keys()
    for key in first:
        torch.testing.assert_close(second[key], first[key], rtol=0, atol=2e-4, msg=key)


def test_checkpoints_move_between_process_counts(runs, windows):
    """A 2-process checkpoint resumes in one process, and a 1-process one in two (continuing, not exactly)."""
    moved = runs["root"] / "vq_2to1"
    assert load_checkpoint(moved / "checkpoint.pt")["epoch"] == 1
    result = train_model(runs["vq_config"], "vq", windows, moved, resume=True, progress=False)
    assert result["finished"] and result["epochs_completed"] == 2 and math.isfinite(result["val_loss"])
    reference = metrics(runs["root"] / "vq_2")
    table = metrics(moved)
    pd.testing.assert_frame_equal(table.drop(columns=TIMING).iloc[:1], reference.drop(columns=TIMING).iloc[:1])
    assert len(table) == 2

    continued = metrics(runs["root"] / "vq_1to2")
    assert list(continued["epoch"]) == [1, 2] and math.isfinite(continued["val_loss"].iloc[1])
    pd.testing.assert_frame_equal(
        continued.drop(columns=TIMING).iloc[:1], runs["single_epoch1"].drop(columns=TIMING).iloc[:1]
    )
    assert load_checkpoint(runs["root"] / "vq_1to2" / "checkpoint.pt")["world_size"] == 2


def test_two_processes_stay_close_to_one_with_batchnorm_and_vq(runs):
    """The VQ model trained by 2 processes vs 1, first epoch: BatchNorm normalises over 8 windows instead of
    16, augmentation and dropout draw other values, the gene head's mean over known labels is taken per
    half. Three steps cannot take them far apart: measured 0.2 % (train) and 0.1 % (val); checked at 3 %."""
    two, one = metrics(runs["root"] / "vq_2").iloc[0], runs["single_epoch1"].iloc[0]
    for column in ("train_loss", "val_loss", "train_loss/seq", "val_loss/tracks"):
        assert two[column] == pytest.approx(one[column], rel=0.03), column


def test_nan_in_one_process_stops_every_process_at_the_same_step(runs):
    """Process 1's loss is NaN at step 5; process 0's only from step 6 (the averaged gradient carries it
    over). Both must name step 5 and stop together, none left waiting in a collective."""
    out = runs["root"] / "vq_nan"
    messages = {(runs["dump"] / f"vq_nan.rank{r}.error").read_text() for r in range(2)}
    assert messages == {f"loss is nan at step 5 (epoch 2); last good checkpoint: {out / 'checkpoint.pt'}"}
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 1 and list(metrics(out)["epoch"]) == [1]
