#!/bin/sh
# Check that a fresh Debian 12 machine builds sdc from the README alone.
#
# Builds a clean Debian bookworm root with `debootstrap --variant=minbase`
# (plus git, make, python3 and ca-certificates, nothing else), clones the
# repository into it, and runs inside it, as root in a chroot, the README's
# two commands exactly as written, from the clone's top folder:
#     make demo
#     make test
# (the Makefile's deps step then installs the toolchain and the libraries
# itself, through tools/deps.sh). It prints what passed and exits non-zero
# if anything failed. Mounts are undone on exit and the root is removed
# unless --keep is given.
#
# Needs root (debootstrap, chroot, mount) and network to a Debian package
# mirror (deb.debian.org unless told otherwise). Not run by CI. Takes about
# 4-15 minutes on 2 cores, mostly the mirror's speed: debootstrap a minute
# or more, make demo (packages and build) half a minute or more, make test
# two to three minutes.
#
# A clone only sees committed work: uncommitted changes are not tested.
#
# Usage: sh tools/fresh_root.sh [options]
#   --repo PATH|URL   repository to clone (default: the one holding this
#                     script; a local path is bind-mounted read-only)
#   --rev REV         commit, branch or tag to test (default: the local
#                     repository's HEAD, or the URL's default branch)
#   --dir DIR         build the root in DIR (must not exist or be empty;
#                     default: a new temporary folder)
#   --keep            keep the root afterwards (mounts are undone anyway)
#   --mirror URL      Debian mirror (default: $SDC_DEBIAN_MIRROR or
#                     http://deb.debian.org/debian)
#   --security URL    Debian security mirror, '' for none (default:
#                     $SDC_DEBIAN_SECURITY or http://deb.debian.org/debian-security)
set -eu

suite=bookworm
mirror=${SDC_DEBIAN_MIRROR:-http://deb.debian.org/debian}
security=${SDC_DEBIAN_SECURITY-http://deb.debian.org/debian-security}
here=$(cd "$(dirname "$0")" && pwd)
repo=""
rev=""
root=""
keep=0
made_root=0
bootlog=""

say() { echo "fresh_root: $*" >&2; }
die() { say "$*"; exit 2; }
usage() { sed -n '/^# Usage:/,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit "${1:-2}"; }

while [ $# -gt 0 ]; do
    case "$1" in
        --repo) [ $# -ge 2 ] || usage; repo=$2; shift 2 ;;
        --rev) [ $# -ge 2 ] || usage; rev=$2; shift 2 ;;
        --dir) [ $# -ge 2 ] || usage; root=$2; shift 2 ;;
        --keep) keep=1; shift ;;
        --mirror) [ $# -ge 2 ] || usage; mirror=$2; shift 2 ;;
        --security) [ $# -ge 2 ] || usage; security=$2; shift 2 ;;
        -h|--help) usage 0 ;;
        *) say "unknown option: $1"; usage ;;
    esac
done

[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot and mount)"

# The repository: a local path is bind-mounted read-only into the root and
# cloned from there with the root's own git; anything else is a URL that
# the root's git clones over the network.
local_src=""
if [ -z "$repo" ]; then
    repo=$(git -C "$here" rev-parse --show-toplevel) \
        || die "no repository around $here; give --repo"
fi
if [ -d "$repo" ]; then
    top=$(git -C "$repo" rev-parse --show-toplevel) || die "$repo: not a git repository"
    # The git folder itself, so that a linked worktree works too.
    local_src=$(cd "$top" && cd "$(git rev-parse --git-common-dir)" && pwd)
    [ -n "$rev" ] || rev=HEAD
    rev=$(git -C "$top" rev-parse --verify "$rev^{commit}") || die "$repo: no commit $rev"
    if [ -n "$(git -C "$top" status --porcelain --untracked-files=no)" ]; then
        say "note: $top has uncommitted changes; they are not tested"
    fi
    say "testing $top at $rev"
else
    say "testing $repo${rev:+ at $rev}"
fi

if [ -z "$root" ]; then
    root=$(mktemp -d "${TMPDIR:-/var/tmp}/sdc-fresh-root.XXXXXX")
else
    if [ -e "$root" ] && [ -n "$(ls -A "$root")" ]; then
        die "$root exists and is not empty"
    fi
    mkdir -p "$root"
fi
root=$(cd "$root" && pwd)
chmod 755 "$root"   # mktemp's 0700 would shut apt's _apt user out of /
[ "$root" != / ] || die "refusing to use / as the root"
made_root=1

# shellcheck disable=SC2317 # called from the trap
# Whether anything is mounted at $1 or below it.
mounted_at() { grep -qF " $1 " /proc/self/mounts || grep -qF " $1/" /proc/self/mounts; }

# shellcheck disable=SC2317 # the trap runs it
cleanup() {
    rc=$?
    set +e
    rm -f "$bootlog"
    # Deepest mounts first; each is a private or slave mount, so nothing
    # propagates back to the host's /dev, /sys or the repository.
    for m in src sys dev proc; do
        case $m in src) p=$root/mnt/sdc-src ;; *) p=$root/$m ;; esac
        if grep -qF " $p " /proc/self/mounts; then
            umount -R "$p" 2>/dev/null || umount -R -l "$p"
        fi
    done
    if [ "$made_root" = 1 ]; then
        if mounted_at "$root"; then
            say "mounts remain under $root; not removing it"
        elif [ "$keep" = 1 ]; then
            say "kept the root: $root"
        else
            rm -rf --one-file-system "$root"
        fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

