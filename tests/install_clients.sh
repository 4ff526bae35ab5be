#!/usr/bin/env bash
# install_clients.sh -- puts the npm packages that tests/integration/test_formats.sh opens
# pysample's outputs with (playwright-core to drive Debian's chromium, and speedscope's static
# app) into a cache outside the clone, PS_NPM_PREFIX (default /var/cache/pysample/npm), when
# they are not there at the pinned versions. Run by `make check` after the Debian packages
# (chromium, golang-go, valgrind, libdevel-nytprof-perl, nodejs: DEB_PKGS) are installed.
# Never downloads a browser: chromium comes from Debian.
set -euo pipefail

prefix=${PS_NPM_PREFIX:-/var/cache/pysample/npm}
pkgs=(playwright-core@1.65.2 speedscope@1.25.0)

have() { # have NAME VERSION: the package is installed under the prefix at that version
    [[ -f $prefix/node_modules/$1/package.json ]] &&
        node -e 'process.exit(require(process.argv[1]).version === process.argv[2] ? 0 : 1)' \
            "$prefix/node_modules/$1/package.json" "$2" 2>/dev/null
}

for tool in node npm; do
    if ! command -v "$tool" >/dev/null; then
        echo "install_clients.sh: '$tool' not found — install Node.js with npm (Debian: nodejs npm)" >&2
        exit 2
    fi
done

missing=()
for p in "${pkgs[@]}"; do
    have "${p%@*}" "${p##*@}" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
    exit 0
fi
mkdir -p "$prefix"
echo "install_clients.sh: installing ${missing[*]} into $prefix"
# PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD: playwright-core has no browser download step, but be sure.
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --prefix "$prefix" --no-audit --no-fund \
    --no-save "${missing[@]}"
for p in "${pkgs[@]}"; do
    if ! have "${p%@*}" "${p##*@}"; then
        echo "install_clients.sh: $p did not install into $prefix" >&2
        exit 2
    fi
done
