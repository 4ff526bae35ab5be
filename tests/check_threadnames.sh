#!/usr/bin/env bash
# check_threadnames.sh — compile src/python/gen/threadnames_gen.c against every CPython header set
# on this machine (pyenv versions, system /usr/include/pythonX.Y, the sid chroot's headers and
# free-threaded builds under its /opt, found as tests/check_offsets.sh finds them) and compare
# its output with the matching "BEGIN TN X.Y" / "X.Yt" row of the layout table in
# src/python/threadnames.c. A 3.13+ header set compiled with -DPy_GIL_DISABLED=1 stands in for a
# free-threaded build of that minor where none is installed, and must give the same row.
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
sid=${PYSAMPLE_SID:-/var/cache/pysample/sid}

incs=()
shopt -s nullglob
for d in "$pyroot"/versions/*/include/python[23].* /usr/include/python[23].* \
    "$sid"/opt/*/include/python3.*t "$sid"/usr/include/python3.*; do
    [ -f "$d/Python.h" ] && incs+=("$d")
done
shopt -u nullglob
if [ ${#incs[@]} -eq 0 ]; then
    echo "check_threadnames: FAIL: no CPython headers found" >&2
    exit 1
fi

inc_root() {
    case $1 in "$sid"/*) echo "$sid" ;; *) echo "" ;; esac
}

config_defines() {
    local inc=$1 f
    for f in "$inc/pyconfig.h" "$(inc_root "$inc")"/usr/include/*-linux-gnu/"$(basename "$inc")"/pyconfig.h; do
        [ -f "$f" ] && cat "$f"
    done
}

core_defines() {
    local inc=$1 prefix f
    prefix=$(dirname "$(dirname "$inc")")
    for f in "$prefix"/lib/"$(basename "$inc")"/_sysconfigdata_*.py; do
        [ -f "$f" ] || continue
        grep -o "'PY_CORE_CFLAGS': '[^']*'" "$f" | head -n 1 | grep -oE -- '-D_Py_[A-Za-z0-9_]+(=[^ ]*)?' || true
        return 0
    done
}

# row VERSION: the lines of the table row for VERSION in threadnames.c.
row() {
    awk -v b="    /* BEGIN TN $1 */" -v e="    /* END TN $1 */" '
        $0 == b { on = 1 }
        on { print }
        $0 == e { on = 0 }' "$data"
}

work=()
for inc in "${incs[@]}"; do
    if config_defines "$inc" | grep -Eq '^#define (Py_TRACE_REFS|Py_DEBUG)\b'; then
        echo "check_threadnames: skip $inc (debug or trace-refs build: a layout of its own, not tabled)"
        continue
    fi
    work+=("real $inc")
done
for inc in "${incs[@]}"; do
    config_defines "$inc" | grep -Eq '^#define (Py_GIL_DISABLED|Py_TRACE_REFS|Py_DEBUG)\b' && continue
    case $(basename "$inc") in python3.1[3-9] | python3.[2-9][0-9]) work+=("ft $inc") ;; esac
done

fail=0
n=0
declare -A seen=()
for item in "${work[@]}"; do
    mode=${item%% *}
    inc=${item#* }
    label=$inc
    flags=(-I"$inc")
    root_inc=$(inc_root "$inc")
    [ -n "$root_inc" ] && flags+=(-idirafter "$root_inc/usr/include")
    while read -r def; do [ -n "$def" ] && flags+=("$def"); done < <(core_defines "$inc")
    if [ "$mode" = ft ]; then
        flags+=(-DPy_GIL_DISABLED=1)
        label="$inc + Py_GIL_DISABLED"
    fi
    if [ -d "$inc/internal" ]; then
        flags+=(-DPy_BUILD_CORE)
        [ -f "$inc/internal/pycore_pystate.h" ] && flags+=(-I"$inc/internal")
    fi
    n=$((n + 1))
    exe=$tmp/gen$n
    if ! "$cc" -std=c11 -D_GNU_SOURCE -Wall -Wextra -o "$exe" "$gen" "${flags[@]}" \
        2>"$tmp/cc.err"; then
        echo "check_threadnames: FAIL: threadnames_gen.c does not compile against $label:" >&2
        sed 's/^/    /' "$tmp/cc.err" >&2
        fail=1
        continue
    fi
    out=$tmp/out$n
    "$exe" >"$out"
    ver=$(sed -n 's|^    /\* BEGIN TN \([0-9]*\.[0-9]*t\{0,1\}\) \*/$|\1|p' "$out")
    if [ -z "$ver" ]; then
        echo "check_threadnames: FAIL: generator output for $label has no BEGIN marker" >&2
        fail=1
        continue
    fi
    if [ $print -eq 1 ]; then
        [ -f "$tmp/row-$ver" ] || cp "$out" "$tmp/row-$ver"
        continue
    fi
    seen[$ver]=1
    if ! diff -u <(row "$ver") "$out" >"$tmp/d"; then
        echo "check_threadnames: FAIL: the $ver row in src/python/threadnames.c does not match" \
            "$label (- table, + headers):" >&2
        cat "$tmp/d" >&2
        fail=1
    else
        echo "check_threadnames: ok   $ver  $label"
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
