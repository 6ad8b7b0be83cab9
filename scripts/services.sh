#!/usr/bin/env bash
# Throwaway services for the distributed tests (issue 15): a PostgreSQL 15 cluster and a Redis server
# on non-default ports, their data under $SYNERGY_SERVICES_DIR. Idempotent:
#   scripts/services.sh start   start both (no-op for one already up), then print the env
#   scripts/services.sh stop    stop both and delete their data
#   scripts/services.sh env     print the env (export lines; also in $SYNERGY_SERVICES_DIR/env.sh)
#   scripts/services.sh status  exit 0 when both answer
# Use: `eval "$(scripts/services.sh start)"`. PostgreSQL refuses to run as root, so as root its
# commands run as the `postgres` user (runuser). Auth is `trust` on 127.0.0.1 only: test data, no secrets.
set -euo pipefail

DIR=${SYNERGY_SERVICES_DIR:-/tmp/synergy_services}
PG_PORT=${SYNERGY_PG_PORT:-54329}
REDIS_PORT=${SYNERGY_REDIS_PORT:-63799}
PG_DATA="$DIR/pg"
PG_RUN="$DIR/pg_run" # unix socket dir (the default /var/run/postgresql may not exist)
DATABASES=(dagster synergy)

die() {
  echo "services.sh: $*" >&2
  exit 1
}

pg_bindir() {
  local d
  for d in "${SYNERGY_PG_BINDIR:-}" /usr/lib/postgresql/15/bin /usr/lib/postgresql/*/bin; do
    if [ -n "$d" ] && [ -x "$d/pg_ctl" ]; then
      echo "$d"
      return
    fi
  done
  command -v pg_ctl >/dev/null 2>&1 && dirname "$(command -v pg_ctl)" && return
  die "PostgreSQL binaries not found (apt-get install postgresql, or set SYNERGY_PG_BINDIR)"
}

# Run a PostgreSQL command as the cluster owner: `postgres` when we are root, else ourselves.
as_pg() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

pg_up() {
  local bin
  bin=$(pg_bindir)
  "$bin/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" 2>/dev/null
}

redis_up() {
  command -v redis-cli >/dev/null 2>&1 && [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]
}

start_pg() {
  local bin
  bin=$(pg_bindir)
  mkdir -p "$DIR"
  chmod 755 "$DIR"
  if [ ! -f "$PG_DATA/PG_VERSION" ]; then
    mkdir -p "$PG_DATA" "$PG_RUN"
    if [ "$(id -u)" = 0 ]; then chown postgres: "$PG_DATA" "$PG_RUN"; fi
    chmod 700 "$PG_DATA"
    as_pg "$bin/initdb" -D "$PG_DATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$DIR/initdb.log" 2>&1 \
      || die "initdb failed, see $DIR/initdb.log"
  fi
  if ! pg_up; then
    # fsync off: a throwaway cluster; max_connections: each Dagster run, step and Celery worker
    # holds a few connections.
    as_pg "$bin/pg_ctl" -D "$PG_DATA" -l "$PG_RUN/postgres.log" -w -t 60 \
      -o "-p $PG_PORT -k $PG_RUN -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" \
      start >/dev/null || die "PostgreSQL did not start, see $PG_RUN/postgres.log"
  fi
  local db
  for db in "${DATABASES[@]}"; do
    if ! "$bin/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -tAc \
      "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1; then
      "$bin/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres "$db"
    fi
  done
}

start_redis() {
  command -v redis-server >/dev/null 2>&1 || die "redis-server not found (apt-get install redis-server)"
  mkdir -p "$DIR/redis"
  if ! redis_up; then
    # No persistence: the broker's queue lives as long as the test run.
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
      --dir "$DIR/redis" --pidfile "$DIR/redis.pid" --logfile "$DIR/redis.log" >/dev/null
    local i
    for i in $(seq 50); do
      redis_up && return
      sleep 0.1
    done
    die "Redis did not start, see $DIR/redis.log"
  fi
}

print_env() {
  cat <<EOF
export SYNERGY_SERVICES_DIR='$DIR'
export SYNERGY_TEST_PG_DSN='host=127.0.0.1 port=$PG_PORT user=postgres dbname=synergy'
export SYNERGY_TEST_REDIS_URL='redis://127.0.0.1:$REDIS_PORT/0'
export DAGSTER_PG_HOST=127.0.0.1
export DAGSTER_PG_PORT=$PG_PORT
export DAGSTER_PG_USER=postgres
export DAGSTER_PG_PASSWORD=''
export DAGSTER_PG_DB=dagster
export DAGSTER_CELERY_BROKER_URL='redis://127.0.0.1:$REDIS_PORT/0'
export DAGSTER_CELERY_BACKEND_URL='redis://127.0.0.1:$REDIS_PORT/1'
EOF
}

stop_all() {
  if [ -f "$PG_DATA/PG_VERSION" ]; then
    as_pg "$(pg_bindir)/pg_ctl" -D "$PG_DATA" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  if redis_up; then redis-cli -h 127.0.0.1 -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true; fi
  rm -rf "$DIR"
}

case "${1:-}" in
  start)
    start_pg
    start_redis
    print_env >"$DIR/env.sh"
    print_env
    ;;
  stop) stop_all ;;
  env) print_env ;;
  status) pg_up && redis_up ;;
  *) die "usage: $0 start|stop|env|status" ;;
esac
