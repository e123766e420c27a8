#!/usr/bin/env bash
# Creates the bucket, tables and queues of template.yaml on a running emulator (docker-compose.yml, either
# profile) from the host, and writes localstack/env.json for `sam local start-api --env-vars`.
# Re-runnable: what exists is kept. The same code as the compose init services and `make run`.
#
#   AWS_ENDPOINT_URL         the emulator as this machine reaches it (default http://localhost:4566)
#   FUNCTIONS_ENDPOINT_URL   the emulator as sam local's containers reach it, in env.json
#                            (default http://localstack:4566; the moto profile: http://moto:5000)
#   LRNSTAK_RESOURCE_PREFIX  resource names start with it (default lrnstak)
#   LRNSTAK_ENV_FILE         where to write the env file (default localstack/env.json)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-$root/.venv/bin/python}"
if [ ! -x "$python" ]; then
  echo "error: $python not found: run 'make venv' first (or set PYTHON to an interpreter with lrnstak installed)" >&2
  exit 1
fi

exec "$python" -m lrnstak.local.bootstrap \
  --endpoint-url "${AWS_ENDPOINT_URL:-http://localhost:4566}" \
  --prefix "${LRNSTAK_RESOURCE_PREFIX:-lrnstak}" \
  --template "$root/template.yaml" \
  --env-file "${LRNSTAK_ENV_FILE:-$root/localstack/env.json}" \
  --functions-endpoint-url "${FUNCTIONS_ENDPOINT_URL:-http://localstack:4566}"