now() { date +%s; }
t_start=$(now)

if ! command -v debootstrap >/dev/null 2>&1; then
    say "installing debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

say "debootstrap $suite into $root from $mirror"
t0=$(now)
bootlog=$root.debootstrap.log
debootstrap --variant=minbase --include=git,make,python3,ca-certificates \
    "$suite" "$root" "$mirror" >"$bootlog" 2>&1 || {
    tail -n 30 "$bootlog" >&2
    die "debootstrap failed"
}
t_boot=$(( $(now) - t0 ))
say "debootstrap done in ${t_boot}s"

# Apt sources as a fresh Debian 12 install has them.
{
    echo "deb $mirror $suite main"
    echo "deb $mirror $suite-updates main"
    [ -z "$security" ] || echo "deb $security $suite-security main"
} >"$root/etc/apt/sources.list"
cp /etc/resolv.conf "$root/etc/resolv.conf"

mount -t proc proc "$root/proc"
mount --rbind /sys "$root/sys"
mount --make-rslave "$root/sys"
mount --rbind /dev "$root/dev"
mount --make-rslave "$root/dev"

# Run a command in the root with a clean environment (a proxy, if set,
# is passed on).
in_root() {
    chroot "$root" /usr/bin/env -i HOME=/root TERM="${TERM:-dumb}" \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        ${http_proxy:+http_proxy=$http_proxy} ${https_proxy:+https_proxy=$https_proxy} \
        ${no_proxy:+no_proxy=$no_proxy} "$@"
}

if [ -n "$local_src" ]; then
    mkdir -p "$root/mnt/sdc-src"
    mount --bind "$local_src" "$root/mnt/sdc-src"
    mount --make-private "$root/mnt/sdc-src"
    mount -o remount,bind,ro "$root/mnt/sdc-src"
    in_root git -c safe.directory='*' clone -q --no-local /mnt/sdc-src /root/sdc
else
    in_root git clone -q "$repo" /root/sdc
fi
# Stay on the cloned branch when it already is the commit asked for.
if [ -n "$rev" ] && [ "$(in_root git -C /root/sdc rev-parse HEAD)" != "$rev" ]; then
    in_root git -C /root/sdc -c advice.detachedHead=false checkout -q "$rev"
fi
say "cloned into /root/sdc: $(in_root git -C /root/sdc log -1 --format='%h %s')"

# The README's two commands, exactly as written, from the clone's top folder.
status=0
summary=""
for target in demo test; do
    say "running: make $target"
    t0=$(now)
    if in_root sh -c "cd /root/sdc && make $target"; then
        r=PASS
    else
        r="FAIL (exit $?)"
        status=1
    fi
    summary="$summary
fresh_root: make $target: $r in $(( $(now) - t0 ))s"
done
if [ "$status" = 0 ] && [ ! -s "$root/root/sdc/samples/demo.png" ]; then
    summary="$summary
fresh_root: samples/demo.png missing after make demo: FAIL"
    status=1
fi

echo "
fresh_root: Debian $suite minbase root (debootstrap ${t_boot}s)$summary
fresh_root: total $(( $(now) - t_start ))s: $( [ "$status" = 0 ] && echo PASS || echo FAIL )"
exit "$status"
