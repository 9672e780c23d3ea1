#!/usr/bin/env bash
# The settings' precedence (file < environment < flag), check-config's
# sources and its refusals, and the shipped example configs.
#   usage: test-config.sh CLAIMD_BIN REPO_DIR
set -euo pipefail
bin=$1
repo=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
passes=0

check() {
    if [ "$2" = "$3" ]; then
        passes=$((passes + 1))
    else
        echo "FAIL: $1: expected '$3', got '$2'"
        fails=$((fails + 1))
    fi
}

# The value and source check-config prints for one setting.
setting() {
    awk -v n="$1" '$1 == n { sub(/,$/, "", $5); print $3, $5 }' "$tmp/out"
}

unset CLAIMD_THREADS CLAIMD_IDLE_TIMEOUT_MS CLAIMD_DATABASE_URL CLAIMD_CONFIG || true
printf 'threads = 3\nidle-timeout-ms = 7000\ndatabase-url = host=/x user=a\n# comment\n\n' >"$tmp/c.conf"

"$bin" check-config --config "$tmp/c.conf" >"$tmp/out"
check "file value" "$(setting threads)" "3 file"
check "default value" "$(setting db-connections)" "4 default"

CLAIMD_THREADS=2 "$bin" check-config --config "$tmp/c.conf" >"$tmp/out"
check "environment over file" "$(setting threads)" "2 environment"

CLAIMD_THREADS=2 "$bin" check-config --config "$tmp/c.conf" --threads 5 >"$tmp/out"
check "flag over environment" "$(setting threads)" "5 flag"
check "file kept where nothing overrides" "$(setting idle-timeout-ms)" "7000 file"

rc=0
"$bin" check-config --config "$tmp/c.conf" --threads 999 >"$tmp/out" 2>"$tmp/err" || rc=$?
check "out-of-range flag refused" "$rc" "1"
grep -q "threads" "$tmp/err" && passes=$((passes + 1)) || { echo "FAIL: reason names threads"; fails=$((fails + 1)); }

printf 'threads = many\n' >"$tmp/bad.conf"
rc=0
"$bin" check-config --config "$tmp/bad.conf" >"$tmp/out" 2>"$tmp/err" || rc=$?
check "bad file refused" "$rc" "1"
grep -q "bad.conf:1" "$tmp/err" && passes=$((passes + 1)) || { echo "FAIL: reason names file:line"; fails=$((fails + 1)); }

rc=0
"$bin" check-config >"$tmp/out" 2>"$tmp/err" || rc=$?
check "no database URL refused" "$rc" "1"

rc=0
"$bin" serve --listen 127.0.0.1:0 >"$tmp/out" 2>"$tmp/err" || rc=$?
check "serve without a database URL refuses to start" "$rc" "2"
grep -q "never starts a database" "$tmp/err" && passes=$((passes + 1)) || { echo "FAIL: serve says why"; fails=$((fails + 1)); }

"$bin" check-config --database-url 'postgresql://u:secret@h/db' >"$tmp/out"
grep -q secret "$tmp/out" && { echo "FAIL: password printed"; fails=$((fails + 1)); } || passes=$((passes + 1))

"$bin" check-config --example | diff -u "$repo/deploy/claimd.conf.example" - >"$tmp/diff" && passes=$((passes + 1)) ||
    { echo "FAIL: deploy/claimd.conf.example differs from check-config --example:"; cat "$tmp/diff"; fails=$((fails + 1)); }
"$bin" check-config --config "$repo/deploy/claimd.conf" >"$tmp/out" && passes=$((passes + 1)) ||
    { echo "FAIL: deploy/claimd.conf is not valid"; fails=$((fails + 1)); }

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
