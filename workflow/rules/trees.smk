# Tree stage. Two sources of families: config["trees"]["families"] (FASTAs
# the user lists), fitted in batches, one job per batch (TREE_BATCHES:
# latent_tree.batch_size families; a cluster runs the batches in parallel);
# and, with orthologs.enabled, the orthologous windows of the genomes
# (ortholog_families writes them; how many is known only then, hence a
# checkpoint; one job per family). Then one table across families.


rule ortholog_tree:
    """Fit the latent tree of one ortholog family; write its tree (Newick, NHX), ancestral sequences, figures and summary row."""
    input:
        unpack(ortholog_family_inputs),
    output:
        **family_outputs(f"{ORTHOLOGS_DIR}/trees"),
    log:
        f"{LOGS}/ortholog_trees_{{family}}.log",
    conda:
        "../../envs/trees.yaml"
    threads: 1
    resources:
        gpu=tree_gpus,
        mem_mb=lambda wildcards, attempt: 2000 * attempt,
        runtime=lambda wildcards, attempt: 30 * attempt,
    params:
        seqae=SEQAE,
        cfg=tree_cli_config(),
        optional=family_cli_options,
        outdir=lambda wildcards, output: os.path.dirname(output.tsv),
    shell:
        "{params.seqae} trees --config {params.cfg:q} --family {wildcards.family:q}"
        " --fasta {input.fasta:q}{params.optional} --outdir {params.outdir:q}"
        " > {log:q} 2>&1"


for _batch, _members in enumerate(TREE_BATCHES):

    rule:
        """Fit the latent trees of one batch of families together (seqae trees --all): per family its tree (Newick, NHX), ancestral sequences, figures and summary row."""
        name:
            f"tree_batch_{_batch}"
        input:
            **batch_inputs(_members),
        output:
            batch_outputs(_members),
        log:
            f"{LOGS}/trees_batch_{_batch}.log",
        conda:
            "../../envs/trees.yaml"
        threads: 1
        resources:
            gpu=tree_gpus,
            mem_mb=lambda wildcards, attempt: 4000 * attempt,
            runtime=lambda wildcards, attempt: 60 * attempt,
        params:
            seqae=SEQAE,
            cfg=tree_cli_config(_members),
            outdir=lambda wildcards, output: os.path.dirname(os.path.dirname(output[0])),
        shell:
            "{params.seqae} trees --config {params.cfg:q} --all --outdir {params.outdir:q}"
            " > {log:q} 2>&1"


rule gather_trees:
    """Gather the families' summary rows into one table (trees.tsv), with the mean nRF per method (JSON, figure)."""
    input:
        expand("{dir}/{family}/{family}.tsv", dir=TREES_DIR, family=FAMILIES),
    output:
        tsv=f"{TREES_DIR}/trees.tsv",
        summary=f"{TREES_DIR}/trees_summary.json",
        png=report(
            f"{TREES_DIR}/trees_nrf.png",
            caption="../report/trees_nrf.rst",
            category="Trees",
        ),
    log:
        f"{LOGS}/gather_trees.log",
    conda:
        "../../envs/trees.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        seqae=SEQAE,
        title="Families vs their reference trees",
    shell:
        "{params.seqae} trees-gather --rows {input:q} --out {output.tsv:q}"
        " --summary {output.summary:q} --figure {output.png:q}"
        " --title {params.title:q} > {log:q} 2>&1"


checkpoint ortholog_families:
    """Group orthologous windows of the genomes into families: one FASTA per family (a window per species), the species tree pruned to it."""
    input:
        ortholog_inputs(),
    output:
        directory(f"{ORTHOLOGS_DIR}/families"),
    log:
        f"{LOGS}/ortholog_families.log",
    conda:
        "../../envs/trees.yaml"
    threads: 4
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        seqae=SEQAE,
        cfg=cli_config("extract", "orthologs"),
    shell:
        "{params.seqae} orthologs --config {params.cfg:q} --outdir {output:q}"
        " --threads {threads} > {log:q} 2>&1"


use rule gather_trees as gather_ortholog_trees with:
    input:
        ortholog_tree_rows,
    output:
        tsv=f"{ORTHOLOGS_DIR}/trees.tsv",
        summary=f"{ORTHOLOGS_DIR}/trees_summary.json",
        png=report(
            f"{ORTHOLOGS_DIR}/trees_nrf.png",
            caption="../report/ortholog_trees.rst",
            category="Orthologous windows",
        ),
    log:
        f"{LOGS}/gather_ortholog_trees.log",
    params:
        seqae=SEQAE,
        title="Orthologous windows vs the species tree",
