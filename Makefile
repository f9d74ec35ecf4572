# Quick start: `make run` (the default workflow) and `make test` (the test suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= all
# The config `make run` and `make check` use: make run CONFIG=myconfig.yaml
CONFIG ?= config/config.yaml
# Test processes (pytest-xdist; a module's tests stay in one): make test TEST_WORKERS=1
TEST_WORKERS ?= 2

.PHONY: run check test lint lock slurm-deps clean clean-resume

# The lock (requirements/lock.txt) pins every package: `make run` installs the workflow's
# share of it, `make test` also the tests' (README "Install"). A stamp per set.
LOCK := requirements/lock.txt

$(VENV)/.workflow: pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c $(LOCK) -e '.[workflow]'
	touch $@

$(VENV)/.test: pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c $(LOCK) -e '.[workflow,test]'
	touch $@ $(VENV)/.workflow

# The config is checked first (every problem as file:line: what), before any job starts.
run: check
	$(BIN)/snakemake --workflow-profile profiles/workstation --cores $(CORES) \
		--configfile $(CONFIG)

check: $(VENV)/.workflow
	$(BIN)/trainmap check $(CONFIG)

test: lint
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=15

# The checks CI runs before the tests: run them before a commit.
lint: $(VENV)/.test
	$(BIN)/ruff check workflow tests bench examples setup.py requirements
	$(BIN)/ruff format --check workflow tests bench examples setup.py requirements
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/snakemake --lint

# Resolve the lock again: keeps its versions, adds what pyproject.toml newly needs;
# `make lock UPGRADE=1` takes the newest versions the ranges allow.
lock: $(VENV)/.workflow
	$(BIN)/python requirements/compile.py $(if $(UPGRADE),--upgrade)

# Debian packages for the real-SLURM test (tests/test_slurm.py skips without them).
slurm-deps:
	tests/slurm/install.sh

clean:
	rm -rf results logs .snakemake

# Resumable training states (results/<setting>/runs/.resume-seed<seed>/) of seeds that are
# no longer in CONFIG: a job removes its own states when it completes, not these.
clean-resume: $(VENV)/.workflow
	$(BIN)/trainmap clean-resume $(CONFIG)
