"""seqae.inference: batches over the rows, their move to the device, the precision rule, per-window
accuracy; and the passes of embed and evaluate that run a tiny model through it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from seqae import inference, runtime
from seqae.embed_blocks import BlockRunner
from seqae.evaluation.passes import encode_latents, model_pass, score_windows
from seqae.models import SequenceAutoencoder
from tests.conftest import tiny_model

WINDOW_LEN = 32
FLANK = 4
CPU = torch.device("cpu")

# Tiny models: one torch thread (see conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def windows(n: int, length: int = WINDOW_LEN, n_tracks: int = 2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``seq uint8 [n, length]`` (a few N), ``tracks float16 [n, n_tracks, length]``."""
    rng = np.random.default_rng(seed)
    seq = rng.integers(0, 4, size=(n, length)).astype(np.uint8)
    seq[0, :5] = 4
    tracks = rng.gamma(1.0, 1.0, size=(n, n_tracks, length)).astype(np.float16)
    return seq, tracks


@pytest.fixture(scope="module")
def model() -> SequenceAutoencoder:
    torch.manual_seed(0)
    return SequenceAutoencoder(tiny_model(), 2, WINDOW_LEN, {"chrom": 3, "gene_family": 4}).eval()


class _Bar:
    """The progress bar BlockRunner updates: counts the windows."""

    def __init__(self) -> None:
        self.n = 0

    def update(self, k: int) -> None:
        self.n += k


@pytest.mark.parametrize(("n", "batch_size"), [(0, 4), (3, 4), (8, 4), (10, 4), (10, 1), (7, 100)])
def test_batches_cover_all_rows_once_in_order(n: int, batch_size: int) -> None:
    slices = inference.batches(n, batch_size)
    rows = [i for sl in slices for i in range(sl.start, sl.stop)]
    assert rows == list(range(n))
    assert all(0 < sl.stop - sl.start <= batch_size for sl in slices)
    assert len(slices) == -(-n // batch_size)


@pytest.mark.parametrize("stage", [False, True])
def test_device_batches_give_the_model_dtypes_and_the_centre_crop(stage: bool) -> None:
    seq, tracks = windows(7, WINDOW_LEN + 2 * FLANK)
    slices = inference.batches(7, 3)
    got = list(inference.device_batches(seq, tracks, slices, CPU, WINDOW_LEN, stage=stage))
    assert [rows for rows, _, _ in got] == slices
    for rows, x, t in got:
        assert x.dtype == torch.int64 and t.dtype == torch.float32
        assert x.shape == (rows.stop - rows.start, WINDOW_LEN)
        assert t.shape == (rows.stop - rows.start, 2, WINDOW_LEN)
        np.testing.assert_array_equal(x.numpy(), seq[rows, FLANK:-FLANK])
        np.testing.assert_array_equal(t.numpy(), tracks[rows, :, FLANK:-FLANK].astype(np.float32))
    uncropped = list(inference.device_batches(seq, tracks, slices, CPU))
    assert uncropped[0][1].shape == (3, WINDOW_LEN + 2 * FLANK)


def test_window_accuracy_counts_called_bases_only_and_is_nan_without_any() -> None:
    seq = torch.tensor([[0, 1, 2, 3], [4, 4, 1, 1], [4, 4, 4, 4]])
    pred = torch.tensor([[0, 1, 0, 0], [4, 4, 1, 0], [4, 4, 4, 4]])  # N "predicted right" counts for nothing
    acc = inference.window_accuracy(pred, seq)
    assert acc.dtype == torch.float32
    assert acc[:2].tolist() == [0.5, 0.5]
    assert torch.isnan(acc[2])


def test_the_precision_rule_is_bf16_on_cuda_and_none_on_the_cpu() -> None:
    assert inference.inference_dtype(CPU) is None
    assert inference.inference_dtype(torch.device("cuda")) == torch.bfloat16
    with inference.autocast(CPU):
        assert not torch.is_autocast_enabled("cpu")
        assert torch.mm(torch.ones(2, 2), torch.ones(2, 2)).dtype == torch.float32


def test_precision_dtype_auto_is_bf16_where_the_device_computes_it_natively(monkeypatch: pytest.MonkeyPatch) -> None:
    """seqae embed's --precision: fp32 is always None (no autocast), bf16 always bf16, auto bf16 on CUDA and on
    CPUs with bf16 instructions only."""
    cuda = torch.device("cuda")
    for native in (True, False):
        monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda native=native: native)
        assert inference.precision_dtype("fp32", CPU) is None
        assert inference.precision_dtype("fp32", cuda) is None
        assert inference.precision_dtype("bf16", CPU) == torch.bfloat16
        assert inference.precision_dtype("auto", cuda) == torch.bfloat16
        assert inference.precision_dtype("auto", CPU) == (torch.bfloat16 if native else None)
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16, got 'fp16'"):
        inference.precision_dtype("fp16", CPU)
    with runtime.autocast(CPU, inference.precision_dtype("bf16", CPU)):
        assert torch.mm(torch.ones(2, 2), torch.ones(2, 2)).dtype == torch.bfloat16
    with runtime.autocast(CPU, inference.precision_dtype("fp32", CPU)):
        assert not torch.is_autocast_enabled("cpu")


