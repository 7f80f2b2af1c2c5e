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


def test_one_device_resolver_for_every_stage(monkeypatch) -> None:
    """auto follows CUDA's presence; cuda without a GPU and unknown names are one line naming the setting."""
    from seqae.errors import SeqaeError
    from seqae.runtime import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device(None) == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(SeqaeError, match=r"^training\.device is 'cuda' but no CUDA device is available"):
        resolve_device("cuda", "training.device")
    with pytest.raises(SeqaeError, match=r"^device is 'cuda:1' but no CUDA device is available"):
        resolve_device("cuda:1")
    with pytest.raises(SeqaeError, match=r"^trees\.latent_tree\.device is 'tpu': expected auto, cpu, cuda"):
        resolve_device("tpu", "trees.latent_tree.device")
    # With CUDA, auto and a bare cuda name the current device (the one a multi-GPU rank set).
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 3)
    assert resolve_device("auto") == torch.device("cuda", 3)
    assert resolve_device("cuda") == torch.device("cuda", 3)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
