# Tree stage: one job per family of config["trees"]["families"] (a cluster
# runs them in parallel), then one table across families.


rule tree_family:
    """Fit the tree autoencoder to one aligned family; write its latent tree (Newick, NHX), figures and summary row."""
    input:
        unpack(family_inputs),
    output:
        **family_outputs(),
    log:
        f"{LOGS}/trees_{{family}}.log",
    conda:
        "../../envs/trees.yaml"
    threads: 1
    resources:
        gpu=tree_gpus,
        mem_mb=lambda wildcards, attempt: 2000 * attempt,
        runtime=lambda wildcards, attempt: 30 * attempt,
    params:
        seqae=SEQAE,
        cfg=cli_config("trees"),
        optional=family_cli_options,
        outdir=lambda wildcards, output: os.path.dirname(output.tsv),
    shell:
        "{params.seqae} trees --config-json {params.cfg:q} --family {wildcards.family:q}"
        " --fasta {input.fasta:q}{params.optional} --outdir {params.outdir:q}"
        " > {log:q} 2>&1"


rule gather_trees:
    """Gather the families' summary rows into one table (trees.tsv)."""
    input:
        expand("{dir}/{family}/{family}.tsv", dir=TREES_DIR, family=FAMILIES),
    output:
        f"{TREES_DIR}/trees.tsv",
    log:
        f"{LOGS}/gather_trees.log",
    conda:
        "../../envs/trees.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        seqae=SEQAE,
    shell:
        "{params.seqae} trees-gather --rows {input:q} --out {output:q} > {log:q} 2>&1"
