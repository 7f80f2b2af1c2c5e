#!/usr/bin/env bash
# Run by Snakemake (--sdm conda) inside the new env of envs/models.yaml, right
# after creating it: installs seqae editable from the workflow's checkout, so
# the rules' `python -m seqae` runs the checkout's code. SEQAE_SOURCE is set by
# workflow/rules/common.smk. No dependency is pulled: the env file lists them.
set -euo pipefail
: "${SEQAE_SOURCE:?is set by workflow/rules/common.smk: create this env through snakemake --sdm conda}"
python -m pip install --quiet --no-deps --no-build-isolation --editable "$SEQAE_SOURCE"
