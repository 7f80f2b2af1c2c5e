"""seqae.evaluation.settings: defaults, help and checks."""

from __future__ import annotations

import pytest

from seqae.errors import ConfigError
from seqae.evaluation import DEFAULT_EVALUATE_SETTINGS, EVALUATE_SETTINGS_HELP, evaluate_settings

# Tiny models: one torch thread (see conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_settings_defaults_documented_and_checked() -> None:
    assert set(DEFAULT_EVALUATE_SETTINGS) == set(EVALUATE_SETTINGS_HELP)
    for key in ("test_max", "train_max", "kmer_k", "judge_k", "seed"):
        assert key in DEFAULT_EVALUATE_SETTINGS
    assert evaluate_settings({"kmer_k": [3, 4, 5]})["kmer_k"] == [3, 4, 5]
    with pytest.raises(ConfigError, match="evaluate.nope"):
        evaluate_settings({"nope": 1})
    with pytest.raises(ConfigError, match="evaluate.test_max"):
        evaluate_settings({"test_max": 0})
    with pytest.raises(ConfigError, match="evaluate.tss_bins"):
        evaluate_settings({"tss_bins": [10, 5]})
    with pytest.raises(ConfigError, match="evaluate.markov_order"):
        evaluate_settings({"markov_order": 0})
    with pytest.raises(ConfigError, match="evaluate.swap_decoding"):
        evaluate_settings({"swap_decoding": "greedy"})
