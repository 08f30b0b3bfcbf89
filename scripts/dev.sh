#!/usr/bin/env bash
# Bootstrap, then run a local NB sandbox and the gateway (prints the URL and a token).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/bootstrap.sh
exec .venv/bin/ovn-nb-gateway up "$@"
