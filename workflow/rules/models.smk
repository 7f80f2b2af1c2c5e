# Model stage: train every model of config["models"], embed the windows with
# it, evaluate it on the test split against the baselines, and compare models.

#: The outputs of embedding one model, whether one job or shards write them.
EMBED_OUTPUTS = {
    "parquet": f"{MODELS_DIR}/{{model}}/embed/embeddings.parquet",
    "h5ad": f"{MODELS_DIR}/{{model}}/embed/embeddings.h5ad",
    "anomaly": f"{MODELS_DIR}/{{model}}/embed/anomaly.bw",
    "recon": expand(
        "{dir}/{{model}}/embed/recon_{track}.bw", dir=MODELS_DIR, track=TRACKS
    ),
    "summary": f"{MODELS_DIR}/{{model}}/embed/embed_summary.json",
}


rule train_model:
    """Train one model on the windows (GPU when present); resumes from its checkpoint after a kill."""
    input:
        h5=f"{WINDOWS_DIR}/windows.h5",
    output:
        best=f"{MODELS_DIR}/{{model}}/best.pt",
        metrics=f"{MODELS_DIR}/{{model}}/metrics.csv",
        info=f"{MODELS_DIR}/{{model}}/model.json",
        curves=report(
            f"{MODELS_DIR}/{{model}}/loss_curves.png",
            caption="../report/loss_curves.rst",
            category="Training",
            subcategory="{model}",
        ),
    log:
        f"{LOGS}/train_{{model}}.log",
    conda:
        "../../envs/models.yaml"
    # Scaled down to --cores when fewer (Snakemake does that for every job).
    threads: 4
    resources:
        # More than one GPU (training.gpus): one process per GPU, data-parallel.
        gpu=train_job_gpus,
        mem_mb=train_mem_mb,
        runtime=lambda wildcards, attempt: 240 * attempt,
    params:
        seqae=train_launcher,
        cfg=lambda wildcards: model_cli_config(wildcards.model),
        outdir=lambda wildcards, output: os.path.dirname(output.best),
    shell:
        # checkpoint.pt is not an output: Snakemake would delete it before a
        # retry, and --resume continues from it (or starts afresh without one).
        # With several GPUs params.seqae is torchrun starting `-m seqae` per GPU;
        # training.batch_size stays the global batch. Its lines (one per epoch
        # with the losses, windows/s and ETA, and one a minute within a long
        # epoch) go to the log and to the terminal; Snakemake's shell has
        # pipefail, so a failed training still fails the job. tee -i outlives
        # Ctrl-C, which reaches the whole job: seqae's last line ("interrupted")
        # then reaches the log too.
        "{params.seqae} train --config {params.cfg:q} --model {wildcards.model:q}"
        " --windows {input.h5:q} --outdir {params.outdir:q} --resume 2>&1 | tee -i {log:q}"


if config["embed"]["shards"] == 1:

    rule embed_model:
        """Embed every window: latent blocks, anomaly scores (Parquet, AnnData) and reconstructed tracks (bigWig)."""
        input:
            model=f"{MODELS_DIR}/{{model}}/best.pt",
            h5=f"{WINDOWS_DIR}/windows.h5",
            sizes=f"{WINDOWS_DIR}/chrom.sizes",
        output:
            **EMBED_OUTPUTS,
        log:
            f"{LOGS}/embed_{{model}}.log",
        conda:
            "../../envs/models.yaml"
        # Scaled down to --cores when fewer (Snakemake does that for every job); the model's CPU threads.
        threads: 4
        resources:
            gpu=train_gpus,
            mem_mb=lambda wildcards, attempt: 8000 * attempt,
            runtime=lambda wildcards, attempt: 60 * attempt,
        params:
            seqae=SEQAE,
            outdir=lambda wildcards, output: os.path.dirname(output.parquet),
            precision=config["embed"]["precision"],
        shell:
            "{params.seqae} embed --model {input.model:q} --windows {input.h5:q}"
            " --outdir {params.outdir:q} --threads {threads} --precision {params.precision}"
            " --chrom-sizes {input.sizes:q} > {log:q} 2>&1"

