"""Configuration schema: defaults, one-line errors naming the key, the demo config."""

from __future__ import annotations

import pytest

from seqae.cli import main
from seqae.config import (
    check_demo_paths,
    config_schema,
    config_to_json,
    load_config,
    merge_config_layers,
    validate_config,
)
from seqae.errors import ConfigError
from seqae.models import DEFAULT_MODEL_SETTINGS
from tests.conftest import REPO


def minimal() -> dict:
    return {"genomes": [{"species": "s", "fasta": "g.fa", "tfs": [{"name": "A", "peaks": "a.bed"}]}]}


def test_demo_config_is_valid():
    config = load_config(REPO / "config" / "config.yaml")
    assert config["simulate"]["enabled"] is True
    assert config["extract"]["window_len"] == 1000


def test_defaults_are_filled():
    config = validate_config(minimal())
    assert config["extract"]["window_len"] == 1000
    assert config["extract"]["split"]["holdout_chromosomes"] == {"val": [], "test": []}
    assert config["genomes"][0]["tfs"][0]["bigwig"] is None
    assert config["seed"] == 7


def test_defaults_are_not_shared_between_configs():
    a, b = validate_config(minimal()), validate_config(minimal())
    a["extract"]["split"]["holdout_chromosomes"]["test"].append("chr1")
    assert b["extract"]["split"]["holdout_chromosomes"]["test"] == []


def test_unknown_key_is_named():
    config = minimal() | {"extract": {"windw_len": 5}}
    with pytest.raises(ConfigError) as err:
        validate_config(config, "my.yaml")
    message = str(err.value)
    assert message.startswith("my.yaml: extract.windw_len: unknown key")
    assert "\n" not in message


def test_wrong_type_is_named():
    config = minimal() | {"extract": {"window_len": "long"}}
    with pytest.raises(ConfigError, match=r"^config: extract\.window_len: 'long' is not of type integer$"):
        validate_config(config)


def test_nested_list_key_is_named():
    config = minimal()
    config["genomes"][0]["tfs"][0]["name"] = "bad name!"
    with pytest.raises(ConfigError, match=r"genomes\[0\]\.tfs\[0\]\.name"):
        validate_config(config)


def test_missing_required_key():
    with pytest.raises(ConfigError, match="'genomes' is a required property"):
        validate_config({})


def test_duplicate_species():
    config = minimal()
    config["genomes"].append(dict(config["genomes"][0]))
    with pytest.raises(ConfigError, match="species 's' is listed more than once"):
        validate_config(config)


def test_invalid_yaml_names_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("genomes:\n  - species: [unclosed\n")
    with pytest.raises(ConfigError, match=r"c\.yaml:\d+: not valid YAML"):
        load_config(path)


def test_json_round_trip():
    config = validate_config(minimal())
    assert load_config(text=config_to_json(config)) == config


