#!/usr/bin/env bash
# The quickstart end to end, in a clean copy of the tree: deploy/run builds
# claimd, starts a private durable PostgreSQL in a fresh directory, migrates,
# prints a key; the key works; Ctrl-C (SIGINT to the process group) stops
# claimd and the database.
#   usage: test-quickstart.sh REPO_DIR
set -euo pipefail
repo=$1
tmp=$(mktemp -d /tmp/claimd-qs.XXXXXX)
chmod 755 "$tmp"
pgdir=/tmp/cqs-$$
pid=
cleanup() {
    [ -z "$pid" ] || kill -KILL -- "-$pid" 2>/dev/null || true
    "$repo/tests/pg/pg-private" stop "$pgdir" >/dev/null 2>&1 || true
    rm -rf "$tmp" "$pgdir"
}
trap cleanup EXIT
fails=0
passes=0
ok() { passes=$((passes + 1)); }
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

(cd "$repo" && git ls-files -co --exclude-standard | grep -v '^build' | tar -cf - -T -) |
    tar -xf - -C "$tmp"

# Below the kernel's ephemeral range (32768-60999), so that no outgoing
# connection holds the port the quickstart will bind.
port=
for p in $(shuf -i 20000-32000 -n 20); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
        port=$p
        break
    fi
done
[ -n "$port" ] || { echo "no free port"; exit 1; }

# setsid makes deploy/run the leader of its own process group (its pid is the
# group's), so that SIGINT to the group is what Ctrl-C in a terminal sends.
cd "$tmp"
env -u CLAIMD_DATABASE_URL -u CLAIMD_OWNER_URL CLAIMD_PG_DIR="$pgdir" \
    CLAIMD_LISTEN="127.0.0.1:$port" setsid deploy/run --threads 1 >"$tmp/out" 2>&1 &
pid=$!
cd - >/dev/null

deadline=$((SECONDS + 600))
until grep -q "listening on port $port" "$tmp/out" 2>/dev/null; do
    if [ $SECONDS -gt $deadline ] || ! kill -0 "$pid" 2>/dev/null; then
        echo "the quickstart did not come up:"
        cat "$tmp/out"
        exit 1
    fi
    sleep 1
done
ok

key=$(grep -Eo 'ck_[0-9a-f]{64}' "$tmp/out" | head -n 1)
[ -n "$key" ] && ok || fail "no key printed"
grep -q "curl -s -H 'Authorization: Bearer $key'" "$tmp/out" && ok || fail "no ready-to-paste curl"
grep -q "pg-private: started in $pgdir (durable)" "$tmp/out" && ok || fail "not a durable database"

code=$(curl -s -o "$tmp/body" -w '%{http_code}' -H "Authorization: Bearer $key" \
    -H 'Content-Type: application/json' \
    -d '{"subscription_ref":"L-1001","applied_on":"2026-04-01","activated_on":"2026-04-03","device_protection":true}' \
    "http://127.0.0.1:$port/v1/subscriptions")
[ "$code" = 201 ] && ok || fail "the printed key: POST /v1/subscriptions answered $code"

kill -INT -- "-$pid"
for _ in $(seq 1 30); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 1
done
if kill -0 "$pid" 2>/dev/null; then
    fail "Ctrl-C did not stop the quickstart"
else
    ok
    wait "$pid" 2>/dev/null || true
    pid=
fi
grep -q '"msg":"stopped"' "$tmp/out" && ok || fail "claimd did not drain and stop"
rc=0
"$repo/tests/pg/pg-private" status "$pgdir" >/dev/null 2>&1 || rc=$?
[ "$rc" = 3 ] && ok || fail "the private PostgreSQL still runs (status $rc)"

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
