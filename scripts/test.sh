#!/usr/bin/env bash
# Lint, type-check and test, the way CI does. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/bootstrap.sh

echo "==> ruff"
lint=()
for d in gateway tests benchmarks; do
  if [[ -d $d ]]; then lint+=("$d"); fi
done
.venv/bin/ruff check "${lint[@]}"

echo "==> mypy"
.venv/bin/mypy gateway

echo "==> pytest"
.venv/bin/python -m pytest -q -n 2 --durations=15 tests "$@"
if (($# == 0)); then bash scripts/image-test.sh; fi  # with no pytest arguments: docs/containers.md
