"""seqae.checkpoint: the dotted key where two settings first differ."""

from __future__ import annotations

import pytest

from seqae.checkpoint import first_difference

# Tiny models: one torch thread (see conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_first_difference_names_the_dotted_key():
    assert first_difference({"a": {"b": 1, "c": [1, 2]}}, {"a": {"b": 1.0, "c": (1, 2)}}) is None
    assert first_difference({"a": {"b": 1}}, {"a": {"b": 2}}, "models.x") == ("models.x.a.b", 1, 2)
    assert first_difference({"a": True}, {"a": 1}) == ("a", True, 1)


class _NotPlain:
    """An object a weights-only load refuses."""


def test_unreadable_model_files_get_one_line_without_torchs_advice(tmp_path):
    """Text, a truncated archive, a pickled object or a folder: one line, never torch's advice to load with
    weights_only=False (which would run the file's code)."""
    import torch

    from seqae.checkpoint import CHECKPOINT_FORMAT, FORMAT_VERSION, load_checkpoint, load_model
    from seqae.errors import SeqaeError

    text = tmp_path / "text.pt"
    text.write_text("not a model")
    whole = tmp_path / "whole.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "format_version": FORMAT_VERSION, "x": torch.zeros(1000)}, whole)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(whole.read_bytes()[:2000])
    pickled = tmp_path / "object.pt"
    torch.save(_NotPlain(), pickled)
    expected = {
        text: "not a PyTorch checkpoint (truncated, or another kind of file)",
        cut: "not a PyTorch checkpoint (truncated, or another kind of file)",
        pickled: "holds Python objects other than tensors and plain values, which seqae does not load",
        tmp_path: "is a folder; give the checkpoint file in it (best.pt or checkpoint.pt)",
    }
    for path, message in expected.items():
        with pytest.raises(SeqaeError) as err:
            load_checkpoint(path)
        assert str(err.value).startswith(f"{path}: {message}")
        assert "weights_only" not in str(err.value) and "\n" not in str(err.value)
    assert load_checkpoint(whole)["format"] == CHECKPOINT_FORMAT

    # A model whose settings or weights do not fit this version's model.
    from seqae.checkpoint import MODEL_FORMAT

    altered = tmp_path / "altered.pt"
    torch.save(
        {"format": MODEL_FORMAT, "format_version": FORMAT_VERSION, "model_init": {"channels": 4}, "model_state": {}},
        altered,
    )
    with pytest.raises(SeqaeError) as err:
        load_model(altered)
    assert str(err.value).startswith(f"{altered}: its model does not fit this seqae's (")
    assert "\n" not in str(err.value)
