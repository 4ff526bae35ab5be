#!/bin/sh
# valgrind_unit.sh [UNIT_TESTS [CRITERION ARGS...]] — runs the Criterion unit tests (default
# build/unit_tests) under valgrind memcheck and fails on any memory error or any definite or
# indirect leak, in the runner or in any test.
#
# Criterion runs every test in a worker process that it starts by executing the test binary
# again, so valgrind must follow those children (--trace-children=yes; programs the tests
# themselves start from system directories, such as the shell and `nm` behind popen, are
# skipped). A worker's valgrind exit status does not reach Criterion's own, so each process
# writes its own log and the logs' ERROR SUMMARY lines decide; the failing logs are printed.
# Prints "valgrind: N processes checked, 0 with errors" on success.
#
# Without CRITERION ARGS, the tests that cannot hold under valgrind are left out (override with
# any --filter): maps/self_maps_text expects the [vdso] mapping, which valgrind does not give
# the program it runs, native_unwind/* ptrace real child processes with timing bounds and
# vfork, which valgrind turns into fork, and walk/gil_trust_* and walk/quiet_skip_* ask the
# kernel whether two real threads of the test run or block, while valgrind runs one thread at a
# time (the others wait on its lock, so a spinning thread shows blocked).
set -u

bin=${1:-build/unit_tests}
[ $# -gt 0 ] && shift
if [ $# -eq 0 ]; then
    set -- --filter '!(maps/self_maps_text|native_unwind/*|walk/gil_trust_*|walk/quiet_skip_*)'
fi
# No debuginfod lookups from the tests (network, and libdebuginfod's own allocations).
DEBUGINFOD_URLS=
export DEBUGINFOD_URLS
if ! command -v valgrind >/dev/null 2>&1; then
    echo "valgrind_unit: valgrind is not installed (Debian package valgrind)" >&2
    exit 2
fi
if [ ! -x "$bin" ]; then
    echo "valgrind_unit: no such executable: $bin (build it with: make $bin)" >&2
    exit 2
fi

logs=$(mktemp -d "${TMPDIR:-/tmp}/pysample-valgrind.XXXXXX") || exit 2
trap 'rm -rf "$logs"' EXIT
trap 'exit 130' INT TERM

valgrind --trace-children=yes --trace-children-skip='/usr/*,/bin/*,/sbin/*,/root/.pyenv/*' \
    --leak-check=full --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect \
    --error-exitcode=1 --log-file="$logs/vg.%p.log" \
    "$bin" --jobs 1 "$@"
rc=$?

n=0
bad=0
for f in "$logs"/vg.*.log; do
    [ -f "$f" ] || continue
    n=$((n + 1))
    if grep -q 'ERROR SUMMARY: [1-9]' "$f"; then
        bad=$((bad + 1))
        echo "--- $(basename "$f"):"
        cat "$f"
    fi
done
echo "valgrind: $n processes checked, $bad with errors"
if [ "$n" -eq 0 ]; then
    echo "valgrind_unit: valgrind wrote no log" >&2
    exit 1
fi
[ "$bad" -eq 0 ] && [ "$rc" -eq 0 ]
