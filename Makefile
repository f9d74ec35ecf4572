# Quick start: `make run` (the default workflow) and `make test` (the test suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= all
# The config `make run` and `make check` use: make run CONFIG=myconfig.yaml
CONFIG ?= config/config.yaml
# Test processes (pytest-xdist; a module's tests stay in one): make test TEST_WORKERS=1
TEST_WORKERS ?= 2

.PHONY: run check test lint slurm-deps clean clean-resume

$(BIN)/snakemake: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

# The config is checked first (every problem as file:line: what), before any job starts.
run: check
	$(BIN)/snakemake --workflow-profile profiles/workstation --cores $(CORES) \
		--configfile $(CONFIG)

check: $(BIN)/snakemake
	$(BIN)/trainmap check $(CONFIG)

test: lint
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder

# The checks CI runs before the tests: run them before a commit.
lint: $(BIN)/snakemake
	$(BIN)/ruff check workflow tests bench examples
	$(BIN)/ruff format --check workflow tests bench examples
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/snakemake --lint

# Debian packages for the real-SLURM test (tests/test_slurm.py skips without them).
slurm-deps:
	tests/slurm/install.sh

clean:
	rm -rf results logs .snakemake

# Resumable training states (results/<setting>/runs/.resume-seed<seed>/) of seeds that are
# no longer in CONFIG: a job removes its own states when it completes, not these.
clean-resume: $(BIN)/snakemake
	$(BIN)/trainmap clean-resume $(CONFIG)
