#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the store tests (tests/store/): initdb in a
# temporary directory, pg_ctl on a free loopback port, password authentication over TCP.
#
#   pg_cluster.sh start STATE   starts one; STATE/url holds its superuser URL
#                               (postgresql://dualtune:PASSWORD@127.0.0.1:PORT/postgres)
#   pg_cluster.sh stop STATE    stops it and deletes its files
#   pg_cluster.sh pause STATE   stops its server, keeping its files (an outage)
#   pg_cluster.sh resume STATE  starts the paused server again, same port and data
#   pg_cluster.sh run CMD...    starts one, runs CMD with DUALTUNE_TEST_PG_URL set, stops it
#
# ctest runs start/stop as the fixture of the store tests (CMakeLists.txt), which read
# the URL from STATE/url (DUALTUNE_TEST_PG_DIR) or from DUALTUNE_TEST_PG_URL.
# initdb refuses to run as root: as root the server runs as the `postgres` user that
# Debian's postgresql package creates. Fails (never skips) when the server is missing.
set -euo pipefail

die() { echo "pg_cluster.sh: $*" >&2; exit 1; }

# Debian keeps server binaries in /usr/lib/postgresql/<major>/bin (not on PATH): the
# newest major there, else whatever PATH has.
find_bindir() {
  local d best=""
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && best="$d"
  done
  if [ -z "$best" ] && command -v initdb >/dev/null 2>&1; then best="$(dirname "$(command -v initdb)")"; fi
  [ -n "$best" ] || die "PostgreSQL server binaries (initdb, pg_ctl) not found; expected Debian's postgresql package: run scripts/install_deps.sh"
  echo "$best"
}

start() {
  local state="$1" bin tmp port pw as=()
  bin="$(find_bindir)"
  rm -rf "$state"
  mkdir -p "$state"
  tmp="$(mktemp -d "${TMPDIR:-/tmp}/dualtune-pg-XXXXXX")"
  echo "$tmp" >"$state/dir"
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || die "running as root needs the 'postgres' user (Debian's postgresql package creates it): run scripts/install_deps.sh"
    chown postgres "$tmp"
    as=(runuser -u postgres --)
  fi
  pw="$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
  printf '%s\n' "$pw" >"$tmp/pw"
  [ ${#as[@]} -eq 0 ] || chown postgres "$tmp/pw"
  "${as[@]}" "$bin/initdb" -D "$tmp/data" -U dualtune --pwfile="$tmp/pw" --auth-local=trust \
    --auth-host=scram-sha-256 -E UTF8 --no-sync >"$tmp/initdb.log" 2>&1 ||
    { cat "$tmp/initdb.log" >&2; die "initdb failed"; }
  rm -f "$tmp/pw"
  port="$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  # fsync off: a test cluster is thrown away, durability buys nothing here. Benchmarks
  # set DUALTUNE_PG_FSYNC=on to compare with SQLite's synchronous=FULL on equal terms.
  echo "$port" >"$state/port"
  server_start "$state"
  echo "postgresql://dualtune:$pw@127.0.0.1:$port/postgres" >"$state/url"
  echo "pg_cluster.sh: PostgreSQL ($("$bin/postgres" --version)) on 127.0.0.1:$port, data in $tmp"
}

# Starts the server of STATE (its data directory and port from start).
server_start() {
  local state="$1" bin tmp port as=()
  bin="$(find_bindir)"
  tmp="$(cat "$state/dir")"
  port="$(cat "$state/port")"
  [ "$(id -u)" -ne 0 ] || as=(runuser -u postgres --)
  "${as[@]}" "$bin/pg_ctl" -D "$tmp/data" -l "$tmp/server.log" -w -t 60 \
    -o "-p $port -k $tmp -c listen_addresses=127.0.0.1 -c fsync=${DUALTUNE_PG_FSYNC:-off} -c max_connections=50" \
    start >/dev/null ||
    { cat "$tmp/server.log" >&2; die "pg_ctl start failed"; }
}

pause() {
  local state="$1" bin tmp as=()
  [ -f "$state/dir" ] || die "no cluster in $state"
  tmp="$(cat "$state/dir")"
  bin="$(find_bindir)"
  [ "$(id -u)" -ne 0 ] || as=(runuser -u postgres --)
  "${as[@]}" "$bin/pg_ctl" -D "$tmp/data" -m fast -w stop >/dev/null
}

stop() {
  local state="$1" bin tmp as=()
  [ -f "$state/dir" ] || return 0
  tmp="$(cat "$state/dir")"
  bin="$(find_bindir)"
  [ "$(id -u)" -ne 0 ] || as=(runuser -u postgres --)
  if [ -d "$tmp/data" ]; then "${as[@]}" "$bin/pg_ctl" -D "$tmp/data" -m immediate -w stop >/dev/null 2>&1 || true; fi
  rm -rf "$tmp" "$state"
}

case "${1:-}" in
  start) [ $# -eq 2 ] || die "usage: pg_cluster.sh start STATE_DIR"; start "$2" ;;
  stop) [ $# -eq 2 ] || die "usage: pg_cluster.sh stop STATE_DIR"; stop "$2" ;;
  pause) [ $# -eq 2 ] || die "usage: pg_cluster.sh pause STATE_DIR"; pause "$2" ;;
  resume) [ $# -eq 2 ] || die "usage: pg_cluster.sh resume STATE_DIR"; server_start "$2" ;;
  run)
    shift
    [ $# -ge 1 ] || die "usage: pg_cluster.sh run COMMAND..."
    state="$(mktemp -d "${TMPDIR:-/tmp}/dualtune-pg-state-XXXXXX")"
    trap 'stop "$state"' EXIT
    start "$state" >&2
    DUALTUNE_TEST_PG_URL="$(cat "$state/url")" "$@"
    ;;
  *) die "usage: pg_cluster.sh start|stop|pause|resume STATE_DIR, or pg_cluster.sh run COMMAND..." ;;
esac
