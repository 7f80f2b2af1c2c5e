"""Device-dependent run-time defaults."""

from __future__ import annotations

import pytest
import torch

from seqae.runtime import CPU_FORWARD_BATCH, GPU_FORWARD_BATCH, forward_batch_size


@pytest.mark.parametrize(
    ("requested", "device", "expected"),
    [
        (None, torch.device("cpu"), CPU_FORWARD_BATCH),
        (None, torch.device("cuda"), GPU_FORWARD_BATCH),
        (None, "cuda", GPU_FORWARD_BATCH),
        (7, torch.device("cpu"), 7),
        (7, torch.device("cuda"), 7),
    ],
)
def test_inference_batch_is_the_users_or_the_devices_default(requested, device, expected) -> None:
    assert forward_batch_size(requested, device) == expected
    assert CPU_FORWARD_BATCH < GPU_FORWARD_BATCH
