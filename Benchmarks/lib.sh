# Shared by the benchmark scripts (sourced, not run): throwaway PostgreSQL servers on
# loopback in $WORK, run as the `postgres` user when the script runs as root.

as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_server NAME BINDIR PORT [SETTING ...]: initdb in $WORK/NAME/data, listen on
# 127.0.0.1:PORT, append each SETTING line to postgresql.conf, start.
start_server() {
  local dir="$WORK/$1" bin=$2 port=$3
  shift 3
  mkdir -p "$dir"; chmod 777 "$dir"
  as_pg "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync >/dev/null
  { echo "port = $port"; echo "listen_addresses = '127.0.0.1'"; echo "unix_socket_directories = '$dir'"
    [ $# -gt 0 ] && printf '%s\n' "$@"; } >> "$dir/data/postgresql.conf"
  as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w start >/dev/null
}

# stop_server NAME BINDIR: immediate stop, quiet when it is not running.
stop_server() { [ -d "$WORK/$1/data" ] && as_pg "$2/pg_ctl" -D "$WORK/$1/data" -m immediate stop >/dev/null 2>&1 || true; }
