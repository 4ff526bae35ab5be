#!/usr/bin/env bash
# check_threadnames.sh — compile src/python/gen/threadnames_gen.c against every CPython header set
# on this machine (pyenv versions, system /usr/include/pythonX.Y) and compare its output with the
# matching "BEGIN TN X.Y" row of the layout table in src/python/threadnames.c.
#   tests/check_threadnames.sh           verify (exit 1 on any mismatch or if no headers exist)
#   tests/check_threadnames.sh --print   print the generated rows instead, in version order
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
data=$root/src/python/threadnames.c
gen=$root/src/python/gen/threadnames_gen.c
cc=${CC:-cc}
print=0
case "${1:-}" in
'') ;;
--print) print=1 ;;
*)
    echo "usage: $0 [--print]" >&2
    exit 64
    ;;
esac

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pyroot=$(pyenv root 2>/dev/null || echo ~/.pyenv)

incs=()
shopt -s nullglob
for d in "$pyroot"/versions/*/include/python[23].* /usr/include/python[23].*; do
    [ -f "$d/Python.h" ] && incs+=("$d")
done
shopt -u nullglob
if [ ${#incs[@]} -eq 0 ]; then
    echo "check_threadnames: FAIL: no CPython headers found" >&2
    exit 1
fi

config_defines() {
    local inc=$1 f
    for f in "$inc/pyconfig.h" /usr/include/*-linux-gnu/"$(basename "$inc")"/pyconfig.h; do
        [ -f "$f" ] && cat "$f"
    done
}

# row VERSION: the lines of the table row for VERSION in threadnames.c.
row() {
    awk -v b="    /* BEGIN TN $1 */" -v e="    /* END TN $1 */" '
        $0 == b { on = 1 }
        on { print }
        $0 == e { on = 0 }' "$data"
}

fail=0
n=0
for inc in "${incs[@]}"; do
    if config_defines "$inc" | grep -Eq '^#define (Py_GIL_DISABLED|Py_TRACE_REFS)\b'; then
        echo "check_threadnames: skip $inc (free-threaded or trace-refs build)"
        continue
    fi
    flags=(-I"$inc")
    if [ -d "$inc/internal" ]; then
        flags+=(-DPy_BUILD_CORE)
        [ -f "$inc/internal/pycore_pystate.h" ] && flags+=(-I"$inc/internal")
    fi
    n=$((n + 1))
    exe=$tmp/gen$n
    if ! "$cc" -std=c11 -D_GNU_SOURCE -Wall -Wextra -o "$exe" "$gen" "${flags[@]}" \
        2>"$tmp/cc.err"; then
        echo "check_threadnames: FAIL: threadnames_gen.c does not compile against $inc:" >&2
        sed 's/^/    /' "$tmp/cc.err" >&2
        fail=1
        continue
    fi
    out=$tmp/out$n
    "$exe" >"$out"
    ver=$(sed -n 's|^    /\* BEGIN TN \([0-9]*\.[0-9]*\) \*/$|\1|p' "$out")
    if [ -z "$ver" ]; then
        echo "check_threadnames: FAIL: generator output for $inc has no BEGIN marker" >&2
        fail=1
        continue
    fi
    if [ $print -eq 1 ]; then
        cp "$out" "$tmp/row-$ver"
        continue
    fi
    if ! diff -u <(row "$ver") "$out" >"$tmp/d"; then
        echo "check_threadnames: FAIL: the $ver row in src/python/threadnames.c does not match" \
            "$inc (- table, + headers):" >&2
        cat "$tmp/d" >&2
        fail=1
    else
        echo "check_threadnames: ok   $ver  $inc"
    fi
done

if [ $print -eq 1 ]; then
    for v in $(cd "$tmp" && ls row-* | sed 's/^row-//' | sort -V); do cat "$tmp/row-$v"; done
    exit $fail
fi
if [ $fail -ne 0 ]; then
    echo "check_threadnames: FAILED" >&2
    exit 1
fi
echo "check_threadnames: all rows match the installed headers"
