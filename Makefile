# The two commands of the README's quick start (tests/test_docs.py checks that they are these):
#   make study    set up (Python environment, torch, ganablate, the data) and run the default study
#   make test     set up and run the tests (TESTS="--realdata --slurm" switches the other tiers on)
#   make lint     ruff check, ruff format --check, snakefmt --check (CI runs it before the tests)
# Both create .venv when it is missing and reuse it afterwards; CORES, CONFIG, PYTHON and TESTS can be set.

PYTHON ?= python3
VENV ?= .venv
CORES ?= 2
CONFIG ?= config/config.yaml
TESTS ?=
TORCH ?= torch==2.14.1 torchvision==0.29.1
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)   # the workflow's jobs call `ganablate` from the environment

.PHONY: study test lint setup data

study: setup data
	$(BIN)/python -m snakemake --cores $(CORES) --config study_file=$(CONFIG)   # read with yaml.safe_load

test: setup
	$(BIN)/python -m pytest $(TESTS)

# The house's form: ruff (lint and format) for the Python, snakefmt for the workflow; snakemake --lint runs in the
# tests (tests/test_workflow.py), where only the conda lint, explained in workflow/Snakefile, may remain.
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check workflow/

setup: $(VENV)/.installed

# --system-site-packages: a torch the machine already has satisfies the pin without a second 6 GB copy.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "ganablate needs Python >= 3.11 (PYTHON=$(PYTHON))"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv --system-site-packages $(VENV)
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

# Fashion-MNIST: Debian's package where apt and root are at hand; otherwise the study itself finds dataset.root or
# downloads into its cache (dataset.download: auto), and says in its log which source it used.
data:
	@if [ ! -d /usr/share/datasets/fashion-mnist ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		{ apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null; } \
			|| echo "dataset-fashion-mnist not installed: the study will download Fashion-MNIST"; \
	fi
