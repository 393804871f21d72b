#!/bin/sh
# tools/gpu_prep.sh - what `make gpu-check` needs on a GPU machine that
# reaches no package registry, fetched on this machine (make gpu-prep) into
# .gpu/ at the repository's root (ignored by git; carried to the GPU
# machine with the working tree):
#   .gpu/debs  the Debian 12 packages of the libraries sdc links and of the
#              test runner, with their own libraries (tools/gpu_check.sh
#              unpacks them into a private folder there: nothing is
#              installed into that machine's system)
#   .gpu/whl   diffusers and the packages it needs beyond that machine's
#              PyTorch, as wheels for its Python 3.12, pinned as
#              tools/requirements.txt pins them: the baseline column
#              (tools/bench_diffusers.py) and the full-size fixtures
# Needs apt-get (with package lists) and pip; nothing is installed here.
set -eu
cd "$(dirname "$0")/.."
mkdir -p .gpu/debs .gpu/whl
# the libraries of tools/deps.sh (less the compiler and make, which the GPU
# image has with its nvcc) and what they load in turn
debs="libstb-dev libstb0 libcjson1 libcjson-dev libutf8proc2 libutf8proc-dev libmicrohttpd12 libmicrohttpd-dev"
debs="$debs libopenblas0-openmp libopenblas-openmp-dev libopenblas-dev libgfortran5"
debs="$debs libcriterion3 libcriterion-dev libboxfort-dev libnanomsg5 libgit2-1.5 libhttp-parser2.9"
debs="$debs libmbedcrypto7 libmbedtls14 libmbedx509-1 libssh2-1"
# shellcheck disable=SC2086 # one word per package
(cd .gpu/debs && apt-get -o APT::Sandbox::User="$(id -un)" download $debs >/dev/null)
pin() { sed -n "s/^$1==//p" tools/requirements.txt; }
whl="diffusers==$(pin diffusers) transformers==$(pin transformers) tokenizers==$(pin tokenizers)"
whl="$whl huggingface_hub==$(pin huggingface_hub) safetensors==$(pin safetensors) regex==$(pin regex)"
whl="$whl importlib_metadata==8.5.0 zipp==3.21.0"
# shellcheck disable=SC2086 # one word per package
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux_2_5_x86_64 --platform manylinux1_x86_64 -d .gpu/whl $whl
echo "gpu-prep: $(ls .gpu/debs | wc -l) packages and $(ls .gpu/whl | wc -l) wheels in .gpu/" \
     "($(du -sm .gpu | cut -f1) MiB)"
