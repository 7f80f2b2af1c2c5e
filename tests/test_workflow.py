"""The Snakemake workflow end to end on a tiny demo, plus a config error seen by the user."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from seqae.cli import main as cli_main
from seqae.config import nvidia_gpu_visible
from seqae.windows.store import read_labels, read_schema
from tests.conftest import REPO, windows_file_contents

pytestmark = pytest.mark.skipif(shutil.which("snakemake") is None, reason="snakemake is not installed")


def tiny_demo_config(results: str = "results") -> dict:
    demo = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    demo["simulate"].update(
        n_chromosomes=3,
        chromosome_length=80_000,
        n_genes=12,
        n_gene_families=3,
        tfs=[
            {"name": "CTCF", "motif": "MA0139.2", "n_peaks": 40},
            {"name": "GATA1", "motif": "MA0035.5", "n_peaks": 30},
        ],
    )
    genome = demo["genomes"][0]
    genome["tfs"] = [tf for tf in genome["tfs"] if tf["name"] in ("CTCF", "GATA1")]
    demo["extract"]["window_len"] = 200
    demo["extract"]["max_jitter"] = 10
    demo["training"].update(epochs=1, batch_size=16, warmup_steps=2, device="cpu")
    demo["models"] = {
        "tiny": {
            "kind": "plain",
            "channels": 8,
            "n_res_blocks": 1,
            "dilations": [1],
            "head_hidden": 8,
            "blocks": {"chrom": {"size": 2, "label": "chrom"}, "residual": {"size": 2, "label": None}},
        }
    }
    # truth_sites: null, not left out: a job that merges this config over config/config.yaml
    # (SLURM's jobs are not told --replace-workflow-config) gets the same config.
    demo["evaluate"] = {
        "test_max": 100,
        "train_max": 300,
        "pca_train_max": 300,
        "judge_max": 300,
        "swap_max": 50,
        "truth_sites": None,
    }
    demo["simulate"]["families"] = {"n_families": 2, "n_taxa": 8, "n_sites": 60}
    demo["trees"]["families"] = demo["trees"]["families"][:2]
    demo["trees"].update(
        figure_width=300,
        latent_tree={"dim": 4, "init_steps": 40, "epochs": 5, "nni_rounds": 2, "n_reference": 16, "judge_steps": 20},
    )
    return demo


def snakemake_command(
    workdir: Path, config: dict, *args: str, cores: int | None = 2, overlay: bool = False
) -> list[str]:
    """The snakemake command line of this checkout's workflow on ``config`` (written to workdir/tiny.yaml).

    ``overlay``: merge ``config`` over config/config.yaml as a user's overlay is; else it is the whole config.
    """
    cfg = workdir / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(config))
    return [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(cfg),
        *([] if overlay else ["--replace-workflow-config"]),
        *(["--cores", str(cores)] if cores else []),
        *args,
    ]


def run_snakemake(
    workdir: Path, config: dict, *args: str, cores: int | None = 2, overlay: bool = False
) -> subprocess.CompletedProcess:
    cmd = snakemake_command(workdir, config, *args, cores=cores, overlay=overlay)
    return subprocess.run(cmd, check=False, capture_output=True, text=True, cwd=workdir, timeout=600)


def test_an_overlay_run_in_another_folder_is_merged_over_the_demo_config(tmp_path):
    """`snakemake --directory OTHER --configfile mine.yaml` read mine.yaml alone (config/config.yaml
    was looked up in OTHER and skipped without a word), so a user's overlay ran on package defaults."""

    def dry_run(overlay: str) -> subprocess.CompletedProcess:
        (tmp_path / "mine.yaml").write_text(overlay)
        cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path)]
        cmd += ["--configfile", "mine.yaml", "--cores", "1", "-n"]
        return subprocess.run(cmd, check=False, capture_output=True, text=True, cwd=tmp_path, timeout=300)

    wrong = dry_run("extract: {windw_len: 3}\n")
    assert wrong.returncode == 1
    assert f"{REPO}/config/config.yaml + mine.yaml: extract.windw_len: unknown key" in wrong.stderr, wrong.stderr
    planned = dry_run("training: {epochs: 1}\n")
    assert planned.returncode == 0, planned.stderr[-2000:]
    jobs = planned.stdout + planned.stderr
    assert "simulate_demo" in jobs and "train_model" in jobs  # the demo's data and models


