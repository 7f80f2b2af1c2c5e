import pytest

from seqae.phylo.discriminator import DiscriminatorSettings
from seqae.phylo.hypertree import LatentTreeSettings
from seqae.phylo.treeae import TreeAESettings


@pytest.mark.parametrize(
    ("cls", "where", "field"),
    [
        (DiscriminatorSettings, "discriminator", "steps"),
        (LatentTreeSettings, "latent_tree", "epochs"),
        (TreeAESettings, "tree autoencoder", "latent_dim"),
    ],
)
def test_settings_from_mapping_names_the_unknown_key(cls, where, field) -> None:
    assert cls.from_mapping(None) == cls()
    assert getattr(cls.from_mapping({field: 7}), field) == 7
    with pytest.raises(ValueError, match=rf"^{where}: unknown key 'stpes' \(known: .*\b{field}\b"):
        cls.from_mapping({field: 7, "stpes": 1})
