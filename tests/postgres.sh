#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the test suite: `start` prints its URL, `stop` removes it.
# PostgreSQL refuses to run as root, so as root the cluster belongs to the postgres user.
set -euo pipefail

PORT="${CRAWLER_TEST_PG_PORT:-54329}"
DIR="${CRAWLER_TEST_PG_DIR:-/tmp/crawler-test-pg-$PORT}"

find_bin() {
  local found
  found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -z "$found" ] && command -v pg_ctl >/dev/null; then found=$(dirname "$(command -v pg_ctl)"); fi
  echo "$found"
}

as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

install_postgres() {
  if [ -n "$(find_bin)" ]; then return; fi
  if [ "$(id -u)" != 0 ]; then
    echo "postgres.sh: PostgreSQL is not installed; install the postgresql package" >&2
    exit 1
  fi
  echo "postgres.sh: installing PostgreSQL (apt-get)" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >&2
}

start() {
  install_postgres
  local bin; bin=$(find_bin)
  if [ -z "$bin" ]; then echo "postgres.sh: no PostgreSQL binaries found" >&2; exit 1; fi
  stop >/dev/null 2>&1 || true
  mkdir -p "$DIR"
  if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$DIR"; fi
  as_owner "$bin/initdb" -D "$DIR/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$DIR/initdb.log" 2>&1 \
    || as_owner "$bin/initdb" -D "$DIR/data" -U postgres -A trust -E UTF8 >"$DIR/initdb.log" 2>&1 \
    || { cat "$DIR/initdb.log" >&2; exit 1; }
  as_owner "$bin/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 \
    -o "-p $PORT -k $DIR -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c max_connections=200" \
    start >&2 || { cat "$DIR/server.log" >&2; exit 1; }
  echo "postgresql+psycopg://postgres@127.0.0.1:$PORT/postgres"
}

stop() {
  local bin; bin=$(find_bin)
  if [ -n "$bin" ] && [ -d "$DIR/data" ]; then
    as_owner "$bin/pg_ctl" -D "$DIR/data" -m fast -w stop >&2 || true
  fi
  rm -rf "$DIR"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
