"""Settings of the tree stage's models, each key defined once: default, help, choices and bounds.

Each settings class is a dataclass whose fields are made by :func:`setting`:
the field's default (which also tells its type), its help text, and what a
default does not tell (choices, JSON Schema bounds, a nullable type). From
that one definition come

* the configuration schema's ``trees.latent_tree``, ``trees.discriminator``
  and point-model keys (written by ``scripts/config_docs.py`` with
  :func:`settings_properties`, and from the schema the config/README.md
  tables), and
* the check of every instance (:func:`check_fields`, called by
  ``__post_init__``), so a setting handed to the Python API directly meets the
  same bounds as one read from a config file.

This module imports no torch, so the schema generator reads it in a moment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import Field, asdict, dataclass, field, fields
from functools import cache
from typing import Any, ClassVar, Self

from seqae.config import check_settings, default_seed, json_type
from seqae.errors import ConfigError

__all__ = [
    "DECODERS",
    "DEVICES",
    "DISTANCE_TARGETS",
    "FLAT_RESOLUTIONS",
    "GEOMETRIES",
    "REFINEMENTS",
    "STAGE_KEYS",
    "TREE_SEARCHES",
    "DiscriminatorSettings",
    "LatentTreeSettings",
    "TreeAESettings",
    "TreeSettings",
    "check_fields",
    "setting",
    "settings_properties",
]

REFINEMENTS = ("nni", "none")
FLAT_RESOLUTIONS = ("jc69", "none")
GEOMETRIES = ("sqeuclidean", "euclidean", "poincare", "l1")
DISTANCE_TARGETS = ("p", "jc69")
DECODERS = ("relatives", "mlp")
TREE_SEARCHES = ("bme_nni", "nj")
DEVICES = ("auto", "cpu", "cuda")


def setting(default: Any, help: str, choices: Sequence[str] = (), **schema: Any) -> Any:
    """A settings field: ``default``, its ``help`` (one or more sentences), its ``choices``
    and JSON Schema keywords its default does not tell (``minimum=0``, ``type=["integer", "null"]``)."""
    metadata = {"help": help, "choices": tuple(choices), "schema": schema}
    return field(default=default, metadata=metadata)


def _is_setting(f: Field) -> bool:
    return "help" in f.metadata


def _field_schema(f: Field) -> dict[str, Any]:
    """The JSON Schema of one :func:`setting` field, its default included."""
    extra = dict(f.metadata["schema"])
    if f.metadata["choices"]:
        node: dict[str, Any] = {"enum": list(f.metadata["choices"])}
    elif "type" in extra:
        node = {"type": extra.pop("type")}
    else:
        node = json_type(f.default)
    node.update(extra)
    node["default"] = f.default
    node["description"] = f.metadata["help"]
    return node


@cache
def settings_properties(cls: type) -> dict[str, Any]:
    """JSON Schema ``properties`` of the settings dataclass ``cls``: one per :func:`setting` field
    (fields made otherwise, such as the top-level ``seed``, are not keys of its section)."""
    return {f.name: _field_schema(f) for f in fields(cls) if _is_setting(f)}


def check_fields(settings: Any) -> None:
    """Check the :func:`setting` fields of a settings instance against their definition.

    Raises:
        ConfigError: one line naming the key (under the class's ``WHERE``) and what is wrong.
    """
    cls = type(settings)
    values = {f.name: getattr(settings, f.name) for f in fields(cls) if _is_setting(f)}
    schema = {"type": "object", "properties": settings_properties(cls)}
    check_settings(values, schema, cls.WHERE)


class TreeSettings:
    """What the tree stage's settings dataclasses share: the check of every new instance against
    the fields' definition, and :meth:`from_mapping`. ``WHERE`` is the class's place in the config."""

    WHERE: ClassVar[str]

    def __post_init__(self) -> None:
        check_fields(self)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> Self:
        """An instance from a config mapping (``None``: every default).

        Raises:
            ConfigError: a key that is not a field, as ``"<WHERE>: unknown key 'k' (known: ...)"``,
                or a value outside its definition.
        """
        values = dict(values or {})
        known = sorted(f.name for f in fields(cls))  # type: ignore[arg-type]
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(f"{cls.WHERE}: unknown key {unknown[0]!r} (known: {', '.join(known)})")
        return cls(**values)


@dataclass
class DiscriminatorSettings(TreeSettings):
    """Settings of the phylogeny discriminator and of its simulated reference trees (``trees.discriminator``)."""

    WHERE: ClassVar[str] = "trees.discriminator"

    hidden: int = setting(64, "Width of its row and pooled networks.", minimum=4)
    n_quantiles: int = setting(16, "Quantiles summarising each sorted row of a distance matrix.", minimum=2)
    lr: float = setting(2e-3, "AdamW learning rate.", exclusiveMinimum=0)
    weight_decay: float = setting(1e-4, "AdamW weight decay.", minimum=0)
    steps: int = setting(
        300,
        "Training steps of the judge (real trees vs non-tree metrics) before the adversarial phase.",
        minimum=1,
    )
    batch: int = setting(64, "Metrics per side per step.", minimum=2)
    subset_min: int = setting(8, "Smallest random leaf subset drawn (the same sizes on both sides).", minimum=4)
    n_reference: int = setting(
        256,
        "Simulated reference trees per family (plus as many for the negatives and half as many held out for the AUC).",
        minimum=8,
    )
    clock_sd_max: float = setting(0.5, "Largest log-normal rate sd of the relaxed-clock references.", minimum=0)
    death_max: float = setting(0.9, "Largest death/birth ratio of the birth–death references.", minimum=0, maximum=1)
    coalescent_fraction: float = setting(
        0.3, "Share of Kingman coalescent trees among the references.", minimum=0, maximum=1
    )
    user_fraction: float = setting(
        0.25, "Share of reference samples drawn from `real_trees` when given.", minimum=0, maximum=1
    )
    latent_fraction: float = setting(
        0.5,
        "Share of the adversary's negatives that are leaf subsets of the current latent metric "
        "(the rest are non-tree metrics).",
        exclusiveMinimum=0,
        maximum=1,
    )


@dataclass
class LatentTreeSettings(TreeSettings):
    """Settings of the tree latent (``trees.latent_tree``; :mod:`seqae.phylo.hypertree`)."""

    WHERE: ClassVar[str] = "trees.latent_tree"

    dim: int = setting(8, "Dimensions of the Poincaré ball holding the leaf points.", minimum=2)
    init_steps: int = setting(
        300, "Adam steps fitting the points to the family's JC69 distances (from their classical MDS).", minimum=0
    )
    init_lr: float = setting(0.05, "Their learning rate.", exclusiveMinimum=0)
    epochs: int = setting(
        100,
        "Adam steps of likelihood training: the points, a distance scale and each family's GTR + Γ move to "
        "maximise the likelihood of the decoded tree (the best decoded tree is kept).",
        minimum=0,
    )
    lr: float = setting(0.01, "Learning rate of the points and the scale.", exclusiveMinimum=0)
    model_lr: float = setting(0.05, "Learning rate of the GTR + Γ parameters.", exclusiveMinimum=0)
    refine: str = setting(
        "nni",
        "nni: ML NNI refinement of the decoded tree (moves scored by the batched pruning likelihood); "
        "none: the decoded tree with ML branch lengths (the ablation; README figures).",
        choices=REFINEMENTS,
    )
    nni_rounds: int = setting(
        40, "Refinement rounds at most (it stops when no move gains 0.001 log-likelihood units).", minimum=0
    )
    # 12 by default: on simulated 100-taxon families the climb alone stops below
    # FastTree's likelihood on over half of them; 12 rounds reach IQ-TREE's
    # likelihood, for about 4x the time (README, tree benchmark).
    perturbations: int = setting(
        12,
        "Rounds of random NNIs on a fifth of the branches followed by NNI climbing again, the better tree kept "
        "per family (IQ-TREE's stochastic search); each round costs about one more refinement. 0 is about 4x "
        "faster; on 100-taxon families its trees stop below FastTree's likelihood on about half of them.",
        minimum=0,
    )
    # The latent points' own distances resolve flat branches worse than JC69 (README).
    flat_resolution: str = setting(
        "jc69",
        "How the refined tree's zero-length internal branches are resolved, where the likelihood cannot tell "
        "their three arrangements apart: jc69 by balanced-minimum-evolution NNIs on the family's JC69 "
        "distances, none as the search left them (the ablation). Only those branches change; the likelihood "
        "does not.",
        choices=FLAT_RESOLUTIONS,
    )
    n_categories: int = setting(4, "Discrete-Γ rate categories.", minimum=1)
    batch_size: int = setting(
        64,
        "Families per job and per batched fit (a job fits those with the same number of taxa together).",
        minimum=1,
    )
    dtype: str = setting("float64", "Precision of the fit.", choices=("float64", "float32"))
    adversarial_weight: float = setting(
        0.0,
        "Weight of `softplus(−adversary(tree))` beside the negative log-likelihood per site; 0 because the "
        "measured loop did not help (README).",
        minimum=0,
    )
    judge: bool = setting(
        True,
        "Fit the judge (a network reading the tree's splits, trained on real vs perturbed trees) and report "
        "its score and AUC per latent tree.",
    )
    judge_steps: int = setting(200, "Adam steps of the judge's first fit.", minimum=1)
    n_reference: int = setting(
        256,
        "Simulated real trees (birth–death, coalescent; relaxed clocks) for the judge, as many again held out "
        "for its AUC.",
        minimum=8,
    )


@dataclass
class TreeAESettings(TreeSettings):
    """Settings of the point-cloud tree autoencoder (``trees.model: points``; :mod:`seqae.phylo.treeae`).

    Its keys sit in ``trees`` itself, beside the stage's; ``seed`` is the
    top-level ``seed`` (initialisation, masks, subsets, reference trees).
    """

    WHERE: ClassVar[str] = "trees"

    latent_dim: int | None = setting(
        None,
        "Size of each sequence's latent point; null: n − 1, enough for the latent to reproduce the family's "
        "p-distances exactly with `sqeuclidean`.",
        type=["integer", "null"],
        minimum=2,
    )
    geometry: str = setting(
        "sqeuclidean",
        "Latent geometry: Euclidean points read by squared distance (the geometry of p-distances between "
        "one-hot rows, so NJ on the latent can match NJ on p-distances exactly), Euclidean distance, the "
        "Poincaré ball (hyperbolic) or l1. The smoothing geometries cost topology on the benchmark families; "
        "see `seqae/phylo/treeae.py`.",
        choices=GEOMETRIES,
    )
    curvature: float = setting(1.0, "c of the Poincaré ball (curvature −c).", exclusiveMinimum=0)
    hidden: int = setting(128, "Width of the encoder and decoder MLPs.", minimum=4)
    encoder_depth: int = setting(
        0, "Hidden layers of the encoder (0: a linear map of the whitened one-hot rows).", minimum=0, maximum=8
    )
    decoder: str = setting(
        "relatives",
        "relatives: each sequence is reconstructed from the others, weighted by latent proximity; mlp: from "
        "its own latent and a family context vector.",
        choices=DECODERS,
    )
    distance_target: str = setting(
        "p",
        "Evolutionary distances the latent distances are fitted to (branch lengths come out in these units).",
        choices=DISTANCE_TARGETS,
    )
    epochs: int = setting(
        800,
        "Warm-up steps (full batch: one step is one pass over the family) with the reconstruction and distance losses.",
        minimum=1,
    )
    adversarial_epochs: int = setting(
        200,
        "Steps of the adversarial phase (0: no discriminator; the AUC and score columns are then empty).",
        minimum=0,
    )
    lr: float = setting(0.01, "Adam learning rate (cosine decay over the warm-up).", exclusiveMinimum=0)
    recon_weight: float = setting(0.1, "Weight of the reconstruction cross-entropy (nats per site).", minimum=0)
    # The stress of an exact fit is ~1e-8, a GAN loss ~1.
    distance_weight: float = setting(
        100.0,
        "Weight of the relative stress between latent and target distances. Only the ratios of the three "
        "weights matter (Adam is invariant to the loss scale); the defaults keep the stress in charge.",
        minimum=0,
    )
    adversarial_weight: float = setting(
        1e-3,
        "Weight of the generator's GAN loss. Larger values make the latent fool the judge more but cost "
        "topology (see `benchmarks/bench_trees.py`).",
        minimum=0,
    )
    tree_search: str = setting(
        "bme_nni",
        "How the tree is read from the latent distances: neighbor joining refined by nearest-neighbour "
        "interchanges under balanced minimum evolution (FastME's criterion; `seqae/phylo/nni.py`), or "
        "neighbor joining alone.",
        choices=TREE_SEARCHES,
    )
    input_dropout: float = setting(
        0.0, "Fraction of sites masked in the encoder's input (denoising).", minimum=0, exclusiveMaximum=1
    )
    # Phases stop early; the adversarial phase keeps at least its share of the remainder.
    max_seconds: float = setting(600.0, "Wall-clock bound of one family's training (s).", exclusiveMinimum=0)
    device: str = setting("auto", "auto: the GPU when CUDA is available, else the CPU (both models).", choices=DEVICES)
    # 8 x 200 sites: 0.3 s with one thread, 16 s with two on a loaded 2-core machine.
    cpu_threads: int | None = setting(
        1,
        "torch threads while a family trains on the CPU (null: torch's default). A family is a small problem; "
        "more threads only spin against each other on a busy machine.",
        type=["integer", "null"],
        minimum=1,
    )
    seed: int = field(default_factory=default_seed)
    discriminator: DiscriminatorSettings = field(default_factory=DiscriminatorSettings)

    def __post_init__(self) -> None:
        if isinstance(self.discriminator, Mapping):
            self.discriminator = DiscriminatorSettings.from_mapping(self.discriminator)
        super().__post_init__()

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> Self:
        """Settings from ``config["trees"]`` (plus ``seed``); the stage's own keys
        (:data:`STAGE_KEYS`) are left out, every other key must be known."""
        return super().from_mapping({k: v for k, v in dict(values or {}).items() if k not in STAGE_KEYS})

    def as_dict(self) -> dict:
        return asdict(self)


#: Keys of ``config["trees"]`` that belong to the stage, not to a model's settings.
STAGE_KEYS = (
    "families",
    "baselines",
    "render",
    "figure_width",
    "real_trees",
    "model",
    "latent_tree",
    "adversary_check",
)
