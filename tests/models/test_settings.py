"""seqae.models.settings: defaults, presets and the errors that name the key."""

from __future__ import annotations

import pytest

from seqae.errors import ConfigError
from seqae.models import DEFAULT_MODEL_SETTINGS, SequenceAutoencoder, model_settings
from tests.models.conftest import tiny_settings

# Tiny models: one torch thread (see conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_model_settings_defaults_presets_and_errors() -> None:
    settings = model_settings()
    assert settings == DEFAULT_MODEL_SETTINGS and settings is not DEFAULT_MODEL_SETTINGS
    assert model_settings(settings) == settings  # idempotent
    large = model_settings({"size": "large", "channels": 128})
    assert large["channels"] == 128 and large["n_res_blocks"] == 8 and large["cpc"]["enabled"] is False
    two = model_settings({"blocks": {"chrom": {"size": 8, "label": "chrom"}, "rest": {"size": 8}}})
    assert list(two["blocks"]) == ["chrom", "rest"] and two["blocks"]["rest"]["label"] is None
    assert model_settings({"weights": {"kl": 1}})["weights"]["kl"] == 1.0
    bad = [
        ({"knd": "vae"}, "model.knd: unknown key"),
        ({"kind": "gan"}, "model.kind: 'gan' is not one of"),
        ({"weights": {"seq": "x"}}, "model.weights.seq"),
        ({"weights": {"kl": -1.0}}, "model.weights.kl: -1.0 is less than the minimum of 0"),
        ({"channels": True}, "model.channels"),
        ({"kernel_size": 4}, "model.kernel_size: must be odd"),
        ({"downsample": 12}, "model.downsample: must be a power of two"),
        ({"kind": "vq", "vq": {"n_groups": 3}}, "not divisible by vq.n_groups"),
        ({"cpc": {"chunk": 20}}, "model.cpc.chunk"),
        ({"blocks": {"a": {"size": 0}}}, "model.blocks.a.size"),
        ({"blocks": {"a": {"size": 4, "lable": "x"}}}, "model.blocks.a.lable: unknown key"),
        ({"denoise": {"mask_rate": 0.7, "substitution_rate": 0.5}}, "must not exceed 1"),
        ({"size": "huge"}, "model.size"),
    ]
    for overrides, message in bad:
        with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
            model_settings(overrides)
    with pytest.raises(ValueError, match="gene_family"):
        SequenceAutoencoder(tiny_settings(), 2, 64, {"chrom": 3})
