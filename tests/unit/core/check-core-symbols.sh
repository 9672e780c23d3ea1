#!/usr/bin/env bash
# Style §7: the core is allocation-free and the build proves it. Fails unless
# every symbol libclaimd_core.a needs from outside itself is on the allowlist.
#
# usage: check-core-symbols.sh LIBCLAIMD_CORE.a ALLOWLIST
# The allowlist holds one shell glob a line; '#' starts a comment.
set -euo pipefail

if [ $# -ne 2 ]; then
    echo "usage: $0 ARCHIVE ALLOWLIST" >&2
    exit 2
fi
lib=$1
allow=$2
[ -r "$lib" ] || { echo "cannot read archive $lib" >&2; exit 2; }
[ -r "$allow" ] || { echo "cannot read allowlist $allow" >&2; exit 2; }

# Symbol names from nm's POSIX format ("name type [value size]"), skipping the
# "archive[member]:" headers and blank lines.
symbols() {
    nm --format=posix "$@" "$lib" | awk 'NF >= 2 && $0 !~ /:$/ { print $1 }' | sort -u
}

mapfile -t patterns < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$allow" | grep -v '^$' || true)
if [ ${#patterns[@]} -eq 0 ]; then
    echo "allowlist $allow is empty" >&2
    exit 2
fi

# nm runs in process substitutions, whose failures set -e does not see: read
# both lists first and refuse an archive that defines nothing.
defined=$(symbols --defined-only) || exit 2
undefined=$(symbols --undefined-only) || exit 2
if [ -z "$defined" ]; then
    echo "no symbols defined in $lib: not the core archive?" >&2
    exit 2
fi

# Undefined in some member but defined by none: what the core takes from outside.
mapfile -t external < <(comm -23 <(printf '%s\n' "$undefined" | grep -v '^$' || true) \
    <(printf '%s\n' "$defined"))

allowed() {
    local pat
    for pat in "${patterns[@]}"; do
        # shellcheck disable=SC2053 # the pattern is a glob on purpose
        [[ $1 == $pat ]] && return 0
    done
    return 1
}

bad=0
checked=0
for sym in "${external[@]}"; do
    checked=$((checked + 1))
    if ! allowed "$sym"; then
        echo "not allowed in the core: $sym" >&2
        bad=$((bad + 1))
    fi
done

if [ $bad -ne 0 ]; then
    echo "FAIL: $bad undefined symbol(s) of $lib are not on $allow" >&2
    exit 1
fi
echo "ok: $checked external symbol(s) of $lib, all on the allowlist: ${external[*]}"
