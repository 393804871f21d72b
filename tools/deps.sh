#!/bin/sh
# Install the Debian packages sdc needs, only those missing: the C toolchain
# (gcc brings cc and libgomp, binutils brings ar, libc6-dev the C headers),
# g++ for the emulated CUDA device (kernels/*.cu compiled for the host),
# make, and the libraries. Enough for a fresh Debian 12 to run `make demo`
# and `make test`.
#   sh tools/deps.sh        the build and the suite
#   sh tools/deps.sh fuzz   also clang with its libFuzzer runtime and libomp
# As root it runs apt-get; otherwise it prints the one line to run.
set -e
pkgs="gcc g++ libc6-dev binutils make"
pkgs="$pkgs libstb-dev libcriterion-dev libcjson-dev libutf8proc-dev libmicrohttpd-dev"
pkgs="$pkgs libopenblas-dev libopenblas-openmp-dev zlib1g-dev libjpeg62-turbo-dev"
for group in "$@"; do
    case "$group" in
        # clang 14 is Debian 12's; libFuzzer's runtime is its own package.
        fuzz) pkgs="$pkgs clang libclang-rt-14-dev libomp-dev" ;;
        *) echo "deps: unknown group '$group' (known: fuzz)" >&2; exit 2 ;;
    esac
done
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
        || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
    echo "deps: installing$missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086 # one word per package
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
else
    echo "deps: missing packages:$missing" >&2
    echo "deps: run: sudo apt-get install -y --no-install-recommends$missing" >&2
    exit 1
fi
