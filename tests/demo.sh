#!/usr/bin/env bash
# demo.sh -- `make demo`: starts fixtures/demo_app.py (a small CPU-bound service), profiles it
# for five seconds with `pysample attach`, then shows every thread with `pysample dump`.
# The demo process is killed at exit.
#
# Usage: tests/demo.sh PYSAMPLE
set -euo pipefail

if (($# != 1)); then
    echo "usage: tests/demo.sh PYSAMPLE" >&2
    exit 64
fi
PYSAMPLE=$1
# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/integration/lib.sh"

if [[ ! -x $PYSAMPLE ]]; then
    echo "demo.sh: $PYSAMPLE is not an executable file — build it with: make pysample" >&2
    exit 2
fi
if ! py=$(ps_python3); then
    echo "demo.sh: no Python 3 found (looked for /usr/bin/python3 and pyenv builds)" >&2
    exit 2
fi
if ! ps_start_fixture "$py" demo_app.py >&2; then
    echo "demo.sh: $py fixtures/demo_app.py did not start" >&2
    exit 2
fi
pid=$PS_FIXTURE_PID
echo "demo: $PS_FIXTURE_CMD (pid $pid)"
echo

status=0
echo "\$ pysample attach $pid -d 5"
timeout -k 5 30 "$PYSAMPLE" attach "$pid" -d 5 || status=$?
echo
echo "\$ pysample dump $pid"
timeout -k 5 30 "$PYSAMPLE" dump "$pid" || status=$?
exit "$status"
