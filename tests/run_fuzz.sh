#!/bin/sh
# run_fuzz.sh SECONDS BIN... — runs each libFuzzer binary for SECONDS on a scratch copy of its
# seed corpus (tests/fuzz/corpus/<name>/, if present) plus a fresh directory, and prints
# "fuzz <name>: N executions, 0 crashes". Fails if any target crashes or cannot run; the crash
# input is kept and its path printed (add it to the seed corpus as a regression file).
set -u

if [ $# -lt 2 ]; then
    echo "usage: $0 SECONDS BIN..." >&2
    exit 64
fi
secs=$1
shift
case $secs in
    ''|*[!0-9]*) echo "run_fuzz: SECONDS must be a whole number, got '$secs'" >&2; exit 64 ;;
esac

here=$(cd "$(dirname "$0")" && pwd)
corpus_root=$here/fuzz/corpus
work=$(mktemp -d "${TMPDIR:-/tmp}/pysample-fuzz.XXXXXX") || exit 1
keep=0
cleanup() { [ "$keep" = 1 ] || rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# Undefined behaviour is a finding, not a warning.
UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export UBSAN_OPTIONS

fail=0
for bin in "$@"; do
    name=$(basename "$bin")
    if [ ! -x "$bin" ]; then
        echo "fuzz $name: no such executable: $bin" >&2
        fail=1
        continue
    fi
    dir=$work/$name
    mkdir -p "$dir/new" "$dir/seed" "$dir/artifacts"
    if [ -d "$corpus_root/$name" ]; then
        cp -R "$corpus_root/$name/." "$dir/seed/"
    fi
    log=$dir/log
    "$bin" -max_total_time="$secs" -print_final_stats=1 -artifact_prefix="$dir/artifacts/" \
        "$dir/new" "$dir/seed" >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9][0-9]*\).*/\1/p' "$log" | tail -n 1)
    crashes=$(find "$dir/artifacts" -type f | wc -l | tr -d ' ')
    if [ "$rc" -ne 0 ] || [ "$crashes" -ne 0 ] || [ -z "$execs" ]; then
        keep=1
        [ "$crashes" -eq 0 ] && crashes=1
        echo "fuzz $name: ${execs:-?} executions, $crashes crashes (exit $rc)"
        echo "  log: $log" >&2
        for a in "$dir"/artifacts/*; do
            [ -f "$a" ] && echo "  crashing input: $a" >&2
        done
        tail -n 30 "$log" | sed 's/^/  | /' >&2
        fail=1
        continue
    fi
    echo "fuzz $name: $execs executions, 0 crashes"
done
exit $fail
