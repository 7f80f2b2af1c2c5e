"""seqae.training.settings: a model's settings and its effective training settings."""

from __future__ import annotations

import copy

import pytest

from seqae.config import load_config, validate_config
from seqae.errors import ConfigError, SeqaeError
from seqae.training import resolve_model
from tests.conftest import REPO
from tests.training.conftest import DEMO_MODELS, make_config, tiny

# Tiny models: one torch thread (see conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_config_defaults_and_model_errors_name_the_key():
    config = make_config()
    assert config["training"]["precision"] == "auto" and config["training"]["augment"]["jitter"] is True
    assert validate_config({"genomes": config["genomes"]})["models"] == {"plain": {}}
    bad = copy.deepcopy(config)
    bad["models"]["vq"] = {"kind": "vq", "vq": {"codebook_size": "many"}}
    with pytest.raises(ConfigError, match=r"^config: models\.vq\.vq\.codebook_size: 'many' is not of type integer$"):
        validate_config(bad)
    bad["models"]["vq"] = {"vq": {"codebok_size": 8}}
    with pytest.raises(ConfigError, match=r"models\.vq\.vq\.codebok_size: unknown key"):
        validate_config(bad)
    # Checks beyond types (odd kernels, divisibility) come from model_settings, named the same way.
    bad["models"]["vq"] = {"kind": "vq", "blocks": {"a": {"size": 6, "label": None}}}
    with pytest.raises(ConfigError, match=r"^models\.vq\.blocks\.a\.size: 6 is not divisible by vq\.n_groups = 4$"):
        resolve_model(validate_config(bad), "vq")


def test_per_model_training_override():
    config = make_config({"plain": tiny(), "vq": tiny(kind="vq", training={"epochs": 7, "augment": {"jitter": False}})})
    _, plain = resolve_model(config, "plain")
    settings, vq = resolve_model(config, "vq")
    assert settings["kind"] == "vq" and settings["channels"] == 16
    assert plain["epochs"] == 4 and vq["epochs"] == 7
    assert vq["augment"] == {"reverse_complement": True, "jitter": False}
    with pytest.raises(SeqaeError, match=r"no model 'nope' in the config \(configured models: plain, vq\)"):
        resolve_model(config, "nope")


def test_demo_config_lists_every_model_kind():
    assert {"plain", "denoising", "vae", "vq"} <= set(DEMO_MODELS)
    config = load_config(REPO / "config" / "config.yaml")
    kinds = {name: resolve_model(config, name)[0] for name in DEMO_MODELS}
    assert kinds["plain"]["kind"] == "plain" and kinds["vae"]["kind"] == "vae" and kinds["vq"]["kind"] == "vq"
    assert kinds["denoising"]["kind"] == "plain" and kinds["denoising"]["denoise"]["enabled"]
