#!/usr/bin/env bash
# check_aarch64.sh -- syntax-checks the aarch64 architecture files (arch/aarch64/*.c) with the
# aarch64 cross compiler, so the port keeps compiling on an x86_64 build machine. Fails when
# the cross compiler is missing (Debian package gcc-aarch64-linux-gnu) or any file does not
# compile with the project's warnings.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cc=${AARCH64_CC:-aarch64-linux-gnu-gcc}
if ! command -v "$cc" >/dev/null 2>&1; then
    echo "check_aarch64.sh: $cc not found — install the Debian package gcc-aarch64-linux-gnu" \
        "(apt-get install gcc-aarch64-linux-gnu)" >&2
    exit 2
fi
shopt -s nullglob
files=("$root"/arch/aarch64/*.c)
if ((${#files[@]} == 0)); then
    echo "check_aarch64.sh: no files in $root/arch/aarch64" >&2
    exit 1
fi
failed=0
for f in "${files[@]}"; do
    if "$cc" -fsyntax-only -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow \
        -Wstrict-prototypes -I"$root/include" "$f"; then
        echo "ok   aarch64: ${f#"$root"/}"
    else
        echo "FAIL aarch64: ${f#"$root"/}"
        failed=1
    fi
done
exit "$failed"
