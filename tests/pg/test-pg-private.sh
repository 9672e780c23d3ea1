#!/bin/bash
# Tests pg-private on a cluster of its own: start, an idempotent second start,
# stop, start again, recovery from a stale postmaster.pid, SIGKILL of the
# postmaster then start (crash recovery keeps committed rows), and the two
# modes' settings.
#   test-pg-private.sh HELPER DIR
set -euo pipefail

HELPER=$1
DIR=$2
PSQL=${PGBIN:-/usr/lib/postgresql/15/bin}/psql

step() {
    echo "--- $*"
}
fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# q URL SQL: one value, unaligned.
q() {
    "$PSQL" -X -At -v ON_ERROR_STOP=1 -d "$1" -c "$2"
}
expect() {
    local got
    got=$(q "$1" "$2") || fail "query failed: $2"
    [ "$got" = "$3" ] || fail "$2: got '$got', expected '$3'"
}
status_is() {
    local rc=0
    "$HELPER" status "$DIR" >/dev/null || rc=$?
    [ "$rc" -eq "$1" ] || fail "status exited $rc, expected $1"
}
postmaster_pid() {
    head -n 1 "$DIR/data/postmaster.pid"
}
kill_postmaster() {
    local pid
    pid=$(postmaster_pid)
    kill -KILL "$pid"
    for _ in $(seq 50); do
        [ -d "/proc/$pid" ] || return 0
        sleep 0.1
    done
    fail "postmaster $pid survived SIGKILL"
}

trap '"$HELPER" destroy "$DIR" >/dev/null 2>&1 || true' EXIT
"$HELPER" destroy "$DIR"

step "start --fast prints both URLs"
out=$("$HELPER" start --fast "$DIR")
eval "$out"
[ "$CLAIMD_OWNER_URL" = "postgresql:///claimd?host=$DIR&user=claimd_owner" ] ||
    fail "owner URL: $CLAIMD_OWNER_URL"
[ "$CLAIMD_DATABASE_URL" = "postgresql:///claimd?host=$DIR&user=claimd_app" ] ||
    fail "runtime URL: $CLAIMD_DATABASE_URL"
status_is 0
expect "$CLAIMD_OWNER_URL" "SELECT current_user" claimd_owner
expect "$CLAIMD_DATABASE_URL" "SELECT current_user" claimd_app
expect "$CLAIMD_OWNER_URL" "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'claimd'" claimd_owner
expect "$CLAIMD_OWNER_URL" "SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = 'claimd_app'" f
expect "$CLAIMD_OWNER_URL" "SHOW listen_addresses" ""
expect "$CLAIMD_OWNER_URL" "SHOW fsync" off
expect "$CLAIMD_OWNER_URL" "SHOW synchronous_commit" off
expect "$CLAIMD_OWNER_URL" "SHOW full_page_writes" off
[ -S "$DIR/.s.PGSQL.5432" ] || fail "no socket in $DIR"
q "$CLAIMD_OWNER_URL" "CREATE TABLE t (x int); INSERT INTO t VALUES (1)" >/dev/null

step "a second start reuses the running server"
pid=$(postmaster_pid)
out2=$("$HELPER" start --fast "$DIR")
[ "$out2" = "$out" ] || fail "second start printed: $out2"
[ "$(postmaster_pid)" = "$pid" ] || fail "second start restarted the server"
[ "$("$HELPER" url "$DIR")" = "$out" ] || fail "url differs from start's output"

step "stop, stop again, start again"
"$HELPER" stop "$DIR"
status_is 3
[ ! -e "$DIR/.s.PGSQL.5432" ] || fail "socket left behind after stop"
"$HELPER" stop "$DIR"
"$HELPER" start --fast "$DIR" >/dev/null
expect "$CLAIMD_OWNER_URL" "SELECT x FROM t" 1

step "a postmaster.pid naming a live process that is not PostgreSQL is stale"
"$HELPER" stop "$DIR"
sleep 300 &
decoy=$!
printf '%s\n%s\n' "$decoy" "$DIR/data" >"$DIR/data/postmaster.pid"
status_is 3
"$HELPER" start --fast "$DIR" >/dev/null
kill "$decoy"
[ "$(postmaster_pid)" != "$decoy" ] || fail "the server did not start"
expect "$CLAIMD_OWNER_URL" "SELECT x FROM t" 1

step "SIGKILL of the postmaster, then start"
kill_postmaster
status_is 3
"$HELPER" start --fast "$DIR" >/dev/null
expect "$CLAIMD_OWNER_URL" "SELECT x FROM t" 1
expect "$CLAIMD_DATABASE_URL" "SELECT current_user" claimd_app

step "durable mode: the three settings on; a committed row survives SIGKILL"
"$HELPER" start --durable "$DIR" >/dev/null
expect "$CLAIMD_OWNER_URL" "SHOW fsync" on
expect "$CLAIMD_OWNER_URL" "SHOW synchronous_commit" on
expect "$CLAIMD_OWNER_URL" "SHOW full_page_writes" on
q "$CLAIMD_OWNER_URL" "INSERT INTO t VALUES (2)" >/dev/null
kill_postmaster
"$HELPER" start --durable "$DIR" >/dev/null
expect "$CLAIMD_OWNER_URL" "SELECT sum(x) FROM t" 3
[ "$(grep -c "not properly shut down" "$DIR/postgres.log")" -ge 2 ] ||
    fail "no crash recovery in the log"

step "destroy removes everything"
"$HELPER" destroy "$DIR"
[ ! -e "$DIR" ] || fail "$DIR still exists"
echo "pg-private: all checks passed"
