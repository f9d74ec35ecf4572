# Quick start: `make run` (the default workflow) and `make test` (the test suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= all

.PHONY: run test slurm-deps clean

$(BIN)/snakemake: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

run: $(BIN)/snakemake
	$(BIN)/snakemake --workflow-profile profiles/workstation --cores $(CORES) \
		--configfile config/config.yaml

test: $(BIN)/snakemake
	$(BIN)/ruff check workflow tests bench
	$(BIN)/ruff format --check workflow tests bench
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/snakemake --lint
	$(BIN)/pytest

# Debian packages for the real-SLURM test (tests/test_slurm.py skips without them).
slurm-deps:
	tests/slurm/install.sh

clean:
	rm -rf results logs .snakemake
