#!/usr/bin/env bash
# run_all.sh -- runs every tests/integration/test_*.sh against $PYSAMPLE (default: pysample at
# the repository root), adds up their "N passed, N failed" lines and ends with the total in the
# same format. Exit status 1 if anything failed, a script died without its summary, or no test
# script was found. Each script is bounded by PS_SCRIPT_TIMEOUT seconds (default 900).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
PYSAMPLE=${PYSAMPLE:-$root/pysample}
case $PYSAMPLE in
    /*) ;;
    *) PYSAMPLE=$PWD/$PYSAMPLE ;;
esac
export PYSAMPLE
script_timeout=${PS_SCRIPT_TIMEOUT:-900}

log=$(mktemp "${TMPDIR:-/tmp}/pysample-run-all.XXXXXX")
trap 'rm -f "$log"' EXIT

passed=0
failed=0
scripts=("$here"/test_*.sh)
if [[ ! -e ${scripts[0]} ]]; then
    echo "run_all.sh: no test_*.sh scripts in $here"
    scripts=()
    failed=1
fi

for script in "${scripts[@]}"; do
    rc=0
    timeout -k 10 "$script_timeout" bash "$script" 2>&1 | tee "$log" || rc=$?
    summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1) || true
    if [[ -z $summary ]]; then
        echo "FAIL ${script##*/} ended without a summary (exit status $rc$( ((rc == 124)) && echo ", timed out after ${script_timeout}s"))"
        failed=$((failed + 1))
        continue
    fi
    read -r p _ f _ <<<"$summary"
    passed=$((passed + p))
    failed=$((failed + f))
    if ((rc != 0 && f == 0)); then
        echo "FAIL ${script##*/} exited with status $rc"
        failed=$((failed + 1))
    fi
done

echo "$passed passed, $failed failed"
((failed == 0))
