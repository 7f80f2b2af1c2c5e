# Data stage: the embedded demo data (optional) and the windows file.


if config["simulate"]["enabled"]:

    rule simulate_demo:
        """Write the demo genome, genes, blacklist, peaks, tracks and truth per TF, and the homologous families with their true trees."""
        output:
            fasta=f"{DEMO_DIR}/genome.fa",
            fai=f"{DEMO_DIR}/genome.fa.fai",
            genes=f"{DEMO_DIR}/genes.gtf",
            blacklist=f"{DEMO_DIR}/blacklist.bed",
            peaks=expand("{dir}/peaks/{tf}.narrowPeak", dir=DEMO_DIR, tf=DEMO_TFS),
            tracks=expand("{dir}/tracks/{tf}.bw", dir=DEMO_DIR, tf=DEMO_TFS),
            truth=expand(
                "{dir}/truth/{table}.tsv", dir=DEMO_DIR, table=DEMO_TRUTH_TABLES
            ),
            families=expand(
                "{dir}/families/{family}.{ext}",
                dir=DEMO_DIR,
                family=DEMO_FAMILIES,
                ext=["fa", "nwk"],
            ),
            species=demo_species_files(),
        log:
            f"{LOGS}/simulate_demo.log",
        conda:
            "../../envs/data.yaml"
        threads: 1
        resources:
            mem_mb=lambda wildcards, attempt: 2000 * attempt,
            runtime=15,
        params:
            seqae=SEQAE,
            cfg=cli_config("simulate"),
            outdir=lambda wildcards, output: os.path.dirname(output.fasta),
        shell:
            "{params.seqae} simulate --config {params.cfg:q}"
            " --outdir {params.outdir:q} > {log:q} 2>&1"


if config["extract"]["shards"] == 1:

    rule extract_windows:
        """Extract summit-centred windows with sequence, tracks and labels into HDF5."""
        input:
            genome_files(),
        output:
            h5=f"{WINDOWS_DIR}/windows.h5",
            bed=f"{WINDOWS_DIR}/windows.bed",
            tsv=f"{WINDOWS_DIR}/windows.tsv",
            summary=f"{WINDOWS_DIR}/extract_report.json",
            sizes=f"{WINDOWS_DIR}/chrom.sizes",
        log:
            f"{LOGS}/extract_windows.log",
        conda:
            "../../envs/data.yaml"
        # One thread reads the next chunk while the others compress the last one.
        threads: 4
        resources:
            mem_mb=lambda wildcards, attempt: 4000 * attempt,
            runtime=60,
        params:
            seqae=SEQAE,
            cfg=cli_config("extract"),
        shell:
            "{params.seqae} extract --config {params.cfg:q}"
            " --out {output.h5:q} --threads {threads} > {log:q} 2>&1"

else:
    # Sharded (extract.shards > 1): plan once, write groups of chromosomes as
    # jobs a cluster runs at once, gather them into the same windows file.

    rule extract_plan:
        """Plan the windows (background, labels, splits) of every genome and the shards that write them."""
        input:
            genome_files(),
        output:
            plan=f"{WINDOWS_DIR}/shards/plan.json",
            labels=f"{WINDOWS_DIR}/shards/labels.parquet",
        log:
            f"{LOGS}/extract_plan.log",
        conda:
            "../../envs/data.yaml"
        threads: 1
        resources:
            mem_mb=lambda wildcards, attempt: 4000 * attempt,
            runtime=60,
        params:
            seqae=SEQAE,
            cfg=cli_config("extract"),
            out=f"{WINDOWS_DIR}/windows.h5",
            shards=config["extract"]["shards"],
        shell:
            "{params.seqae} extract-plan --config {params.cfg:q}"
            " --out {params.out:q} --shards {params.shards} > {log:q} 2>&1"

    rule extract_shard:
        """Write the sequence and tracks of one shard's windows (a group of chromosomes)."""
        input:
            genome_files(),
            plan=f"{WINDOWS_DIR}/shards/plan.json",
            labels=f"{WINDOWS_DIR}/shards/labels.parquet",
        output:
            temp(f"{WINDOWS_DIR}/shards/shard_{{shard}}.h5"),
        log:
            f"{LOGS}/extract_shard_{{shard}}.log",
        wildcard_constraints:
            shard=r"\d+",
        conda:
            "../../envs/data.yaml"
        # One thread reads the next chunk while the others compress the last one.
        threads: 4
        resources:
            mem_mb=lambda wildcards, attempt: 4000 * attempt,
            runtime=60,
        params:
            seqae=SEQAE,
            cfg=cli_config("extract"),
            out=f"{WINDOWS_DIR}/windows.h5",
            shard=lambda wildcards: int(wildcards.shard),
        shell:
            "{params.seqae} extract-shard --config {params.cfg:q} --out {params.out:q}"
            " --shard {params.shard} --threads {threads} > {log:q} 2>&1"

    rule extract_windows:
        """Gather the shards into the windows file (their compressed chunks copied as they are), with its labels."""
        input:
            plan=f"{WINDOWS_DIR}/shards/plan.json",
            labels=f"{WINDOWS_DIR}/shards/labels.parquet",
            shards=expand(
                "{dir}/shards/shard_{shard:03d}.h5",
                dir=WINDOWS_DIR,
                shard=range(config["extract"]["shards"]),
            ),
        output:
            h5=f"{WINDOWS_DIR}/windows.h5",
            bed=f"{WINDOWS_DIR}/windows.bed",
            tsv=f"{WINDOWS_DIR}/windows.tsv",
            summary=f"{WINDOWS_DIR}/extract_report.json",
            sizes=f"{WINDOWS_DIR}/chrom.sizes",
        log:
            f"{LOGS}/extract_windows.log",
        conda:
            "../../envs/data.yaml"
        threads: 1
        resources:
            mem_mb=lambda wildcards, attempt: 2000 * attempt,
            runtime=60,
        params:
            seqae=SEQAE,
            cfg=cli_config("extract"),
        shell:
            "{params.seqae} extract-gather --config {params.cfg:q}"
            " --out {output.h5:q} > {log:q} 2>&1"


rule plot_extract_qc:
    """Draw the extraction QC figure: GC matching, windows per chromosome, track profiles."""
    input:
        h5=f"{WINDOWS_DIR}/windows.h5",
    output:
        png=report(
            f"{WINDOWS_DIR}/extract_qc.png",
            caption="../report/extract_qc.rst",
            category="Extraction",
        ),
    log:
        f"{LOGS}/plot_extract_qc.log",
    conda:
        "../../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 2000 * attempt,
        runtime=10,
    params:
        seqae=SEQAE,
    shell:
        "{params.seqae} plot-extract --windows {input.h5:q} --out {output.png:q} > {log:q} 2>&1"
