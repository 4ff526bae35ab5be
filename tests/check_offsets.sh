#!/usr/bin/env bash
# check_offsets.sh — compile src/python/gen/offsets_gen.c against every CPython header set on this
# machine (pyenv versions, system /usr/include/pythonX.Y, the Debian sid chroot that
# tests/provision_sid.sh caches, and free-threaded builds under its /opt) and compare its output
# with the matching "BEGIN GENERATED X.Y" / "X.Yt" block of src/python/offsets_data.c.
# Free-threaded ("t") tables come from a --disable-gil build's own headers; where none is
# installed, a 3.13+ header set compiled with -DPy_GIL_DISABLED=1 stands in (the only
# layout-relevant difference of such a build's pyconfig.h) and must agree with the committed
# table except in the fields _Py_DebugOffsets overrides at attach (they move between patch
# releases). The compiler gets the -D_Py_* switches of the build's PY_CORE_CFLAGS (Debian builds
# 3.14+ with the JIT, which changes the runtime and interpreter sizes).
#   tests/check_offsets.sh               verify (exit 1 on any mismatch or if no headers exist)
#   tests/check_offsets.sh --regenerate  rewrite the generated blocks (what `make offsets` runs)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
data=$root/src/python/offsets_data.c
gen=$root/src/python/gen/offsets_gen.c
cc=${CC:-cc}
regenerate=0
case "${1:-}" in
'') ;;
--regenerate) regenerate=1 ;;
*)
    echo "usage: $0 [--regenerate]" >&2
    exit 64
    ;;
esac

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

pyroot=$(pyenv root 2>/dev/null || echo ~/.pyenv)
sid=${PYSAMPLE_SID:-/var/cache/pysample/sid}

# Candidate include directories: pyenv builds first (they win when regenerating), then system,
# then the sid chroot; free-threaded builds first among those of their kind.
incs=()
shopt -s nullglob
for d in "$pyroot"/versions/*/include/python[23].* /usr/include/python[23].* \
    "$sid"/opt/*/include/python3.*t "$sid"/usr/include/python3.*; do
    [ -f "$d/Python.h" ] && incs+=("$d")
done
shopt -u nullglob

