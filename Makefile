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
# sam build's output; `make build size BUILD_DIR=/tmp/x` builds and measures elsewhere.
BUILD_DIR ?= .aws-sam/build

.PHONY: openapi help venv run test test-integration deploy bench soak lint lint-template typecheck validate lint-compose build size unit events clean

help:
	@echo "make run           start the whole stack on http://127.0.0.1:$(PORT) (LRNSTAK_RESET=1 starts empty)"
	@echo "make test          lint, type checks, template checks, sam build and every test"
	@echo "make test-integration  the public API over HTTP only: the embedded stack, or LRNSTAK_API_URL=<any endpoint>"
	@echo "make build         sam build (no container) into .aws-sam/build: no tests or caches, bytecode precompiled"
	@echo "make size          each built function's unzipped size with its layers; fails above 230 MB (Lambda: 250)"
	@echo "make deploy        sam build + sam deploy with samconfig.toml's environment ENV (default: default)"
	@echo "make bench         lrnstak against MLflow's scoring server and scikit-learn's floor: one table (benchmarks/README.md)"
	@echo "make soak          3 minutes of mixed traffic on the local stack: 5xx count, memory before and after"
	@echo "make validate      cfn-lint and sam validate --lint on template.yaml"
	@echo "make lint-template checkov on template.yaml (reviewed skips with reasons in .checkov.yaml)"
	@echo "make lint-compose  docker-compose.yml against the compose schema, shellcheck of the scripts"
	@echo "make events        regenerate the API Gateway event samples in tests/events"
	@echo "make screenshot    docs/page.png: the registry page (GET /) with a few trained models, in headless Chromium"
	@echo "make openapi       rewrite docs/openapi.json from the four apps (make test fails when it is stale)"

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
	$(TOOLS_ENV) $(BIN)/sam build --cached --parallel --template-file template.yaml --build-dir $(BUILD_DIR)
	@# Bytecode and caches that running the built functions (tests, sam local) may have left are dropped,
	@# then every module is compiled as the layers' Makefiles do (unchecked hashes: Lambda uses them as they
	@# are), so what is deployed never depends on what ran in the build folder.
	find $(BUILD_DIR) -depth -type d \( -name __pycache__ -o -name .pytest_cache -o -name .mypy_cache \) -exec rm -rf {} +
	find $(BUILD_DIR) -type f -name '*.py[co]' -delete
	$(PY) -m compileall -q -j 0 --invalidation-mode unchecked-hash $(BUILD_DIR)

size: $(STAMP)
	$(PY) scripts/lambda_size.py --build-dir $(BUILD_DIR)

# checkov lives in its own venv: its pins conflict with the project's. requirements/checkov.txt is exact.
CHECKOV := build/tools/checkov/bin/checkov
$(CHECKOV): requirements/checkov.txt
	@py=$$(scripts/find-python312) || exit 1; rm -rf build/tools/checkov && "$$py" -m venv build/tools/checkov
	build/tools/checkov/bin/pip install --quiet -r requirements/checkov.txt
	@touch $(CHECKOV)

lint-template: $(CHECKOV)
	$(CHECKOV) --config-file .checkov.yaml -f template.yaml

# Offline: the compose-spec schema is vendored in scripts/vendor/; shellcheck comes with the dev extras.
lint-compose: $(STAMP)
	$(PY) scripts/check_compose.py docker-compose.yml
	$(BIN)/shellcheck localstack/*.sh scripts/find-python312 .ci/run

# What the Lambda python3.12 runtime provides besides the layers (boto3), for the built-artifact tests.
$(LAMBDA_RUNTIME_DIR)/.installed: requirements/lock.txt
	rm -rf $(LAMBDA_RUNTIME_DIR)
	$(PY) -m pip install --quiet --no-deps --target $(LAMBDA_RUNTIME_DIR) \
	  $$(grep -E '^(boto3|botocore|s3transfer|jmespath|python-dateutil|six|urllib3)==' requirements/lock.txt)
	@touch $@

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

# The whole suite, the public-API suite included, against the embedded stack whatever the shell exports.
test: lint typecheck validate lint-template lint-compose build size $(LAMBDA_RUNTIME_DIR)/.installed
	env -u LRNSTAK_API_URL $(BIN)/pytest -q

# The public API over HTTP only. Without LRNSTAK_API_URL it starts the embedded stack itself; with it
# (make test-integration LRNSTAK_API_URL=https://<id>.execute-api.<region>.amazonaws.com/prod, plus
# LRNSTAK_API_KEY=... when the API wants a key) it drives that endpoint: LocalStack, moto or a deployed stack.
test-integration: $(STAMP)
	$(BIN)/pytest -q tests/integration/public_api

# AWS credentials from your shell (AWS_PROFILE, ...); the first time, `sam deploy --guided` asks for each
# setting and can save them in samconfig.toml. The stack's outputs give the API URL and the bucket.
ENV ?= default
deploy: build size
	$(TOOLS_ENV) $(BIN)/sam deploy --config-env $(ENV) --template-file $(BUILD_DIR)/template.yaml
	$(TOOLS_ENV) $(BIN)/sam list stack-outputs --config-env $(ENV) --output table

# Figures, never asserted: see benchmarks/README.md for what each one means. MLflow runs in its own venv
# (build/tools/mlflow, from requirements/mlflow-bench.txt), created on the first run. The predict function's
# cold start runs on the layers as `make build` makes them, with the runtime's boto3, as in Lambda.
bench: $(STAMP) build $(LAMBDA_RUNTIME_DIR)/.installed
	$(PY) benchmarks/bench.py

# A few minutes of mixed traffic from several processes on the local stack: 5xx count and memory (RSS).
soak: $(STAMP)
	$(PY) benchmarks/soak.py

# The README's picture of the registry page: a throwaway local stack, bundled datasets, /usr/bin/chromium.
.PHONY: screenshot
screenshot: $(STAMP)
	$(PY) scripts/screenshot.py --output docs/page.png

events: $(STAMP)
	$(TOOLS_ENV) $(BIN)/sam local generate-event apigateway aws-proxy --stage prod > tests/events/apigateway_rest_v1.json
	$(TOOLS_ENV) $(BIN)/sam local generate-event apigateway http-api-proxy > tests/events/apigateway_http_v2.json

clean:
	rm -rf .aws-sam build .pytest_cache .mypy_cache .ruff_cache

# docs/openapi.json: the four apps' operations, exactly as template.yaml routes them (checked in make test).
openapi: $(STAMP)
	$(PY) -m lrnstak.local.openapi
