#!/usr/bin/env bash
# Installs what is missing, builds pgpreflight and runs its demo on two throwaway servers.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build -c release -q --product pgpreflight 2>&1 | grep -v "^warning:" || true
exec .build/release/pgpreflight demo "$@"
