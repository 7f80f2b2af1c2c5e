# seqae: summit-centred windows of TF ChIP-seq peaks -> sequence autoencoders.
# Run `snakemake --cores N` here (or `make demo`); config/README.md describes
# every key of config/config.yaml.

import os

from snakemake.utils import min_version

min_version("9.0")


# The demo config, found from the Snakefile: `--directory OTHER` (or a run from
# elsewhere with --snakefile) still merges the overlays over it.
configfile: os.path.join(workflow.basedir, "config", "config.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"


# The first rule is the default target: keep it above the stages' includes.
rule all:
    """Every final output of the stages that exist so far."""
    input:
        all_targets(),


include: "workflow/rules/data.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/trees.smk"