if [ ${#incs[@]} -eq 0 ]; then
    echo "check_offsets: FAIL: no CPython headers found (looked in $pyroot/versions/*/include, /usr/include/python* and $sid)" >&2
    exit 1
fi

# The root a header set belongs to ("" for the host, $sid for the chroot): a Debian multiarch
# pyconfig.h wrapper includes <x86_64-linux-gnu/pythonX.Y/pyconfig.h> from that root.
inc_root() {
    case $1 in "$sid"/*) echo "$sid" ;; *) echo "" ;; esac
}

# pyconfig.h may be a multiarch wrapper (Debian): look at every pyconfig.h the directory pulls in.
config_defines() {
    local inc=$1 f
    for f in "$inc/pyconfig.h" "$(inc_root "$inc")"/usr/include/*-linux-gnu/"$(basename "$inc")"/pyconfig.h; do
        [ -f "$f" ] && cat "$f"
    done
}

# The -D_Py_* switches the interpreter was compiled with (PY_CORE_CFLAGS in its sysconfig data).
core_defines() {
    local inc=$1 prefix f
    prefix=$(dirname "$(dirname "$inc")")
    for f in "$prefix"/lib/"$(basename "$inc")"/_sysconfigdata_*.py; do
        [ -f "$f" ] || continue
        grep -o "'PY_CORE_CFLAGS': '[^']*'" "$f" | head -n 1 | grep -oE -- '-D_Py_[A-Za-z0-9_]+(=[^ ]*)?' || true
        return 0
    done
}

# Fields that _Py_DebugOffsets carries (and so overrides at attach, 3.13+): allowed to differ
# between a stand-in free-threaded header set and the committed table from a real build.
dbo_fields='rt_size|rt_interp_head|is_size|is_next|is_tstate_head|is_id|is_modules|is_ceval_gil|is_code_generation|is_tlbc_generation|gil_last_holder|gil_locked|ts_size|ts_prev|ts_next|ts_interp|ts_frame|ts_thread_id|ts_native_thread_id|ts_datastack_chunk|ts_status'
drop_dbo() { grep -Ev "^    \.($dbo_fields) = " || true; }

# block VERSION FILE: the lines of the generated block for VERSION, without the provenance line.
block() {
    awk -v b="/* BEGIN GENERATED $1 */" -v e="/* END GENERATED $1 */" '
        $0 == b { on = 1 }
        on && !/^\/\* headers: / { print }
        $0 == e { on = 0 }' "$2"
}

# Work list: "MODE INC", MODE "real" or "ft" (the set compiled with -DPy_GIL_DISABLED=1). Real
# free-threaded sets come first in incs, so they win over stand-ins of the same minor.
work=()
for inc in "${incs[@]}"; do
    if config_defines "$inc" | grep -Eq '^#define (Py_TRACE_REFS|Py_DEBUG)\b'; then
        echo "check_offsets: skip $inc (debug or trace-refs build: a layout of its own, not tabled)"
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
declare -A produced=() produced_by=() produced_mode=()
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
        # 3.8+ internal headers include each other by bare name; 3.7 uses "internal/x.h".
        [ -f "$inc/internal/pycore_pystate.h" ] && flags+=(-I"$inc/internal")
    fi
    n=$((n + 1))
    exe=$tmp/gen$n
    if ! "$cc" -std=c11 -D_GNU_SOURCE -Wall -Wextra -o "$exe" "$gen" "${flags[@]}" 2>"$tmp/cc.err"; then
        echo "check_offsets: FAIL: offsets_gen.c does not compile against $label:" >&2
        sed 's/^/    /' "$tmp/cc.err" >&2
        fail=1
        continue
    fi
    out=$tmp/out$n
    "$exe" >"$out"
    ver=$(sed -n 's|^/\* BEGIN GENERATED \([0-9]*\.[0-9]*t\{0,1\}\) \*/$|\1|p' "$out")
    if [ -z "$ver" ]; then
        echo "check_offsets: FAIL: generator output for $label has no BEGIN marker" >&2
        fail=1
        continue
    fi
    # filter: what must agree. A stand-in free-threaded set may differ in the debug-offset fields.
    filter=cat
    [ "$mode" = ft ] && filter=drop_dbo
    if [ -n "${produced[$ver]:-}" ]; then
        # A second header set for the same minor version (e.g. Debian 3.11.2 next to pyenv 3.11.7).
        [ "${produced_mode[$ver]}" = ft ] && filter=drop_dbo
        if ! diff -u <(grep -v '^/\* headers: ' "${produced[$ver]}" | $filter) <(grep -v '^/\* headers: ' "$out" | $filter) >"$tmp/d"; then
            echo "check_offsets: FAIL: $label and ${produced_by[$ver]} disagree on the $ver layout:" >&2
            cat "$tmp/d" >&2
            fail=1
        else
            echo "check_offsets: ok   $ver  $label (same layout as ${produced_by[$ver]})"
        fi
        continue
    fi
    produced[$ver]=$out
    produced_by[$ver]=$label
    produced_mode[$ver]=$mode
    [ $regenerate -eq 1 ] && continue
    if ! grep -qxF "/* BEGIN GENERATED $ver */" "$data"; then
        echo "check_offsets: FAIL: $data has no generated table for $ver (headers: $label); run 'make offsets'" >&2
        fail=1
        continue
    fi
    if ! diff -u <(block "$ver" "$data" | $filter) <(grep -v '^/\* headers: ' "$out" | $filter) >"$tmp/d"; then
        echo "check_offsets: FAIL: the $ver table in src/python/offsets_data.c does not match $label" \
            "(- committed, + headers); run 'make offsets' if the headers are right:" >&2
        cat "$tmp/d" >&2
        fail=1
    else
        echo "check_offsets: ok   $ver  $label"
    fi
done

if [ ${#produced[@]} -eq 0 ] && [ $fail -eq 0 ]; then
    echo "check_offsets: FAIL: no usable CPython header set found" >&2
    exit 1
fi

if [ $regenerate -eq 1 ]; then
    [ $fail -eq 0 ] || {
        echo "check_offsets: not regenerating: errors above" >&2
        exit 1
    }
    new=$tmp/offsets_data.c
    cp "$data" "$new"
    for ver in $(printf '%s\n' "${!produced[@]}" | sort -t. -k1,1n -k2,2n); do
        # A stand-in free-threaded set never replaces a committed table from a real build.
        if [ "${produced_mode[$ver]}" = ft ] && grep -qxF "/* BEGIN GENERATED $ver */" "$data" &&
            ! grep -A1 -xF "/* BEGIN GENERATED $ver */" "$data" | grep -q '+ Py_GIL_DISABLED'; then
            echo "check_offsets: keep $ver (committed from a real build; stand-in is ${produced_by[$ver]})"
            continue
        fi
        # Say where a stand-in table came from.
        [ "${produced_mode[$ver]}" = ft ] && sed -i 's|^\(/\* headers: CPython [^ ]*\)t \*/$|\1 + Py_GIL_DISABLED */|' "${produced[$ver]}"
        out=${produced[$ver]}
        # Replace the GENERATED (or hand-written DERIVED) block for ver, or insert it before
        # the "END OF TABLES" marker, keeping version order.
        awk -v ver="$ver" -v blk="$out" '
            function emit(   l) { while ((getline l < blk) > 0) print l; close(blk) }
            $0 == "/* BEGIN GENERATED " ver " */" || $0 == "/* BEGIN DERIVED " ver " */" {
                skip = 1; found = 1; lines[++n] = "\001BLOCK"; next
            }
            skip && ($0 == "/* END GENERATED " ver " */" || $0 == "/* END DERIVED " ver " */") { skip = 0; next }
            skip { next }
            { lines[++n] = $0 }
            END {
                for (i = 1; i <= n; i++) {
                    if (lines[i] == "\001BLOCK") { emit(); continue }
                    if (!found && lines[i] == "/* END OF GENERATED TABLES */") { emit(); print "" }
                    print lines[i]
                }
            }' "$new" >"$new.tmp"
        mv "$new.tmp" "$new"
        echo "check_offsets: wrote $ver from ${produced_by[$ver]}"
    done
    # Rebuild the table list from the tables present, in version order.
    awk '
        /^static const struct ps_py_offsets ps_pyoff_[0-9]+_[0-9]+t? = \{$/ {
            name = $5; split(name, p, "_"); ft = (p[4] ~ /t$/); sub(/t$/, "", p[4])
            key = sprintf("%04d%04d%d", p[3], p[4], ft); names[key] = name
        }
        { lines[++n] = $0 }
        END {
            m = 0
            for (k in names) keys[++m] = k
            for (i = 2; i <= m; i++) { v = keys[i]; j = i - 1; while (j > 0 && keys[j] > v) { keys[j + 1] = keys[j]; j-- } keys[j + 1] = v }
            for (i = 1; i <= n; i++) {
                if (lines[i] ~ /BEGIN TABLE LIST/) {
                    print lines[i]
                    for (k = 1; k <= m; k++) print "    &" names[keys[k]] ","
                    while (i < n && lines[i + 1] !~ /END TABLE LIST/) i++
                    continue
                }
                print lines[i]
            }
        }' "$new" >"$new.tmp"
    mv "$new.tmp" "$new"
    if cmp -s "$new" "$data"; then
        echo "check_offsets: $data unchanged"
    else
        cp "$new" "$data"
        echo "check_offsets: updated $data"
    fi
    exit 0
fi

# Tables with no header set on this machine (e.g. the hand-written 3.14 one) are not checked here.
for ver in $(sed -n 's|^/\* BEGIN [A-Z]* \([0-9]*\.[0-9]*t\{0,1\}\) \*/$|\1|p' "$data"); do
    [ -n "${produced[$ver]:-}" ] || echo "check_offsets: note $ver  no headers installed; table not checked"
done

if [ $fail -ne 0 ]; then
    echo "check_offsets: FAILED" >&2
    exit 1
fi
echo "check_offsets: all tables match the installed headers"
