# Shared set-up of the workflow: config validation, paths, and the targets of
# rule all. Functions only; the rules live in one .smk per stage.

import hashlib
import os
import shlex
import sys

from snakemake.utils import validate

# The workflow imports seqae from its own checkout, so that parsing works in an
# environment that has only Snakemake (the jobs get the same via SEQAE below).
sys.path.insert(0, workflow.basedir)

from seqae.config import (
    check_demo_paths,
    config_to_json,
    genome_input_files,
    merge_config_layers,
    nvidia_gpu_visible,
    validate_config,
)
from seqae.errors import ConfigError
from seqae.report import incomplete_outputs


# ---- configuration ---------------------------------------------------------
def _shown_path(path):
    """``path`` relative to the working folder where it lies below it, else as given."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def _config_sources():
    """Where the config came from, in merge order, for the error line."""
    cli_files = [os.path.abspath(f) for f in workflow.overwrite_configfiles]
    files = [
        str(f) for f in workflow.configfiles if os.path.abspath(f) not in cli_files
    ]
    files = [_shown_path(str(f)) for f in files + cli_files]
    if workflow.config_settings.config:
        files.append("--config")
    return " + ".join(files) or "config"


def _config_layers():
    """Every config file in merge order (the Snakefile's configfile, then
    --configfile's, then --config), each as read, for merge_config_layers."""
    from snakemake.common.configfile import load_configfile

    cli_files = [os.path.abspath(f) for f in workflow.overwrite_configfiles]
    files = []
    if not getattr(workflow.config_settings, "replace_workflow_config", False):
        files = [f for f in workflow.configfiles if os.path.abspath(f) not in cli_files]
    layers = [load_configfile(f) for f in files + cli_files]
    return layers + [dict(workflow.config_settings.config or {})]


# A user's `models:` names the models that run (Snakemake alone would merge it
# into the demo's four); genomes and trees.families, lists, are replaced anyway.
_models = merge_config_layers(_config_layers()).get("models")
if _models is not None:
    config["models"] = _models

# seqae's own check first: it fills the defaults and stops at the first wrong
# key or type with one line naming the key, e.g. "Error in the configuration:
# config/config.yaml + my.yaml: extract.windw_len: unknown key (allowed here:
# ...)". That line alone is printed, without a traceback: it says all there is
# to fix.
try:
    check_demo_paths(config, source=_config_sources())
    validate_config(config, source=_config_sources())
except ConfigError as exc:
    print(f"Error in the configuration: {exc}", file=sys.stderr)
    sys.exit(1)

# The same schema, registered for Snakemake's own tooling; it passes whenever
# the check above does.
validate(config, schema="../schemas/config.schema.yaml")


# `snakemake --report` after an interrupted run: one line on what to do instead
# of Snakemake's IncompleteFilesException.
if any(arg == "--report" or arg.startswith("--report=") for arg in sys.argv):
    _incomplete = incomplete_outputs()
    if _incomplete:
        print(
            f"The last run stopped before it finished ({len(_incomplete)} outputs"
            f" incomplete, e.g. {_incomplete[0]}): run the workflow again to finish"
            " it (training resumes from its checkpoint), or build a report of what"
            " exists with `make report` (seqae report).",
            file=sys.stderr,
        )
        sys.exit(1)


# ---- paths -------------------------------------------------------------------
RESULTS = os.path.normpath(config["results"])
LOGS = f"{RESULTS}/logs"
DEMO_DIR = f"{RESULTS}/demo_data"
WINDOWS_DIR = f"{RESULTS}/windows"

MODELS_DIR = f"{RESULTS}/models"
TREES_DIR = f"{RESULTS}/trees"
ORTHOLOGS_DIR = f"{RESULTS}/orthologs"

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
DEMO_FAMILIES = [
    f"fam_{i}" for i in range(config["simulate"]["families"]["n_families"])
]
FAMILIES = {family["name"]: family for family in config["trees"]["families"]}
# Families are fitted in batches, one job each: latent_tree.batch_size families
# per job in config order (the job fits those with the same number of taxa
# together on one device); the points model keeps one family per batch.
TREE_BATCH_SIZE = (
    config["trees"]["latent_tree"]["batch_size"]
    if config["trees"]["model"] == "tree_latent"
    else 1
)
TREE_BATCHES = [
    list(FAMILIES)[k : k + TREE_BATCH_SIZE]
    for k in range(0, len(FAMILIES), TREE_BATCH_SIZE)
]
DEMO_SPECIES = [f"sp{i}" for i in range(config["simulate"]["species"]["n_species"])]

# The seqae command line of every rule: the seqae installed in the job's
# environment. In the venv of `make venv` it is installed editable from this
# checkout; in a conda env of envs/, the env's post-deploy script installs it
# editable from SEQAE_SOURCE, which Snakemake's process (and so the script it
# runs after creating an env) inherits from here.
os.environ.update(SEQAE_SOURCE=os.path.abspath(workflow.basedir))
SEQAE = "python -m seqae --quiet"


def config_file(name, subset):
    """Write ``subset`` of the validated config as JSON to
    ``<results>/config/<name>.<hash>.json`` (once) and return that path, for
    ``seqae --config``: a job's shell command stays one short line, and the
    file says what the job was given. The hash of the content is in the name,
    so the path, a param, changes when the content does, and Snakemake reruns
    the job then (as it would for the JSON itself)."""
    text = config_to_json(subset)
    digest = hashlib.sha1(text.encode()).hexdigest()[:10]
    path = f"{RESULTS}/config/{name}.{digest}.json"
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            f.write(f"{text}\n")
        os.replace(tmp, path)
    return path


def cli_config(*sections):
    """The config file for ``seqae --config`` of a rule (see config_file).

    Only the global keys (results, seed, genomes) and the named top-level
    ``sections`` are passed; the command fills the rest with defaults. Snakemake
    reruns a job when its params change, so a rule that sees only the sections
    it reads is not rerun when another stage's settings change.
    """
    keys = ["results", "seed", "genomes", *sections]
    return config_file("-".join(sections), {key: config[key] for key in keys})


def tree_cli_config(members=None):
    """The config file for one tree job: the trees settings with only the
    job's families (none for a one-family job), so that adding a family
    reruns only the batch it joins. No genomes: a tree job reads none, and a
    changed blacklist or peak file reran every tree batch."""
    subset = {key: config[key] for key in ("results", "seed")}
    subset["trees"] = {k: v for k, v in config["trees"].items() if k != "families"}
    if members is None:
        return config_file("trees", subset)
    subset["trees"]["families"] = [FAMILIES[name] for name in members]
    return config_file("trees_batch", subset)


def batch_inputs(members):
    """The files of a batch's families: FASTAs, reference trees and labels
    when given, and the real trees shown to the discriminator."""
    inputs = {}
    for name in members:
        family = FAMILIES[name]
        inputs[f"fasta_{name}"] = family["fasta"]
        for key in ("reference", "labels"):
            if family[key] is not None:
                inputs[f"{key}_{name}"] = family[key]
    if config["trees"]["real_trees"]:
        inputs["real_trees"] = config["trees"]["real_trees"]
    return inputs


def batch_outputs(members):
    """The outputs of a batch job: every member's files (family_outputs),
    its figures registered for the report (one subcategory per family)."""
    outputs = []
    for name in members:
        for key, path in family_outputs(TREES_DIR).items():
            path = path.format(family=name)
            if key in ("png", "svg", "circular_png"):
                path = report(
                    path,
                    caption="../report/tree_family.rst",
                    category="Trees",
                    subcategory=name,
                )
            outputs.append(path)
    return outputs


def model_cli_config(model):
    """The config file for training one model: only that model's entry, so that
    changing one model's settings reruns only its own jobs."""
    keys = ["results", "seed", "genomes", "training"]
    subset = {key: config[key] for key in keys}
    subset["models"] = {model: config["models"][model]}
    return config_file(f"train_{model}", subset)


def wants_gpu(device):
    """Whether jobs of a stage set to ``device`` (auto, cpu, cuda) ask for a GPU:
    cuda always; auto on a cluster (the compute nodes may have one) or where
    this machine shows an NVIDIA GPU (checked without importing torch), so a
    run on a machine without one shows no gpu resource."""
    if device == "auto":
        return not workflow.local_exec or nvidia_gpu_visible()
    return device == "cuda"


def train_gpus(wildcards):
    """GPUs a model job asks the scheduler for: one, or none (None: no gpu
    resource at all) when training.device does not want one (wants_gpu)."""
    return 1 if wants_gpu(config["training"]["device"]) else None


def train_job_gpus(wildcards):
    """GPUs of one model's training job: training.gpus (the model's own
    ``training:`` entry wins; 1 without the key), none (None) when
    training.device does not want one (wants_gpu). More than one: the job
    trains data-parallel (see train_launcher)."""
    training = dict(config["training"])
    training.update((config["models"][wildcards.model] or {}).get("training") or {})
    if not wants_gpu(training["device"]):
        return None
    return int(training.get("gpus", 1))


def train_mem_mb(wildcards, attempt):
    """Memory of a training job (MB): 8 GB per process, as every process reads
    the windows before staging them on its GPU; more on each retry."""
    return 8000 * attempt * max(1, train_job_gpus(wildcards) or 0)


def train_launcher(wildcards, resources):
    """The command that starts ``seqae`` for a training job: SEQAE with at
    most one GPU; with more, torchrun (``python -m torch.distributed.run``),
    which starts one process per GPU of the job's node (``--standalone``: its
    own rendezvous on a free local port), in the same environment. Follows the
    job's gpu resource, so a profile's set-resources can raise it too."""
    n = int(resources.get("gpu") or 0)
    if n <= 1:
        return SEQAE
    launcher = SEQAE.replace(
        " python -m seqae ",
        f" python -m torch.distributed.run --standalone --nproc_per_node {n} -m seqae ",
    )
    assert launcher != SEQAE, "SEQAE no longer runs `python -m seqae`"
    return launcher


def demo_species_files():
    """The files of every demo species (simulate.species), empty without species."""
    if not DEMO_SPECIES:
        return []
    files = [
        f"{DEMO_DIR}/species_tree.nwk",
        f"{DEMO_DIR}/truth/species_peaks.tsv",
        f"{DEMO_DIR}/truth/orthologs.tsv",
    ]
    for species in DEMO_SPECIES:
        folder = f"{DEMO_DIR}/species/{species}"
        files += [
            f"{folder}/genome.fa",
            f"{folder}/genes.gtf",
            f"{folder}/blacklist.bed",
        ]
        for tf in DEMO_TFS:
            files += [f"{folder}/peaks/{tf}.narrowPeak", f"{folder}/tracks/{tf}.bw"]
    return files


def tree_gpus(wildcards):
    """GPUs a tree job asks the scheduler for: none (None: no gpu resource)
    unless trees.device is cuda (families are small; the CPU is the default
    where no GPU is requested)."""
    return 1 if config["trees"]["device"] == "cuda" else None


def evaluate_outputs():
    """Outputs of ``seqae evaluate`` for one model: metrics and the probe
    table, and the figures (registered for the report) unless
    evaluate.figures is false, when it draws none."""
    folder = f"{MODELS_DIR}/{{model}}/evaluate"
    outputs = {
        "metrics": f"{folder}/metrics.json",
        "probes": f"{folder}/probe_matrix.tsv",
    }
    if (config.get("evaluate") or {}).get("figures", True):
        outputs["probe_png"] = report(
            f"{folder}/probe_matrix.png",
            caption="../report/probe_matrix.rst",
            category="Evaluation",
            subcategory="{model}",
        )
        outputs["anomaly_png"] = report(
            f"{folder}/anomaly_scores.png",
            caption="../report/anomaly_scores.rst",
            category="Evaluation",
            subcategory="{model}",
        )
        outputs["latent_png"] = report(
            directory(f"{folder}/latent"),
            patterns=["latent_{block}.png"],
            caption="../report/latent.rst",
            category="Evaluation",
            subcategory="{model}",
        )
    return outputs


def family_cli_options(wildcards, input):
    """``--reference``/``--labels`` options of ``seqae trees`` for the inputs given."""
    return "".join(
        f" --{key} {shlex.quote(input[key])}"
        for key in ("reference", "labels")
        if key in input.keys()
    )


def family_outputs(trees_dir, caption=None):
    """Outputs of a tree job under ``trees_dir``: tree files, ancestral
    sequences, summary row, and the figures unless trees.render is false; with
    a ``caption``, the figures are registered for the report (one subcategory
    per family)."""
    stem = f"{trees_dir}/{{family}}/{{family}}"
    outputs = {
        "nwk": f"{stem}.nwk",
        "nhx": f"{stem}.nhx",
        "ancestral": f"{stem}.ancestral.fa",
        "tsv": f"{stem}.tsv",
    }
    if config["trees"]["render"]:
        for key, suffix in (
            ("png", ".png"),
            ("svg", ".svg"),
            ("circular_png", ".circular.png"),
            ("circular_svg", ".circular.svg"),
        ):
            outputs[key] = f"{stem}{suffix}"
            if caption and key != "circular_svg":
                outputs[key] = report(
                    outputs[key],
                    caption=caption,
                    category="Trees",
                    subcategory="{family}",
                )
    return outputs


def ortholog_inputs():
    """What seqae orthologs reads: every genome's FASTA and annotation, the
    peaks when windows are anchored on them, the ortholog table and the
    species tree when given."""
    settings = config["orthologs"]
    paths = []
    for genome in config["genomes"]:
        paths += [genome["fasta"], genome["annotation"]]
        if settings["anchor"] == "peak":
            paths += [tf["peaks"] for tf in genome["tfs"]]
    paths += [settings["table"], settings["species_tree"]]
    return list(dict.fromkeys(p for p in paths if p is not None))


def ortholog_family_inputs(wildcards):
    """One ortholog family's FASTA, its pruned species tree when there is one,
    and the real trees shown to the discriminator."""
    stem = f"{ORTHOLOGS_DIR}/families/{wildcards.family}"
    inputs = {"fasta": f"{stem}.fa"}
    if config["orthologs"]["species_tree"] is not None:
        inputs["reference"] = f"{stem}.nwk"
    if config["trees"]["real_trees"]:
        inputs["real_trees"] = config["trees"]["real_trees"]
    return inputs


def ortholog_tree_rows(wildcards):
    """The summary rows of every ortholog family; known once the
    ortholog_families checkpoint has written its folder."""
    folder = checkpoints.ortholog_families.get().output[0]
    names = glob_wildcards(os.path.join(folder, "{family}.fa")).family
    return expand(
        "{dir}/trees/{family}/{family}.tsv", dir=ORTHOLOGS_DIR, family=sorted(names)
    )


def genome_files():
    """Every input file named in config["genomes"] (null entries skipped).

    With the demo config these are outputs of simulate_demo; with a user's
    config they must exist.
    """
    return genome_input_files(config["genomes"])


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


def tree_targets():
    """Per family: the latent tree and its figures; and the table across families."""
    targets = []
    for family in FAMILIES:
        targets += [f"{TREES_DIR}/{family}/{family}.nwk"]
    if FAMILIES:
        targets += [f"{TREES_DIR}/trees.tsv", f"{TREES_DIR}/trees_nrf.png"]
    return targets


def ortholog_targets():
    """The trees of the orthologous-window families, their table and summary."""
    if not config["orthologs"]["enabled"]:
        return []
    return [
        f"{ORTHOLOGS_DIR}/trees.tsv",
        f"{ORTHOLOGS_DIR}/trees_summary.json",
        f"{ORTHOLOGS_DIR}/trees_nrf.png",
    ]


def all_targets():
    """The targets of rule all, one list per stage in pipeline order.

    A new stage adds a function like extract_targets() and one line here.
    """
    targets = []
    targets += extract_targets()
    targets += model_targets()
    targets += tree_targets()
    targets += ortholog_targets()
    return targets
