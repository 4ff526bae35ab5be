#!/usr/bin/env bash
# provision_sid.sh -- provisions the Debian sid chroot that holds the newest CPython releases
# (python3.14, python3.15, python3.15-nopie, their -dev headers) for the integration tests,
# the header check and `make bench`. A process started with `chroot DIR python3.15 ...` shares
# our PID namespace but has another root, exactly as a container looks from the host, so the
# same interpreters also cover the container path.
#
# The chroot is cached outside the clone (PS_SID_ROOT, default /var/cache/pysample/sid) and
# reused when its stamp lists every package wanted; otherwise the missing packages are added
# (or the chroot is made, about 3 minutes). Run as root; `make check` runs it like `make deps`.
# Prints the chroot's path on its last line. Exit status 2 with one line on stderr on failure.
set -euo pipefail

root=${PS_SID_ROOT:-/var/cache/pysample/sid}
mirror=${PS_SID_MIRROR:-}
pkgs=(python3.14 python3.14-dev python3.15 python3.15-dev python3.15-nopie gcc libc6-dev
      python3-gunicorn python3.14-dbg python3.15-dbg)
stamp=$root/.pysample-provisioned

die() { echo "provision_sid.sh: $*" >&2; exit 2; }

[[ $(id -u) == 0 ]] || die "must run as root (debootstrap and chroot): sudo $0"

if [[ -z $mirror ]]; then
    # The Debian archive this machine's own apt sources use.
    mirror=$(grep -rhoE '^(deb|URIs:)[^#]*https?://[^ ]*/debian/?( |$)' /etc/apt/sources.list \
                 /etc/apt/sources.list.d/ 2>/dev/null | grep -oE 'https?://[^ ]*/debian/?' | head -n 1) || true
    mirror=${mirror:-http://deb.debian.org/debian}
fi

want="${pkgs[*]}"
if [[ -f $stamp && $(cat "$stamp") == "$want" ]] && chroot "$root" /usr/bin/python3.15 -c '' 2>/dev/null; then
    echo "$root"
    exit 0
fi

if ! command -v debootstrap >/dev/null; then
    apt-get update >/dev/null || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends debootstrap >/dev/null \
        || die "cannot install debootstrap from Debian's archive"
fi

if [[ ! -x $root/usr/bin/apt-get ]]; then
    echo "provision_sid.sh: making the sid chroot in $root from $mirror (a few minutes)" >&2
    rm -rf "$root.partial"
    mkdir -p "$(dirname "$root")"
    inc=$(IFS=,; echo "${pkgs[*]}")
    debootstrap --variant=minbase --include="$inc" sid "$root.partial" "$mirror" >"$root.log" 2>&1 \
        || die "debootstrap of sid failed; see $root.log"
    rm -rf "$root"
    mv "$root.partial" "$root"
else
    # An existing chroot missing some packages: add them (apt in an older snapshot of sid may
    # see an expired Release file, hence Check-Valid-Until=false).
    echo "provision_sid.sh: adding packages to $root" >&2
    apt_opts=(-o Acquire::Check-Valid-Until=false -o APT::Install-Recommends=false)
    chroot "$root" apt-get "${apt_opts[@]}" update >"$root.log" 2>&1 || die "apt-get update in $root failed; see $root.log"
    chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" install -y "${pkgs[@]}" >>"$root.log" 2>&1 \
        || die "apt-get install in $root failed; see $root.log"
fi

for v in 3.14 3.15; do
    chroot "$root" "/usr/bin/python$v" -c 'import sys, threading' || die "python$v in $root does not run"
done
echo "$want" >"$stamp"
echo "$root"
