#!/usr/bin/env bash
# tools/gpu_check.sh - everything sdc checks on a GPU, in one command (make
# gpu-check), from the repository's root on a machine with an NVIDIA GPU
# and its CUDA toolkit, which may reach no package registry: what it lacks
# comes from .gpu/ (make gpu-prep on a machine that has the registries).
#
#   bash tools/gpu_check.sh [OUT]     (default build/gpu-check)
#
#  1. the device (nvidia-smi); none: says so and stops, status 0
#  2. the libraries sdc links: the system's, else .gpu/debs unpacked into a
#     private folder (nothing is installed into the system)
#  3. build for the GPU's own architecture (build-gpu/)
#  4. the whole suite, the CUDA tests at SD shapes
#  5. compute-sanitizer memcheck over the CUDA tests and racecheck over the
#     kernels' tests, at small shapes (SDC_TEST_SMALL=1)
#  6. make bench's CUDA part on the full-size SD 1.5-shaped checkpoint
#     (made here by tools/make_fixtures.py): the per-op table (sdc's
#     kernels against cuDNN and cuBLAS, bench/bench_ops.c), sdc's stages,
#     then the stages with cuBLAS (SDC_ATTN=cublas SDC_CONV=im2col
#     SDC_LINEAR=cublas); the planned memory. cuDNN is the toolkit's or
#     PyTorch's (opened at run time; SDC_CUDNN_LIB)
#  7. diffusers (fp16, SDPA) on the same GPU, and PyTorch's SDPA backends
#     and cuDNN convolution at the per-op table's shapes:
#     tools/bench_diffusers.py
#  8. with GPU_CHECK_SDXL=1 (not in the default budget: the checkpoint
#     alone is 6.5 GB to write), SDXL at 1024x1024: sdc (bench/bench_sdxl.c,
#     --backend cuda) beside diffusers (tools/bench_diffusers_sdxl.py
#     --device cuda) on the full-size SDXL-shaped checkpoint
#     (tools/fixtures_sdxl_full.py)
# Every step's output goes to OUT/gpu-check.log, the figures to
# OUT/results.md. Each step has a time limit, cut to what is left of an
# 8-minute budget (GPU_CHECK_BUDGET, seconds); a step that fails is
# reported and the rest run.
set -u
cd "$(dirname "$0")/.."
OUT=${1:-build/gpu-check}
mkdir -p "$OUT"
LOG=$OUT/gpu-check.log
RES=$OUT/results.md
: >"$LOG"
T0=$(date +%s)
status=0

say() { echo "gpu-check: $*" | tee -a "$LOG"; }
# The whole run stays under 8 minutes (15 minutes of GPU time hold a
# rerun): each step's limit is cut to what is left of BUDGET seconds, and a
# step with under 15 s left is skipped (reported as failed).
BUDGET=${GPU_CHECK_BUDGET:-470}
# step NAME LIMIT COMMAND...: run with a time limit, output to the log
step() {
    local name=$1 limit=$2 t=$(date +%s) rc left
    shift 2
    left=$((BUDGET - (t - T0)))
    [ "$left" -lt "$limit" ] && limit=$left
    if [ "$limit" -lt 15 ]; then
        say "== $name: SKIPPED (the ${BUDGET} s budget is spent)"
        status=1
        return 1
    fi
    say "== $name (limit ${limit} s)"
    timeout "$limit" "$@" >>"$LOG" 2>&1
    rc=$?
    say "== $name: $([ $rc = 0 ] && echo ok || echo "FAILED (status $rc$([ $rc = 124 ] && echo ', time limit'))")," \
        "$(($(date +%s) - t)) s"
    [ $rc = 0 ] || status=1
    return $rc
}

# 1. the device
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >>"$LOG" 2>&1; then
    say "no device: no NVIDIA GPU answers nvidia-smi here; nothing to check (run it on a GPU machine)"
    exit 0
fi
GPU=$(nvidia-smi --query-gpu=name,compute_cap,driver_version --format=csv,noheader | head -1)
CC=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d .)
say "device: $GPU"
{
    echo "# gpu-check $(date -u +%Y-%m-%d) on $GPU"
    echo
    cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
    echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), CPU $cpu"
} >"$RES"

