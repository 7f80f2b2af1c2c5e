"""The settings of one training run: a configured model's settings and its effective training settings."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from seqae.config import Config
from seqae.errors import SeqaeError


def resolve_model(config: Config, model_name: str, source: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Full model settings and effective training settings of one configured model.

    The model's own ``training:`` entry overrides the top-level ``training``
    keys (``augment`` key by key).

    ``source`` names where the config came from (a file, ``--config-json``) in the message for an unknown model.

    Raises:
        SeqaeError: no such model (the message lists the configured ones).
        ConfigError: invalid model settings, named as ``models.<name>.<key>``.
    """
    models = config.get("models") or {}
    if model_name not in models:
        names = ", ".join(models) or "none"
        if source is None:
            raise SeqaeError(f"no model {model_name!r} in the config (configured models: {names})")
        raise SeqaeError(f"{source}: no model {model_name!r} under models (configured models: {names})")
    from seqae.models import model_settings

    entry = copy.deepcopy(dict(models[model_name] or {}))
    override = entry.pop("training", None) or {}
    settings = model_settings(entry, where=f"models.{model_name}")
    training = copy.deepcopy(dict(config["training"]))
    for key, value in override.items():
        if key == "augment":
            training["augment"] = {**training["augment"], **value}
        else:
            training[key] = value
    return settings, training


def block_labels(settings: Mapping[str, Any]) -> list[str]:
    """The label columns a model's latent blocks name, in block order, each once."""
    return list(dict.fromkeys(block["label"] for block in settings["blocks"].values() if block["label"]))
