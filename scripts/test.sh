#!/usr/bin/env bash
# Installs what is missing, then runs the whole test suite against real PostgreSQL 15 and 18.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build --build-tests -q
swift test --skip-build "$@"
