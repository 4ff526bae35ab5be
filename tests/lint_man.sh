#!/usr/bin/env bash
# lint_man.sh -- lints hand-written man(7) pages: man-db's rendering (with groff warnings on)
# and, where groff is installed, groff -ww must both be silent. Prints the warnings and exits 1
# if there are any, or if an argument names no file (an unmatched glob such as man/*.1);
# prints nothing and exits 0 otherwise.
#
# Usage: tests/lint_man.sh FILE...
set -euo pipefail

if (($# == 0)); then
    echo "lint_man.sh: no man pages given (usage: tests/lint_man.sh FILE...)" >&2
    exit 1
fi
if ! command -v man >/dev/null; then
    echo "lint_man.sh: 'man' not found — install the Debian package man-db (or run: sudo make deps)" >&2
    exit 1
fi

status=0
err=$(mktemp "${TMPDIR:-/tmp}/lint-man.XXXXXX")
trap 'rm -f "$err"' EXIT

for page in "$@"; do
    if [[ ! -f $page ]]; then
        echo "lint_man.sh: $page: no such file (a glob that matched nothing?)" >&2
        status=1
        continue
    fi
    rc=0
    LC_ALL=C.UTF-8 MANROFFSEQ='' MANWIDTH=80 man --warnings -E UTF-8 -l "$page" >/dev/null 2>"$err" || rc=$?
    if ((rc != 0)) || [[ -s $err ]]; then
        echo "$page: man --warnings (exit status $rc):" >&2
        cat "$err" >&2
        status=1
    fi
    if command -v groff >/dev/null; then
        rc=0
        groff -ww -z -man "$page" >/dev/null 2>"$err" || rc=$?
        if ((rc != 0)) || [[ -s $err ]]; then
            echo "$page: groff -ww -z -man (exit status $rc):" >&2
            cat "$err" >&2
            status=1
        fi
    fi
done
exit "$status"
