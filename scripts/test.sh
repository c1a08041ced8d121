#!/usr/bin/env bash
# Installs what is missing, then runs the whole test suite against real PostgreSQL 15 and 18,
# then the fidelity suite on PostgreSQL's regression database (Tests/Fidelity: a migrated
# target must differ from its source by nothing beyond what pg_dump | psql differs by, offline
# and online under writes; about 3 minutes more with a cold cache under .deps/, 95 s warm, of
# which the online run ~45 s; FIDELITY_ONLINE=0 leaves the online run out), and pgcopydb's test fixtures offline and
# online (Tests/Fidelity/pgcopydb-fixtures.sh, about 4 minutes); PGPREFLIGHT_FIDELITY=0 skips both.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# Every import must be a declared dependency of its target (Package.swift tells the truth).
swift build --build-tests -q --explicit-target-dependency-import-check error
swift test --skip-build "$@"
if [ "${PGPREFLIGHT_FIDELITY:-1}" != 0 ] && [ $# -eq 0 ]; then
  Tests/Fidelity/regression-fidelity.sh
  # Another migration tool's fixtures (pgcopydb's unit and CDC tests), offline and online.
  Tests/Fidelity/pgcopydb-fixtures.sh
fi
