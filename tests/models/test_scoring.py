"""seqae.models.scoring: the anomaly score."""

from __future__ import annotations

import pytest
import torch

from seqae.models import SequenceAutoencoder
from tests.models.conftest import LABELS, encode_str, tiny_settings

# Tiny models: one torch thread (see conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_anomaly_score_is_higher_for_unfamiliar_windows() -> None:
    torch.manual_seed(0)
    model = SequenceAutoencoder(tiny_settings(), 1, 64, LABELS)
    # training windows: a repeated motif; strange windows: uniform random bases
    familiar = encode_str("ACGGT" * 13)[:64].repeat(8, 1)
    familiar_tracks = torch.full((8, 1, 64), 0.5)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    for _ in range(40):
        opt.zero_grad()
        model(familiar, familiar_tracks).loss.backward()
        opt.step()
    model.eval()
    strange = torch.randint(0, 4, (8, 64), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        assert (
            model.anomaly_score(strange, familiar_tracks).min() > model.anomaly_score(familiar, familiar_tracks).max()
        )
