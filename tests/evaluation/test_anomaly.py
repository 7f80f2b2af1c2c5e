"""seqae.evaluation.anomaly: the controls the anomaly scores are measured against."""

from __future__ import annotations

import numpy as np
import pytest
import torch

# Tiny models: one torch thread (see conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_foreign_control_carries_real_tracks(monkeypatch) -> None:
    """Foreign windows get other test windows' tracks, not zeros (which reconstruct almost perfectly
    and would make foreign windows look more normal than real ones)."""
    from types import SimpleNamespace

    from seqae.evaluation import anomaly

    seen: list[np.ndarray] = []

    def fake_scores(model, seq, tracks, batch_size, device):
        seen.append(tracks)
        return np.zeros(len(seq), np.float32), np.zeros(len(seq), np.float32), None

    monkeypatch.setattr(anomaly, "score_windows", fake_scores)
    monkeypatch.setattr(anomaly, "pca_apply", lambda pca, codes: (None, np.zeros(len(codes), np.float32)))
    rng = np.random.default_rng(0)
    n, t, length = 12, 2, 30
    data = SimpleNamespace(
        test_seq=rng.integers(0, 4, (n, length)).astype(np.uint8),
        train_seq=rng.integers(0, 4, (n, length)).astype(np.uint8),
        test_tracks=rng.random((n, t, length)).astype(np.float16),
        test_kind=None,
    )
    test_out = {"score": np.ones(n, np.float32), "seq_score": np.ones(n, np.float32)}
    cfg = {"seed": 0, "batch_size": 4, "markov_order": 2}
    anomaly.evaluate_anomaly(None, data, test_out, {"pca": None, "test_err": np.ones(n)}, cfg, torch.device("cpu"))
    shuffled_tracks, foreign_tracks = seen
    assert shuffled_tracks is data.test_tracks
    assert foreign_tracks.shape == data.test_tracks.shape and foreign_tracks.any()

    # A permutation of the real windows' tracks: the same rows, in another order.
    def as_rows(a: np.ndarray) -> list[bytes]:
        return sorted(map(bytes, a.reshape(n, -1)))

    assert as_rows(foreign_tracks) == as_rows(data.test_tracks)
    assert not np.array_equal(foreign_tracks, data.test_tracks)