def test_the_passes_run_without_gradients(model: SequenceAutoencoder) -> None:
    seen = []

    @inference.inference_mode()
    def probe() -> None:
        seen.append(torch.is_inference_mode_enabled())

    probe()
    with inference.inference_mode():
        seen.append(torch.is_inference_mode_enabled())
    assert seen == [True, True]
    seq, tracks = windows(4)
    out = model_pass(model, seq, tracks, 3, CPU, False, "test")
    assert out["latent"] is not None and not torch.from_numpy(out["latent"]).requires_grad


def test_evaluate_and_embed_passes_give_the_latents_of_a_direct_model_call(model: SequenceAutoencoder) -> None:
    seq, tracks = windows(10, WINDOW_LEN + 2 * FLANK)
    inner_seq = np.ascontiguousarray(seq[:, FLANK:-FLANK])
    inner_tracks = np.ascontiguousarray(tracks[:, :, FLANK:-FLANK])
    with torch.inference_mode():
        direct = [
            model.encode(torch.from_numpy(inner_seq[sl]).long(), torch.from_numpy(inner_tracks[sl]).float())
            for sl in inference.batches(10, 4)
        ]
        forward = model(torch.from_numpy(inner_seq).long(), torch.from_numpy(inner_tracks).float())
    direct_latent = torch.cat(direct).numpy()

    # The same batches: the same numbers, to the bit.
    np.testing.assert_array_equal(encode_latents(model, inner_seq, inner_tracks, 4, CPU, False), direct_latent)
    out = model_pass(model, inner_seq, inner_tracks, 4, CPU, False, "test")
    np.testing.assert_array_equal(out["latent"], direct_latent)
    bar = _Bar()
    block = BlockRunner(model, CPU, WINDOW_LEN, 4, bar, inference.inference_dtype(CPU)).run(
        seq, tracks, want_tracks=True
    )
    assert bar.n == 10
    np.testing.assert_array_equal(block.latent, direct_latent)
    # Other batches (all rows at once): the same within float tolerance.
    np.testing.assert_allclose(out["latent"], forward.latent.numpy(), rtol=1e-5, atol=1e-6)

    # embed's per-window accuracy is evaluate's arg-max bases against the truth, N left out.
    called = inner_seq < 4
    expected = ((out["pred"] == inner_seq) & called).sum(1) / called.sum(1)
    np.testing.assert_allclose(block.accuracy, expected, rtol=1e-6)
    np.testing.assert_allclose(block.score, out["score"], rtol=1e-6)
    np.testing.assert_allclose(block.tracks, out["tracks_pred"], rtol=1e-6)


def test_under_bf16_autocast_the_passes_still_return_float32(
    model: SequenceAutoencoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What CUDA gets (bf16 autocast), tried on the CPU: every output the passes gather comes back as
    float32 (NumPy has no bfloat16), near the full-precision numbers."""
    seq, tracks = windows(6)
    full = model_pass(model, seq, tracks, 4, CPU, False, "fp32")
    monkeypatch.setattr(inference, "inference_dtype", lambda device: torch.bfloat16)
    with inference.autocast(CPU):
        assert torch.is_autocast_enabled("cpu")
    half: dict[str, Any] = model_pass(model, seq, tracks, 4, CPU, False, "bf16", torch.Generator().manual_seed(0))
    for key in ("latent", "tracks_pred", "score", "seq_score"):
        assert half[key].dtype == np.float32, key
        assert np.isfinite(half[key]).all(), key
    np.testing.assert_allclose(half["latent"], full["latent"], rtol=0.1, atol=0.1)
    assert half["sampled"].dtype == np.uint8
    assert encode_latents(model, seq, tracks, 4, CPU, False).dtype == np.float32
    scores = score_windows(model, seq, tracks, 4, CPU)
    assert scores[0].dtype == np.float32 and scores[1].dtype == np.float32
    block = BlockRunner(model, CPU, WINDOW_LEN, 4, _Bar(), inference.inference_dtype(CPU)).run(
        seq, tracks, want_tracks=True
    )
    assert block.latent.dtype == np.float32 and np.isfinite(block.accuracy).all()
