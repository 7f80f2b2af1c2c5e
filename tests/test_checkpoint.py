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
