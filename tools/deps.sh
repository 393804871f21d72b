#!/bin/sh
# Install the Debian packages sdc needs, only those missing.
# As root it runs apt-get; otherwise it prints the one line to run.
set -e
pkgs="libstb-dev libcriterion-dev libcjson-dev libutf8proc-dev libopenblas-dev libopenblas-openmp-dev zlib1g-dev"
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
    apt-get install -y -qq $missing >/dev/null
else
    echo "deps: missing packages:$missing" >&2
    echo "deps: run: sudo apt-get install -y$missing" >&2
    exit 1
fi