def test_demo_workflow_runs_end_to_end(tmp_path):
    done = run_snakemake(tmp_path, tiny_demo_config())
    assert done.returncode == 0, done.stderr[-3000:]
    windows = tmp_path / "results" / "windows"
    for name in ("windows.h5", "windows.bed", "windows.tsv", "extract_report.json", "extract_qc.png"):
        assert (windows / name).stat().st_size > 0, name
    schema = read_schema(windows / "windows.h5")
    assert schema.track_names == ("CTCF", "GATA1") and schema.seq_len == 220
    labels = read_labels(windows / "windows.h5")
    assert set(labels["kind"]) == {"peak", "background"}
    assert set(labels["chrom"]) <= {"chr1", "chr2", "chr3"}
    assert (tmp_path / "results" / "logs" / "extract_windows.log").exists()
    model = tmp_path / "results" / "models" / "tiny"
    for name in (
        "best.pt",
        "metrics.csv",
        "loss_curves.png",
        "embed/embeddings.parquet",
        "embed/embeddings.h5ad",
        "embed/anomaly.bw",
        "embed/recon_CTCF.bw",
        "evaluate/metrics.json",
        "evaluate/probe_matrix.png",
        "evaluate/latent/latent_chrom.png",
    ):
        assert (model / name).stat().st_size > 0, name
    # The bigWigs' headers carry the assembly's lengths (chrom.sizes from the extraction), not the last window's end.
    import pyBigWig

    sizes = dict(line.split("\t") for line in (windows / "chrom.sizes").read_text().splitlines())
    with contextlib.closing(pyBigWig.open(str(model / "embed" / "anomaly.bw"))) as bw:
        assert bw.chroms() and all(int(sizes[c]) == n for c, n in bw.chroms().items())
    # The training's lines reach the terminal (and its log) while Snakemake runs.
    assert "tiny epoch 1/1: train loss" in done.stdout, done.stdout[-2000:]
    assert "tiny epoch 1/1: train loss" in (tmp_path / "results" / "logs" / "train_tiny.log").read_text()
    if importlib.util.find_spec("scanpy") is not None:  # the demo's AnnData in scanpy (the dev extra installs it)
        import scanpy as sc

        adata = sc.read_h5ad(model / "embed" / "embeddings.h5ad")
        sc.pp.neighbors(adata, use_rep="X", n_neighbors=5)
        sc.tl.umap(adata)
        assert adata.obsm["X_umap"].shape == (adata.n_obs, 2) and "peak_set" in adata.obs
    comparison = (tmp_path / "results" / "models" / "comparison.tsv").read_text().splitlines()
    assert len(comparison) == 2 and comparison[1].startswith("tiny")
    trees = tmp_path / "results" / "trees"
    for family in ("fam_0", "fam_1"):
        for suffix in (".nwk", ".nhx", ".ancestral.fa", ".png", ".svg", ".circular.png", ".tsv"):
            assert (trees / family / f"{family}{suffix}").stat().st_size > 0, family + suffix
    table = (trees / "trees.tsv").read_text().splitlines()
    assert len(table) == 3 and table[1].startswith("fam_0") and table[2].startswith("fam_1")
    # The report gathers every stage's figures with their captions (the
    # README's command: no --cores).
    report = run_snakemake(tmp_path, tiny_demo_config(), "--report", "report.html", cores=None)
    assert report.returncode == 0, report.stderr[-3000:]
    html = (tmp_path / "report.html").read_text(errors="replace")
    for expected in (
        "extract_qc.png",
        "loss_curves.png",
        "probe_matrix.png",
        "fam_0.png",
        "comparison.png",
        "trees_nrf.png",
    ):
        assert expected in html, expected
    # Nothing left to do: the outputs are complete and up to date.
    again = run_snakemake(tmp_path, tiny_demo_config(), "-n")
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


