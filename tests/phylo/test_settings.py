"""The tree stage's settings: one definition for the dataclasses, their checks and the schema."""

from dataclasses import fields

import pytest

from seqae.config import config_schema, load_config
from seqae.errors import ConfigError
from seqae.phylo.baselines import BASELINES
from seqae.phylo.discriminator import DiscriminatorSettings
from seqae.phylo.hypertree import LatentTreeSettings
from seqae.phylo.settings import settings_properties
from seqae.phylo.stage import stage_settings
from seqae.phylo.treeae import TreeAESettings


@pytest.mark.parametrize(
    ("cls", "where", "field"),
    [
        (DiscriminatorSettings, r"trees\.discriminator", "steps"),
        (LatentTreeSettings, r"trees\.latent_tree", "epochs"),
        (TreeAESettings, "trees", "latent_dim"),
    ],
)
def test_settings_from_mapping_names_the_unknown_key(cls, where, field) -> None:
    assert cls.from_mapping(None) == cls()
    assert getattr(cls.from_mapping({field: 7}), field) == 7
    with pytest.raises(ConfigError, match=rf"^{where}: unknown key 'stpes' \(known: .*\b{field}\b"):
        cls.from_mapping({field: 7, "stpes": 1})


def test_the_schema_holds_each_dataclass_setting_with_its_default() -> None:
    """The schema's tree sections are the dataclasses' fields, defaults and help (generated from them)."""
    trees = config_schema()["properties"]["trees"]["properties"]
    sections = {
        LatentTreeSettings: trees["latent_tree"]["properties"],
        DiscriminatorSettings: trees["discriminator"]["properties"],
        TreeAESettings: {key: trees[key] for key in settings_properties(TreeAESettings)},
    }
    for cls, schema in sections.items():
        assert schema == settings_properties(cls)
        defaults = cls()
        for key, node in schema.items():
            assert node["default"] == getattr(defaults, key), (cls.__name__, key)
    # Every field is a key of its section, but the top-level seed and the nested discriminator.
    assert {f.name for f in fields(TreeAESettings)} - set(sections[TreeAESettings]) == {"seed", "discriminator"}


def test_a_config_file_fills_the_dataclass_defaults() -> None:
    config = load_config(text="trees: {latent_tree: {dim: 4}, discriminator: {steps: 9}}", genomes_required=False)
    model, stage = stage_settings({**config["trees"], "seed": config["seed"]})
    assert stage["latent_tree"] == LatentTreeSettings(dim=4)
    assert model == TreeAESettings(seed=config["seed"], discriminator=DiscriminatorSettings(steps=9))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: DiscriminatorSettings(hidden=2), r"^trees\.discriminator\.hidden: 2 is less than the minimum of 4$"),
        (lambda: DiscriminatorSettings(death_max=1.5), r"^trees\.discriminator\.death_max: 1\.5 is greater than"),
        (lambda: LatentTreeSettings(batch_size=64.0), r"^trees\.latent_tree\.batch_size: 64\.0 is not of type"),
        (lambda: LatentTreeSettings(dtype="float16"), r"^trees\.latent_tree\.dtype: 'float16' is not one of"),
        (lambda: TreeAESettings(latent_dim=1), r"^trees\.latent_dim: 1 is less than the minimum of 2$"),
        (lambda: TreeAESettings(discriminator={"lr": 0}), r"^trees\.discriminator\.lr: 0 is less than or equal"),
    ],
)
def test_settings_handed_to_the_api_meet_the_config_bounds(make, message) -> None:
    with pytest.raises(ConfigError, match=message):
        make()


def test_the_stage_options_left_out_take_the_schema_defaults() -> None:
    trees = config_schema()["properties"]["trees"]["properties"]
    model, stage = stage_settings({"latent_tree": {"dim": 4}})
    for key in ("baselines", "render", "figure_width", "real_trees", "model", "adversary_check"):
        assert stage[key] == trees[key]["default"], key
    assert stage["seed"] == model.seed == config_schema()["properties"]["seed"]["default"]
    assert stage["latent_tree"] == LatentTreeSettings(dim=4)


def test_the_schema_offers_every_baseline_the_stage_runs() -> None:
    trees = config_schema()["properties"]["trees"]["properties"]
    assert tuple(trees["baselines"]["items"]["enum"]) == BASELINES


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"model": "cloud"}, r"^trees\.model: 'cloud' is not one of"),
        ({"baselines": ["nj_p", "raxml"]}, r"^trees\.baselines\[1\]: 'raxml' is not one of"),
        ({"figure_width": 50}, r"^trees\.figure_width: 50 is less than the minimum of 200$"),
        ({"latent_tree": {"dim": 1}}, r"^trees\.latent_tree\.dim: 1 is less than the minimum of 2$"),
        ({"geometry": "sphere"}, r"^trees\.geometry: 'sphere' is not one of"),
        ({"epochz": 3}, r"^trees\.epochz: unknown key"),
    ],
)
def test_stage_settings_name_the_bad_key(values, message) -> None:
    with pytest.raises(ConfigError, match=message):
        stage_settings({**values, "seed": 3})
