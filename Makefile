# Everything a fresh clone needs: python3 (3.11+), pip, git, make. The venv is made and filled here.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# checkov pins boto3 1.35 (and more), so it lives in a venv of its own, installed once (about 30 s).
CHECKOV_VENV  ?= .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
CHECKOV_PIN   := checkov==3.3.30

.PHONY: test lint typecheck unit demo bench clean lambda-zip checkov try-lambda

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing into $(VENV) (log: $(VENV)/install.log)"
	@( $(BIN)/python -m pip install --disable-pip-version-check --upgrade pip \
	   && $(BIN)/python -m pip install --disable-pip-version-check -e '.[dev]' ) > $(VENV)/install.log 2>&1 \
	   || { cat $(VENV)/install.log; echo "install failed; see above"; exit 1; }
	@touch $(STAMP)

$(CHECKOV_STAMP):
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	@echo "installing $(CHECKOV_PIN) into $(CHECKOV_VENV) (log: $(CHECKOV_VENV)/install.log)"
	@$(CHECKOV_VENV)/bin/python -m pip install --disable-pip-version-check $(CHECKOV_PIN) > $(CHECKOV_VENV)/install.log 2>&1 \
	   || { cat $(CHECKOV_VENV)/install.log; echo "checkov install failed; see above"; exit 1; }
	@touch $(CHECKOV_STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

# The checkov venv is installed before pytest, once; tests/integration/test_terraform_static.py runs the scan.
# Two workers (pytest-xdist), each given whole test files (--dist loadfile: a file's tests and module fixtures stay in
# one process, in order): most of the suite's time is waits on real leases, servers and subprocesses, which overlap.
# PYTEST_WORKERS=0 runs it in one process. The 25 slowest tests are listed at the end, so a slow newcomer shows.
PYTEST_WORKERS ?= 2
test: lint typecheck $(CHECKOV_STAMP)
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadfile --durations=25

# The Lambda deployment package: build/bluum-rotator-lambda.zip, reproducible, without boto3 (the runtime has it).
lambda-zip: $(STAMP)
	$(BIN)/python scripts/build_lambda_zip.py

# The Lambda and the Terraform module on this machine: moto, the simulator, terraform apply, the four steps, the tick.
# Prints each stage as it goes (README "Try it locally"); needs terraform on PATH.
# `make try-lambda TRY_ARGS="--scheduler tick"`: the module with the tick as the scheduler.
try-lambda: $(STAMP)
	$(BIN)/python scripts/try_lambda_locally.py $(TRY_ARGS)

# Static security scan of the Terraform module; every skip is justified inline in the .tf files.
checkov: $(CHECKOV_STAMP)
	$(CHECKOV_VENV)/bin/checkov -d terraform --framework terraform --quiet --compact --skip-download

demo: $(STAMP)
	@$(BIN)/rotator demo

bench: $(STAMP)
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
