#!/usr/bin/env bash
# Installs what is missing, builds pgpreflight and runs its demo on two throwaway servers.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build -q --product pgpreflight
exec .build/debug/pgpreflight demo "$@"