def test_cli_prints_one_line_and_exits_2(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text("genomes: []\n")
    assert main(["extract", "--config", str(path), "--out", str(tmp_path / "w.h5")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("seqae extract: error:") and "genomes" in err[0]


@pytest.mark.parametrize(
    "overlays",
    [
        ("gpu.yaml",),
        ("cpu.yaml",),
        ("quick.yaml",),
        ("species.yaml",),
        ("species.yaml", "cpu.yaml"),
        ("species.yaml", "gpu.yaml"),
    ],
)
def test_shipped_overlays_validate(overlays: tuple[str, ...]) -> None:
    """Every overlay in config/ merges onto the demo config (as the workflow merges --configfile) into a valid config."""
    from pathlib import Path

    import yaml

    from seqae.models import model_settings

    folder = Path(__file__).resolve().parents[1] / "config"
    layers = [yaml.safe_load((folder / name).read_text()) for name in ("config.yaml", *overlays)]
    config = validate_config(merge_config_layers(layers))
    demo = ["denoising", "plain", "vae", "vq"]
    # The species overlay adds its learnt model; an overlay after it that lists the demo's models
    # (cpu.yaml, gpu.yaml) decides which models run, as for a user's overlay.
    expected = {("species.yaml",): sorted([*demo, "learnt"]), ("quick.yaml",): ["plain"]}.get(overlays, demo)
    assert sorted(config["models"]) == expected
    resolved = {
        name: model_settings({k: v for k, v in settings.items() if k != "training"}, where=f"models.{name}")
        for name, settings in config["models"].items()
    }
    if "species.yaml" not in overlays:
        # The demo's two-level models: linear erasure guards the blocks; the gradient-reversal adversary is off.
        assert all(m["weights"]["adversarial"] == 0.0 and m["erasure"]["enabled"] for m in resolved.values())
    if "cpu.yaml" in overlays:
        assert config["training"]["epochs"] == 8
        assert all(m["adversarial_schedule"]["warmup_steps"] == 600 for m in config["models"].values())
        # The demo's models train a converter for their swaps (the species models, convolutional, ignore it).
        assert all(m["weights"]["conversion"] == 1.0 for m in config["models"].values())
    if "species.yaml" in overlays:
        models = {name: m for name, m in config["models"].items() if name in demo}
        assert all(m["composition_k"] == 4 and "species" in m["blocks"] for m in models.values())
        assert all(m["adversarial_objective"] == "decorrelation" for m in models.values())
        assert all(m["scan"]["channels"] == 0 for m in models.values())
    if overlays == ("species.yaml",):
        learnt = model_settings({k: v for k, v in config["models"]["learnt"].items() if k != "training"})
        assert learnt["composition_k"] == 0 and learnt["scan"]["channels"] == 128
        assert learnt["blocks"]["species"] == {"size": 32, "label": "species"}


def test_a_users_models_replace_the_demos_and_lists_are_replaced() -> None:
    """my.yaml's models are the models that run; a model it names keeps the demo's settings
    beneath its own; genomes and trees.families are replaced; other mappings merge."""
    from pathlib import Path

    import yaml

    demo = yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "config.yaml").read_text())
    mine = {
        "models": {"plain": None, "mine": {"kind": "vq"}},
        "genomes": minimal()["genomes"],
        "trees": {"families": [{"name": "f", "fasta": "f.fa"}]},
        "training": {"epochs": 5},
    }
    merged = merge_config_layers([demo, mine])
    assert list(merged["models"]) == ["plain", "mine"]
    assert merged["models"]["plain"] == demo["models"]["plain"]
    assert merged["models"]["mine"] == {"kind": "vq"}
    assert merged["genomes"] == mine["genomes"]
    assert merged["trees"]["families"] == [{"name": "f", "fasta": "f.fa"}]
    assert merged["trees"]["latent_tree"] == demo["trees"]["latent_tree"]
    assert merged["training"]["epochs"] == 5 and merged["training"]["batch_size"] == demo["training"]["batch_size"]
    # An overlay's settings for a demo model merge into that model's.
    overlay = merge_config_layers([demo, {"models": {"plain": {"size": "large"}}}])
    assert overlay["models"] == {"plain": demo["models"]["plain"] | {"size": "large"}}
    assert demo["models"]["plain"].get("size") is None  # the layers are not changed


def test_own_data_with_the_demos_paths_left_in_is_one_line(tmp_path) -> None:
    """simulate.enabled: false with a key still under results/demo_data: the demo's truth sites or
    families would be read (if an earlier demo left them) or fail late; the config says which key."""
    import json

    import yaml

    demo = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    mine = {"simulate": {"enabled": False}, **minimal()}
    with pytest.raises(ConfigError) as err:
        check_demo_paths(merge_config_layers([demo, mine]), source="my.yaml")
    assert str(err.value).startswith(
        "my.yaml: evaluate.truth_sites: results/demo_data/truth/sites.tsv is the demo's simulated data, but "
        "simulate.enabled is false"
    )
    # With results elsewhere, the demo's paths (spelled results/demo_data/...) are caught all the same.
    with pytest.raises(ConfigError, match="evaluate.truth_sites: results/demo_data/truth/sites.tsv is the demo's"):
        check_demo_paths(merge_config_layers([demo, {**mine, "results": "results_mine"}]), source="my.yaml")
    mine["evaluate"] = {"truth_sites": None}
    with pytest.raises(ConfigError, match=r"my.yaml: trees.families\[0\].fasta: results/demo_data/families/fam_0.fa"):
        check_demo_paths(merge_config_layers([demo, mine]), source="my.yaml")
    mine["trees"] = {"families": []}
    check_demo_paths(merge_config_layers([demo, mine]), source="my.yaml")
    # The sections the workflow hands its commands carry no `simulate`: the demo's paths pass there.
    load_config(text=json.dumps({"trees": demo["trees"], "results": "results"}), genomes_required=False)
    # A user's file read by a command is checked as it is written.
    own = tmp_path / "my.yaml"
    own.write_text(yaml.safe_dump(merge_config_layers([demo, {"simulate": {"enabled": False}, **minimal()}])))
    with pytest.raises(ConfigError, match="is the demo's simulated data"):
        load_config(own)


def test_generated_schema_and_readme_are_current() -> None:
    """The schema's models and evaluate parts and config/README.md's key tables are generated by
    scripts/config_docs.py from their one definition; a stale file names itself and the command."""
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "config_docs.py"
    spec = importlib.util.spec_from_file_location("config_docs", path)
    config_docs = sys.modules.setdefault(spec.name, importlib.util.module_from_spec(spec))
    spec.loader.exec_module(config_docs)
    stale = config_docs.stale()
    assert not stale, "; ".join(stale)


def test_python_defined_defaults_satisfy_the_generated_schema() -> None:
    """The defaults (and size presets) of the Python-defined sections pass the schema they generate,
    and a wrong value is one line naming the key, from the config or from the Python API alike."""
    from seqae.config import check_settings, config_schema
    from seqae.evaluation import DEFAULT_EVALUATE_SETTINGS, evaluate_settings
    from seqae.models import SIZE_PRESETS, model_settings

    schema = config_schema()
    check_settings(DEFAULT_EVALUATE_SETTINGS, schema["properties"]["evaluate"], "evaluate")
    for size in SIZE_PRESETS:
        full = model_settings({"size": size})
        check_settings(full, schema["$defs"]["model"], "model")
        assert model_settings(full) == full
    assert evaluate_settings({"blas_threads": None, "kmer_k": [3, 4]})["blas_threads"] is None
    config = minimal() | {"evaluate": {"dci_method": "forest"}}
    with pytest.raises(
        ConfigError, match=r"^config: evaluate\.dci_method: 'forest' is not one of \['logistic', 'gbt'\]$"
    ):
        validate_config(config)
    with pytest.raises(ConfigError, match=r"^evaluate\.dci_method: 'forest' is not one of \['logistic', 'gbt'\]$"):
        evaluate_settings({"dci_method": "forest"})
    config = minimal() | {"models": {"m": {"decoder": {"context": 9}}}}
    with pytest.raises(ConfigError, match=r"^config: models\.m\.decoder\.context: 9 is greater than the maximum of 8$"):
        validate_config(config)
    with pytest.raises(ConfigError, match=r"^models\.m\.decoder\.context: 9 is greater than the maximum of 8$"):
        model_settings({"decoder": {"context": 9}}, where="models.m")


def test_schema_models_match_default_model_settings():
    """The generated `models` schema has exactly the keys (and choices) of DEFAULT_MODEL_SETTINGS."""
    from seqae.models.settings import MODEL_SETTINGS_CHOICES

    model = config_schema()["$defs"]["model"]["properties"]

    def tree(schema: dict) -> dict:
        return {k: tree(v["properties"]) if "properties" in v else None for k, v in schema.items()}

    def defaults_tree(settings: dict) -> dict:
        return {k: defaults_tree(v) if isinstance(v, dict) and k != "blocks" else None for k, v in settings.items()}

    expected = defaults_tree(DEFAULT_MODEL_SETTINGS)
    actual = tree({k: v for k, v in model.items() if k != "training"})
    assert actual == expected
    for key, choices in MODEL_SETTINGS_CHOICES.items():
        node = model
        parts = key.split(".")
        for part in parts[:-1]:
            node = node[part]["properties"]
        assert node[parts[-1]]["enum"] == list(choices), key
    # A model's training overrides: the same keys as the top-level training, without defaults.
    top = config_schema()["properties"]["training"]["properties"]
    override = model["training"]["properties"]
    assert tree(override) == tree(top)
    assert not any("default" in v for v in override.values())