def test_a_users_config_with_one_model_plans_one_model(tmp_path):
    """`snakemake --configfile my.yaml` over the demo's config/config.yaml: the models,
    genomes and tree families my.yaml lists replace the demo's (a dry run)."""
    mine = {"models": {"plain": None}, "trees": {"families": tiny_demo_config()["trees"]["families"][:1]}}
    done = run_snakemake(tmp_path, mine, "-n", "--quiet", "rules", overlay=True)
    assert done.returncode == 0, done.stderr[-3000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", done.stdout, flags=re.MULTILINE))
    assert counts["train_model"] == "1" and counts["evaluate_model"] == "1", done.stdout
    assert counts["tree_batch_0"] == "1" and "tree_batch_1" not in counts, done.stdout  # one batch job
    # Families fan out over batches of trees.latent_tree.batch_size, one job each.
    mine["trees"] = {"families": tiny_demo_config()["trees"]["families"][:2], "latent_tree": {"batch_size": 1}}
    done = run_snakemake(tmp_path, mine, "-n", "--quiet", "rules", overlay=True)
    assert done.returncode == 0, done.stderr[-3000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", done.stdout, flags=re.MULTILINE))
    assert counts["tree_batch_0"] == "1" and counts["tree_batch_1"] == "1" and "tree_batch_2" not in counts, done.stdout


def test_the_quick_demo_plans_one_model_and_two_tree_families(tmp_path):
    """`make demo`'s config (config/config.yaml, then config/quick.yaml): one model trained,
    embedded and evaluated for one epoch, two tree families, and nothing of demo-full's."""
    quick = yaml.safe_load((REPO / "config" / "quick.yaml").read_text())
    assert quick["training"]["epochs"] == 1 and quick["training"].get("max_steps") is None
    done = run_snakemake(tmp_path, quick, "-n", "--quiet", "rules", overlay=True)
    assert done.returncode == 0, done.stderr[-3000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", done.stdout, flags=re.MULTILINE))
    for rule in ("train_model", "embed_model", "evaluate_model"):
        assert counts.get(rule) == "1", done.stdout
    assert [f["name"] for f in quick["trees"]["families"]] == ["fam_0", "fam_1"]
    assert "extract_orthologs" not in done.stdout, done.stdout


def test_shell_commands_are_short_and_no_gpu_is_asked_for_without_one(tmp_path):
    """The commands Snakemake prints name a config file instead of holding the config; with
    training.device auto, a machine without a GPU shows no gpu resource."""
    config = tiny_demo_config()
    config["training"]["device"] = "auto"
    done = run_snakemake(tmp_path, config, "-n", "-p")
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout + done.stderr
    commands = [line for line in out.splitlines() if "python -m seqae" in line]
    assert len(commands) >= 8 and max(len(line) for line in commands) < 400, max(commands, key=len)
    assert "--config results/config/train_tiny." in out
    if not nvidia_gpu_visible():
        assert "gpu=" not in out


def test_report_after_an_interrupted_run(tmp_path):
    """A run killed while a model trains: `snakemake --report` says in one line what to do, and
    `seqae report` builds a report of what exists and names what is missing or incomplete."""
    import os
    import signal
    import time

    from seqae.report import incomplete_outputs

    config = tiny_demo_config()
    config["training"].update(epochs=500, early_stopping_patience=0)  # still training when the run is killed
    config["simulate"]["families"] = {"n_families": 0}
    config["trees"]["families"] = []
    # One thread for training, so that the QC figure is drawn beside it on the two cores.
    command = snakemake_command(tmp_path, config, "--set-threads", "train_model=1", cores=2)
    run = subprocess.Popen(command, cwd=tmp_path, start_new_session=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)  # fmt: skip
    log = tmp_path / "results" / "logs" / "train_tiny.log"
    qc = tmp_path / "results" / "windows" / "extract_qc.png"
    try:
        deadline = time.monotonic() + 300
        while not (
            log.is_file() and "epoch 1/500" in log.read_text() and qc.is_file()
            and not any(p.endswith("extract_qc.png") for p in incomplete_outputs(tmp_path))
        ):  # fmt: skip
            assert run.poll() is None and time.monotonic() < deadline, "the run ended before training"
            time.sleep(0.5)
    finally:
        os.killpg(run.pid, signal.SIGKILL)  # as a closed terminal or a lost node: no clean-up
        run.wait()
    assert "results/models/tiny/best.pt" in incomplete_outputs(tmp_path)

    snakemake_report = run_snakemake(tmp_path, config, "--report", "report.html", cores=None)
    assert snakemake_report.returncode == 1
    # Snakemake's own "Config file config/config.yaml is replaced by ..." aside, one line.
    lines = [line for line in snakemake_report.stderr.splitlines() if line.strip() and "Config file" not in line]
    assert len(lines) == 1 and "stopped before it finished" in lines[0] and "make report" in lines[0], lines

    done = subprocess.run(
        [sys.executable, "-m", "seqae", "report", "--config", "tiny.yaml", "--out", "report.html"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120, check=False,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "stopped before it finished" in done.stderr and "planned figures are not there yet" in done.stderr
    page = (tmp_path / "report.html").read_text()
    assert "data:image/png;base64" in page and "windows/extract_qc.png" in page
    assert "results/models/tiny/best.pt" in page  # listed as incomplete
    assert "results/models/comparison.png" in page  # listed as missing

    # Ctrl-C reaches every process of the job: tee stopped with seqae, whose last line never reached the log.
    log.unlink()
    assert run_snakemake(tmp_path, config, "--unlock", cores=None).returncode == 0  # the killed run's lock
    command = snakemake_command(tmp_path, config, "--rerun-incomplete", "--set-threads", "train_model=1", cores=2)
    run = subprocess.Popen(command, cwd=tmp_path, start_new_session=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while "/500" not in (log.read_text() if log.is_file() else ""):
            assert run.poll() is None and time.monotonic() < deadline, "the run ended before training"
            time.sleep(0.5)
        os.killpg(run.pid, signal.SIGINT)  # as Ctrl-C in the terminal
        run.wait(timeout=120)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.pid, signal.SIGKILL)
    assert "seqae train: interrupted" in log.read_text()


def test_config_error_is_one_line_naming_the_key(tmp_path):
    config = tiny_demo_config()
    config["extract"]["windw_len"] = 5
    done = run_snakemake(tmp_path, config, "-n")
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if "extract.windw_len" in line]
    assert len(lines) == 1 and "unknown key" in lines[0]
    assert "Traceback" not in done.stderr


def test_species_overlay_runs_end_to_end(tmp_path, monkeypatch):
    """Several species from the demo generator, one windows file, a model with a species block,
    and trees of orthologous windows compared with the species tree."""
    config = tiny_demo_config()
    species = ["sp0", "sp1", "sp2", "sp3"]
    config["simulate"]["species"] = {"n_species": len(species), "height": 0.05}
    config["simulate"]["families"] = {"n_families": 0}
    config["trees"]["families"] = []
    template = config["genomes"][0]
    config["genomes"] = [
        yaml.safe_load(yaml.safe_dump(template).replace("results/demo_data/", f"results/demo_data/species/{sp}/"))
        | {"species": sp}
        for sp in species
    ]
    config["models"]["tiny"]["blocks"] = {
        "species": {"size": 2, "label": "species"},
        "chrom": {"size": 2, "label": "chrom"},
        "residual": {"size": 2, "label": None},
    }
    # As config/species.yaml: the k-mer spectrum into the latent, decorrelation for the other blocks.
    config["models"]["tiny"] |= {"composition_k": 3, "adversarial_objective": "decorrelation"}
    config["orthologs"] = {
        "enabled": True,
        "table": "results/demo_data/truth/orthologs.tsv",
        "species_tree": "results/demo_data/species_tree.nwk",
        "align": "none",
        "max_families": 3,
    }
    # As config/species.yaml: four jobs writing groups of chromosomes; the genomes split on their shared
    # coordinates (decided once, by the planning job).
    config["extract"]["shards"] = 4
    config["extract"]["split"] = {"shared_coordinates": True, "bin_size": 2000}
    done = run_snakemake(tmp_path, config)
    assert done.returncode == 0, done.stderr[-3000:]
    windows = tmp_path / "results" / "windows" / "windows.h5"
    labels = read_labels(windows)
    assert set(labels["species"]) == set(species)
    # A locus windowed in several species has one split in all of them.
    loci = labels.groupby(["chrom", "start"])["split"]
    assert (loci.size() > 1).any() and (loci.nunique() == 1).all()
    logs = tmp_path / "results" / "logs"
    assert (logs / "extract_plan.log").exists() and len(list(logs.glob("extract_shard_*.log"))) == 4
    assert not list((tmp_path / "results" / "windows" / "shards").glob("shard_*.h5"))  # temp(): gone once gathered
    # The same windows file as one job writes (seqae extract with the rule's configuration).
    (cfg,) = (tmp_path / "results" / "config").glob("extract.*.json")
    single = tmp_path / "single" / "windows.h5"
    monkeypatch.chdir(tmp_path)
    assert cli_main(["--quiet", "extract", "--config", str(cfg), "--out", str(single)]) == 0
    sharded_contents, single_contents = windows_file_contents(windows), windows_file_contents(single)
    assert sharded_contents[1] == single_contents[1] and sharded_contents[2] == single_contents[2]
    assert sorted(sharded_contents[0]) == sorted(single_contents[0])
    for name, values in single_contents[0].items():
        np.testing.assert_array_equal(values, sharded_contents[0][name], err_msg=name)
    metrics = yaml.safe_load((tmp_path / "results" / "models" / "tiny" / "evaluate" / "metrics.json").read_text())
    assert metrics["probes"]["blocks"]["species"]["label"] == "species"
    assert {"species", "chrom"} <= set(metrics["probes"]["labels"])
    assert (tmp_path / "results" / "demo_data" / "species_tree.nwk").stat().st_size > 0
    assert not (tmp_path / "results" / "trees").exists()
    orthologs = tmp_path / "results" / "orthologs"
    families = pd.read_csv(orthologs / "families" / "families.tsv", sep="\t")
    assert len(families) == 3 and set(families["n_species"]) == {4}
    table = pd.read_csv(orthologs / "trees.tsv", sep="\t")
    assert sorted(table["family"]) == sorted(families["family"])
    assert table["n_taxa"].eq(4).all() and table["nrf_latent"].between(0, 1).all()
    for family in families["family"]:
        assert (orthologs / "trees" / family / f"{family}.png").stat().st_size > 0
    summary = json.loads((orthologs / "trees_summary.json").read_text())
    assert summary["n_with_reference"] == 3
    assert (orthologs / "trees_nrf.png").stat().st_size > 0
    report = run_snakemake(tmp_path, config, "--report", "report.html", cores=None)
    assert report.returncode == 0, report.stderr[-3000:]
    assert "Orthologous windows" in (tmp_path / "report.html").read_text(errors="replace")
