# seqae set-up and entry points. `make demo` runs the pipeline on the embedded
# demo data, `make test` the test suite; both create the virtual environment
# first. Variables can be set on the command line, e.g. `make demo CORES=8`.

PYTHON ?= python3
VENV ?= .venv
CORES ?= 2
# torch is installed first and pinned, so that `pip install -e .` finds it
# present and pulls no other build. The default is the CPU build of this
# project's machines. GPU users pick a CUDA build, e.g.
#   make venv TORCH_VERSION=2.13.0 PIP_TORCH_ARGS="--index-url https://download.pytorch.org/whl/cu128"
# (the index for your CUDA version: https://pytorch.org/get-started/locally/).
# To change torch in an existing venv, add -B (or delete $(VENV)/.installed).
TORCH_VERSION ?= 2.13.0
PIP_TORCH_ARGS ?=
# Every other package is installed at the exact version in constraints.txt (written
# by `make lock`), the set the README's figures were measured with, so that a venv
# built later or elsewhere computes the same numbers. Where those versions have no
# wheel (another platform or Python), take the newest releases within pyproject's
# ranges instead: make venv CONSTRAINTS=
CONSTRAINTS ?= constraints.txt
PIP_CONSTRAINTS := $(if $(CONSTRAINTS),--constraint $(CONSTRAINTS))

BIN := $(VENV)/bin
# The venv's bin first on PATH, so that Snakemake's jobs run its python too.
RUN := PATH="$(abspath $(BIN)):$$PATH" VIRTUAL_ENV="$(abspath $(VENV))"

.PHONY: help venv lock demo demo-full report test lint clean

help:
	@echo "make demo   the quick demo: one model on the embedded demo data, a few minutes (results/)"
	@echo "make demo-full  all four models, then the four-species demo (results/, results/species/)"
	@echo "make report gather the figures written so far into report.html (and report_species.html), listing what is missing"
	@echo "make test   run the test suite"
	@echo "make lint   snakemake --lint, snakefmt --check, ruff check and ruff format --check"
	@echo "make venv   create $(VENV) with seqae, Snakemake and the test tools (versions from constraints.txt)"
	@echo "make lock   rewrite constraints.txt from a fresh venv of the newest releases pyproject allows"
	@echo "make clean  remove results/, .snakemake/ and the reports"

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install $(PIP_CONSTRAINTS) "torch==$(TORCH_VERSION)" $(PIP_TORCH_ARGS)
	$(BIN)/python -m pip install $(PIP_CONSTRAINTS) -e '.[workflow,dev]'
	touch $@

# torch and its CUDA wheels stay out of the lock: TORCH_VERSION and the index pick them
# (a CPU build's version, 2.13.0+cpu, would not match a CUDA build's). Written to a
# temporary file first, so that a failed install leaves constraints.txt as it was.
LOCK_VENV := $(VENV)-lock
lock:
	rm -rf $(LOCK_VENV)
	$(MAKE) venv VENV=$(LOCK_VENV) CONSTRAINTS=
	{ echo "# Exact versions for make venv, written by make lock on $$(date -u +%F) with $$($(LOCK_VENV)/bin/python -V)."; \
	  $(LOCK_VENV)/bin/python -m pip freeze --exclude-editable \
	  | grep -v -i -E '^(torch|triton|nvidia-[a-z0-9_-]+)=='; } > constraints.txt.tmp
	mv constraints.txt.tmp constraints.txt
	rm -rf $(LOCK_VENV)

# The single-genome demo into results/, then the four-species demo
# (config/species.yaml: species blocks, trees of orthologous windows) into
# results/species/.
SPECIES_DEMO := --configfile config/config.yaml config/species.yaml

# make demo: the quick demo (config/quick.yaml: one model, one epoch at batch 8,
# two tree families, then report.html). make demo-full: all four models, then the species demo.
QUICK_DEMO := --configfile config/config.yaml config/quick.yaml

# The config files of the last demo, for make report: after make demo it lists what
# the quick demo plans as missing, not the models only demo-full trains.
LAST_DEMO := results/.demo_configs

demo: venv
	mkdir -p results && echo "config/config.yaml config/quick.yaml" > $(LAST_DEMO)
	$(RUN) snakemake --cores $(CORES) --workflow-profile workflow/profiles/local $(QUICK_DEMO)
	$(REPORT) --config config/config.yaml config/quick.yaml --out report.html

demo-full: venv
	mkdir -p results && echo "config/config.yaml" > $(LAST_DEMO)
	$(RUN) snakemake --cores $(CORES) --workflow-profile workflow/profiles/local
	$(RUN) snakemake --cores $(CORES) --workflow-profile workflow/profiles/local $(SPECIES_DEMO)

# seqae report, not snakemake --report: it builds from whatever outputs exist
# (after an interrupted or partial run too) and lists what is missing.
REPORT := $(RUN) seqae report --rerun-hint "run make demo again"

report: venv
	$(REPORT) --config $$(cat $(LAST_DEMO) 2>/dev/null || echo config/config.yaml) --out report.html
	@if [ -d results/species ]; then \
	  $(REPORT) --config config/config.yaml config/species.yaml --out report_species.html --title "seqae report: four species"; \
	fi

test: venv
	$(RUN) python -m pytest -q

lint: venv
	$(RUN) snakemake --lint
	$(RUN) snakefmt --check .
	$(RUN) ruff check .
	$(RUN) ruff format --check .

clean:
	rm -rf results/ .snakemake/ report.html report_species.html