else:
    # Sharded (embed.shards > 1): jobs embedding ranges of the windows at once,
    # then one job writing the outputs from them (the same files one job writes).

    rule embed_shard:
        """Embed one shard of the windows (a range in genome order) with one model."""
        input:
            model=f"{MODELS_DIR}/{{model}}/best.pt",
            h5=f"{WINDOWS_DIR}/windows.h5",
            sizes=f"{WINDOWS_DIR}/chrom.sizes",
        output:
            temp(f"{MODELS_DIR}/{{model}}/embed/shards/embed_shard_{{shard}}.h5"),
        log:
            f"{LOGS}/embed_{{model}}_shard_{{shard}}.log",
        wildcard_constraints:
            shard=r"\d+",
        conda:
            "../../envs/models.yaml"
        threads: 4
        resources:
            gpu=train_gpus,
            mem_mb=lambda wildcards, attempt: 8000 * attempt,
            runtime=lambda wildcards, attempt: 60 * attempt,
        params:
            seqae=SEQAE,
            outdir=f"{MODELS_DIR}/{{model}}/embed",
            shard=lambda wildcards: int(wildcards.shard),
            shards=config["embed"]["shards"],
            precision=config["embed"]["precision"],
        shell:
            "{params.seqae} embed --model {input.model:q} --windows {input.h5:q} --outdir {params.outdir:q}"
            " --shard {params.shard} --shards {params.shards} --threads {threads}"
            " --precision {params.precision} --chrom-sizes {input.sizes:q} > {log:q} 2>&1"

    rule embed_model:
        """Write one model's embedding outputs (Parquet, AnnData, bigWigs) from its shards."""
        input:
            model=f"{MODELS_DIR}/{{model}}/best.pt",
            h5=f"{WINDOWS_DIR}/windows.h5",
            sizes=f"{WINDOWS_DIR}/chrom.sizes",
            shards=expand(
                "{dir}/{{model}}/embed/shards/embed_shard_{shard:03d}.h5",
                dir=MODELS_DIR,
                shard=range(config["embed"]["shards"]),
            ),
        output:
            **EMBED_OUTPUTS,
        log:
            f"{LOGS}/embed_{{model}}.log",
        conda:
            "../../envs/models.yaml"
        threads: 1
        resources:
            mem_mb=lambda wildcards, attempt: 8000 * attempt,
            runtime=lambda wildcards, attempt: 60 * attempt,
        params:
            seqae=SEQAE,
            outdir=lambda wildcards, output: os.path.dirname(output.parquet),
            shards=config["embed"]["shards"],
        shell:
            "{params.seqae} embed-gather --model {input.model:q} --windows {input.h5:q}"
            " --outdir {params.outdir:q} --shards {params.shards} --chrom-sizes {input.sizes:q} > {log:q} 2>&1"


rule evaluate_model:
    """Evaluate one model on the test split against PCA and k-mer baselines; write metrics and figures."""
    input:
        model=f"{MODELS_DIR}/{{model}}/best.pt",
        h5=f"{WINDOWS_DIR}/windows.h5",
        # An input, so that a missing file stops the workflow before any job, not evaluation at its end.
        truth_sites=config.get("evaluate", {}).get("truth_sites") or [],
    output:
        **evaluate_outputs(),
    log:
        f"{LOGS}/evaluate_{{model}}.log",
    conda:
        "../../envs/models.yaml"
    # Scaled down to --cores when fewer (Snakemake does that for every job).
    threads: 4
    resources:
        gpu=train_gpus,
        mem_mb=lambda wildcards, attempt: 8000 * attempt,
        runtime=lambda wildcards, attempt: 60 * attempt,
    params:
        seqae=SEQAE,
        cfg=cli_config("evaluate"),
        outdir=lambda wildcards, output: os.path.dirname(output.metrics),
    shell:
        "{params.seqae} evaluate --config {params.cfg:q} --model {input.model:q}"
        " --windows {input.h5:q} --outdir {params.outdir:q} > {log:q} 2>&1"


rule compare_models:
    """Tabulate every model's metrics side by side (TSV, Markdown, grouped bar figure)."""
    input:
        expand("{dir}/{model}/evaluate/metrics.json", dir=MODELS_DIR, model=MODELS),
    output:
        tsv=f"{MODELS_DIR}/comparison.tsv",
        md=f"{MODELS_DIR}/comparison.md",
        png=report(
            f"{MODELS_DIR}/comparison.png",
            caption="../report/comparison.rst",
            category="Evaluation",
        ),
    log:
        f"{LOGS}/compare_models.log",
    conda:
        "../../envs/models.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        seqae=SEQAE,
    shell:
        "{params.seqae} compare --metrics {input:q} --out {output.tsv:q}"
        " --png {output.png:q} > {log:q} 2>&1"
