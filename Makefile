# The verbs a newcomer types. `make run` and `make test` set up everything they need.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV      := .venv
BIN       := $(VENV)/bin
PY        := $(BIN)/python
STAMP     := $(VENV)/.installed
PORT      ?= 5000
# sam build picks the first python3.12 on PATH: make it the venv's.
TOOLS_ENV := PATH="$(CURDIR)/$(BIN):$$PATH" SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=us-east-1
LAMBDA_RUNTIME_DIR := build/lambda-runtime

.PHONY: help venv run test lint typecheck validate build unit events clean

help:
	@echo "make run        start the whole stack on http://127.0.0.1:$(PORT) (LRNSTAK_RESET=1 starts empty)"
	@echo "make test       lint, type checks, template checks, sam build and every test"
	@echo "make build      sam build (no container) into .aws-sam/build"
	@echo "make validate   cfn-lint and sam validate --lint on template.yaml"
	@echo "make events     regenerate the API Gateway event samples in tests/events"

$(STAMP): pyproject.toml requirements/lock.txt
	@py=$$(scripts/find-python312) || exit 1; \
	  if [ ! -x "$(PY)" ] || ! "$(PY)" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))'; then \
	    rm -rf $(VENV); echo "creating $(VENV) with $$py"; "$$py" -m venv $(VENV) || exit 1; \
	  fi
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c requirements/lock.txt -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	PORT=$(PORT) exec $(PY) -m lrnstak.local

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Each function is its own top-level `app` module, so they are checked one at a time.
typecheck: $(STAMP)
	$(BIN)/mypy
	@for fn in functions/*/app.py; do echo "mypy $$fn"; $(BIN)/mypy $$fn || exit 1; done

validate: $(STAMP)
	$(TOOLS_ENV) $(BIN)/cfn-lint template.yaml
	$(TOOLS_ENV) $(BIN)/sam validate --lint --template-file template.yaml

build: $(STAMP)
	$(TOOLS_ENV) $(BIN)/sam build --cached --parallel --template-file template.yaml

# What the Lambda python3.12 runtime provides besides the layers (boto3), for the built-artifact tests.
$(LAMBDA_RUNTIME_DIR)/.installed: requirements/lock.txt
	rm -rf $(LAMBDA_RUNTIME_DIR)
	$(PY) -m pip install --quiet --no-deps --target $(LAMBDA_RUNTIME_DIR) \
	  $$(grep -E '^(boto3|botocore|s3transfer|jmespath|python-dateutil|six|urllib3)==' requirements/lock.txt)
	@touch $@

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

test: lint typecheck validate build $(LAMBDA_RUNTIME_DIR)/.installed
	$(BIN)/pytest -q

events: $(STAMP)
	$(TOOLS_ENV) $(BIN)/sam local generate-event apigateway aws-proxy --stage prod > tests/events/apigateway_rest_v1.json
	$(TOOLS_ENV) $(BIN)/sam local generate-event apigateway http-api-proxy > tests/events/apigateway_http_v2.json

clean:
	rm -rf .aws-sam build .pytest_cache .mypy_cache .ruff_cache