# 2. libraries: the system's, or .gpu/debs in a private root
MAKEVARS=()
if ! echo '#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <microhttpd.h>
#include <utf8proc.h>' | cc -E -x c - >/dev/null 2>&1; then
    if ! ls .gpu/debs/*.deb >/dev/null 2>&1; then
        say "the libraries sdc links are missing and .gpu/debs is empty: run make gpu-prep where packages can be" \
            "fetched, and carry .gpu"
        exit 1
    fi
    ROOT=/tmp/sdc-gpu-root
    rm -rf "$ROOT" && mkdir -p "$ROOT"
    for f in .gpu/debs/*.deb; do dpkg -x "$f" "$ROOT"; done
    MA=$(cc -print-multiarch)
    export CPATH="$ROOT/usr/include:$ROOT/usr/include/$MA${CPATH:+:$CPATH}"
    export LIBRARY_PATH="$ROOT/usr/lib/$MA:$ROOT/usr/lib/$MA/openblas-openmp${LIBRARY_PATH:+:$LIBRARY_PATH}"
    export LD_LIBRARY_PATH="$LIBRARY_PATH${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    # the unversioned .so links of the -dev packages point at the runtime ones
    MAKEVARS+=("BLAS_DIR=$ROOT/usr/lib/$MA/openblas-openmp")
    say "libraries: $(ls .gpu/debs | wc -l) packages of .gpu/debs unpacked into $ROOT"
fi
if ls .gpu/whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/sdc-gpu-site \
        .gpu/whl/*.whl >>"$LOG" 2>&1 && export PYTHONPATH=/tmp/sdc-gpu-site${PYTHONPATH:+:$PYTHONPATH}
fi

# cuDNN, the comparison column (SDC_CONV=cudnn, opened at run time): its
# header for the build and its library, from the CUDA toolkit or from
# PyTorch's nvidia-cudnn package
if [ ! -f "${CUDA_HOME:-/usr/local/cuda}/include/cudnn.h" ]; then
    CUDNN_DIR=$(python3 -c 'import nvidia.cudnn as m; print(list(m.__path__)[0])' \
        2>/dev/null || true)
    if [ -n "$CUDNN_DIR" ] && [ -f "$CUDNN_DIR/include/cudnn.h" ]; then
        export CPATH="$CUDNN_DIR/include${CPATH:+:$CPATH}"
        export LD_LIBRARY_PATH="$CUDNN_DIR/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        [ -f "$CUDNN_DIR/lib/libcudnn.so.9" ] && export SDC_CUDNN_LIB="$CUDNN_DIR/lib/libcudnn.so.9"
        say "cuDNN: PyTorch's, in $CUDNN_DIR"
    else
        say "cuDNN: not found (the cuDNN column will say n/a)"
    fi
fi

# 3. build for this GPU
J=$(nproc)
MAKEVARS+=("BUILD=build-gpu" "CUDA_ARCH=-gencode arch=compute_$CC,code=sm_$CC")
step build 240 make -j"$J" "${MAKEVARS[@]}" build-gpu/sdc build-gpu/sdc_tests build-gpu/sdc_bench \
    build-gpu/plan_report build-gpu/sdc_bench_sdxl || { say "build failed: see $LOG"; exit 1; }

# 4. the suite (CUDA tests at SD shapes)
step tests 150 build-gpu/sdc_tests --jobs "$J"
grep -h "Synthesis" "$LOG" | tail -1 | sed 's/^/suite: /' >>"$RES"

# 5. compute-sanitizer at small shapes (every CUDA test: memcheck; the
#    kernels' own tests: racecheck)
if command -v compute-sanitizer >/dev/null 2>&1; then
    export SDC_TEST_SMALL=1
    step memcheck 90 compute-sanitizer --tool memcheck --target-processes all --error-exitcode 3 \
        build-gpu/sdc_tests --jobs 1 --filter 'cuda*/*'
    step racecheck 60 compute-sanitizer --tool racecheck --target-processes all --error-exitcode 3 \
        build-gpu/sdc_tests --jobs 1 --filter 'cuda_halfops/*'
    unset SDC_TEST_SMALL
    grep -h "ERROR SUMMARY\|RACECHECK SUMMARY" "$LOG" | sort | uniq -c | sed 's/^/compute-sanitizer: /' >>"$RES"
else
    say "compute-sanitizer not found: memcheck and racecheck skipped"
    status=1
fi

# section TITLE NAME LIMIT COMMAND...: a step whose output goes to the
# results as well, under TITLE
section() {
    local title=$1 mark
    shift
    mark=$(wc -l <"$LOG")
    step "$@"
    {
        echo
        echo "## $title"
        echo '```'
        tail -n +"$((mark + 1))" "$LOG" | grep -v '^gpu-check: '
        echo '```'
    } >>"$RES"
}

# 6. the benchmark: the checkpoint, sdc's kernels, the cuBLAS column, memory
FULL=build/fixtures-full/full_sd1.safetensors
[ -f "$FULL" ] || step fixtures 180 python3 tools/make_fixtures.py --full --out build/fixtures-full
if [ -f "$FULL" ]; then
    section "sdc, its own kernels (fused attention, implicit-GEMM convolution)" bench 120 \
        build-gpu/sdc_bench "$FULL" --cuda-only
    section "sdc with cuBLAS for attention, convolution and linear layers (SDC_ATTN=cublas SDC_CONV=im2col \
SDC_LINEAR=cublas)" bench-cublas 90 \
        env SDC_ATTN=cublas SDC_CONV=im2col SDC_LINEAR=cublas build-gpu/sdc_bench "$FULL" --cuda-only
    section "planned device memory" plan 30 build-gpu/plan_report "$FULL" 512 1
fi

# 7. diffusers on the same GPU
section "diffusers (fp16, SDPA), same GPU, same run" diffusers 120 python3 tools/bench_diffusers.py

# 8. SDXL, when asked for
if [ "${GPU_CHECK_SDXL:-0}" = 1 ]; then
    XL=build/fixtures-full/full_sdxl.safetensors
    [ -f "$XL" ] || step fixtures-sdxl 180 python3 tools/fixtures_sdxl_full.py --out build/fixtures-full
    [ -f "$XL" ] && section "sdc SDXL 1024x1024 (fp16 U-Net, bf16 VAE)" bench-sdxl 120 \
        build-gpu/sdc_bench_sdxl "$XL" --backend cuda
    section "diffusers SDXL 1024x1024 (fp16 U-Net, fp32 VAE, SDPA), same GPU" diffusers-sdxl 120 \
        python3 tools/bench_diffusers_sdxl.py --device cuda
fi

verdict=$([ $status = 0 ] && echo 'every step passed' || echo 'a step FAILED: see the log')
say "done in $(($(date +%s) - T0)) s; $verdict; figures in $RES, everything in $LOG"
exit $status
