# Shared set-up of the workflow: config validation, paths, and the targets of
# rule all. Functions only; the rules live in one .smk per stage.

import os
import shlex
import sys

from snakemake.utils import validate

# The workflow imports seqae from its own checkout, so that parsing works in an
# environment that has only Snakemake (the jobs get the same via SEQAE below).
sys.path.insert(0, workflow.basedir)

from seqae.config import config_to_json, validate_config
from seqae.errors import ConfigError


# ---- configuration ---------------------------------------------------------
def _config_sources():
    """Where the config came from, in merge order, for the error line."""
    cli_files = [str(f) for f in workflow.overwrite_configfiles]
    files = [str(f) for f in workflow.configfiles if str(f) not in cli_files]
    files += [
        os.path.relpath(f) if not os.path.relpath(f).startswith("..") else f
        for f in cli_files
    ]
    if workflow.config_settings.config:
        files.append("--config")
    return " + ".join(files) or "config"


# seqae's own check first: it fills the defaults and stops at the first wrong
# key or type with one line naming the key, e.g. "Error in the configuration:
# config/config.yaml + my.yaml: extract.windw_len: unknown key (allowed here:
# ...)". That line alone is printed, without a traceback: it says all there is
# to fix.
try:
    validate_config(config, source=_config_sources())
except ConfigError as exc:
    print(f"Error in the configuration: {exc}", file=sys.stderr)
    sys.exit(1)

# The same schema, registered for Snakemake's own tooling; it passes whenever
# the check above does.
validate(config, schema="../schemas/config.schema.yaml")


# ---- paths -------------------------------------------------------------------
RESULTS = os.path.normpath(config["results"])
LOGS = f"{RESULTS}/logs"
DEMO_DIR = f"{RESULTS}/demo_data"
WINDOWS_DIR = f"{RESULTS}/windows"

MODELS_DIR = f"{RESULTS}/models"

DEMO_TFS = [tf["name"] for tf in config["simulate"]["tfs"]]
MODELS = list(config["models"])
# Track names of the windows file: one per TF with a bigWig, in order of first
# appearance (as seqae extract orders them).
TRACKS = list(
    dict.fromkeys(
        tf["name"]
        for genome in config["genomes"]
        for tf in genome["tfs"]
        if tf["bigwig"]
    )
)
DEMO_TRUTH_TABLES = ["sites", "peaks", "chromosomes", "genes"]

# The seqae command line of every rule. It puts this checkout first on
# PYTHONPATH so that a job runs the same seqae in the venv of `make venv`
# (where it is installed editable) and in a conda env of envs/seqae.yaml (which
# holds only the dependencies; Snakemake clears PYTHONPATH there). The path is
# relative to the working directory, where jobs run, so that moving a checkout
# does not change the rules' params and rerun everything.
SEQAE = (
    f"PYTHONPATH={shlex.quote(os.path.relpath(workflow.basedir))}"
    "${PYTHONPATH:+:$PYTHONPATH} python -m seqae --quiet"
)


def cli_config(*sections):
    """The validated config as JSON for ``seqae --config-json``.

    Only the global keys (results, seed, genomes) and the named top-level
    ``sections`` are passed; the command fills the rest with defaults. Snakemake
    reruns a job when its params change, so a rule that sees only the sections
    it reads is not rerun when another stage's settings change.
    """
    keys = ["results", "seed", "genomes", *sections]
    return config_to_json({key: config[key] for key in keys})


def model_cli_config(model):
    """The config JSON for training one model: only that model's entry, so that
    changing one model's settings reruns only its own jobs."""
    keys = ["results", "seed", "genomes", "training"]
    subset = {key: config[key] for key in keys}
    subset["models"] = {model: config["models"][model]}
    return config_to_json(subset)


def train_gpus(wildcards):
    """GPUs a model job asks the scheduler for: none when training.device is cpu."""
    return 0 if config["training"]["device"] == "cpu" else 1


def genome_files():
    """Every input file named in config["genomes"] (null entries skipped).

    With the demo config these are outputs of simulate_demo; with a user's
    config they must exist.
    """
    paths = []
    for genome in config["genomes"]:
        paths += [genome["fasta"], genome["annotation"], genome["blacklist"]]
        for tf in genome["tfs"]:
            paths += [tf["peaks"], tf["bigwig"]]
    return list(dict.fromkeys(p for p in paths if p is not None))


# ---- targets -----------------------------------------------------------------
def extract_targets():
    """Outputs of the extraction stage that rule all asks for."""
    return [
        f"{WINDOWS_DIR}/windows.h5",
        f"{WINDOWS_DIR}/extract_report.json",
        f"{WINDOWS_DIR}/extract_qc.png",
    ]


def model_targets():
    """Per model: the trained model, its embeddings and evaluation; and the comparison."""
    targets = []
    for model in MODELS:
        targets += [
            f"{MODELS_DIR}/{model}/best.pt",
            f"{MODELS_DIR}/{model}/embed/embeddings.parquet",
            f"{MODELS_DIR}/{model}/evaluate/metrics.json",
        ]
    if MODELS:
        targets.append(f"{MODELS_DIR}/comparison.tsv")
    return targets


def all_targets():
    """The targets of rule all, one list per stage in pipeline order.

    A new stage (e.g. trees) adds a function like extract_targets() and one
    line here.
    """
    targets = []
    targets += extract_targets()
    targets += model_targets()
    return targets
