#!/bin/sh
# tests/emu/selftest.sh BUILD - the self-test of the emulated device (make
# test-emu-selftest): the correct kernels of tests/emu/planted.cu give the
# right answers, the runtime behaves, and every planted bug is reported:
# an off-by-one tile count, a swapped fragment lane mapping and a missing
# __syncthreads() by a wrong answer against the host (as the suite's parity
# tests report them), a barrier in divergent code and a shuffle that a lane
# never reaches by a failed launch that names kernel, block and thread, a
# read past the end of a global buffer by AddressSanitizer, and races on
# shared memory (also one whose answer comes out right) by ThreadSanitizer;
# and that the kernels of kernels/ have no race ThreadSanitizer can see.
b=${1:-build}
fail=0
expect() { # expect BINARY CASE EXIT PATTERN
    if [ -n "$2" ]; then out=$("$1" "$2" 2>&1); else out=$("$1" 2>&1); fi
    rc=$?
    if [ "$rc" -eq "$3" ] && printf '%s\n' "$out" | grep -q -- "$4"; then
        printf 'selftest: %-18s ok: %s\n' "${2:-$(basename "$1")}" "$(printf '%s\n' "$out" | grep -m 1 -- "$4")"
    else
        printf 'selftest: %-18s FAILED: exit %s (want %s and "%s"); its output:\n' "${2:-$(basename "$1")}" "$rc" "$3" \
            "$4"
        printf '%s\n' "$out" | head -n 20 | sed 's/^/    /'
        fail=1
    fi
}
expect "$b/emu_selftest" correct 0 "right answers"
expect "$b/emu_selftest" conversions 0 "as CUDA rounds them"
expect "$b/emu_selftest" runtime 0 "every check held"
expect "$b/emu_selftest" off_by_one_tile 3 "caught: tiled_matmul differs"
expect "$b/emu_selftest" swapped_lanes 3 "caught: mma_direct"
expect "$b/emu_selftest" missing_sync 3 "caught: tiled_matmul differs"
expect "$b/emu_selftest" divergent_barrier 3 "barrier in divergent code"
expect "$b/emu_selftest" divergent_shuffle 3 "which exited"
expect "$b/emu_selftest_asan" oob_read 1 "heap-buffer-overflow"
# the race that in-order threads hide: right answer, but a data race
expect "$b/emu_selftest" racy_shift 0 "MISSED"
expect "$b/emu_selftest_tsan" racy_shift 66 "ThreadSanitizer: data race"
expect "$b/emu_selftest_tsan" missing_sync 66 "ThreadSanitizer: data race"
# and no race where there is none: the correct kernels, and every kernel of
# kernels/ at shapes that take their barriers
expect "$b/emu_selftest_tsan" correct 0 "right answers"
expect "$b/emu_race_check" "" 0 "every kernel ran"
[ $fail -eq 0 ] && echo "selftest: every planted bug was caught"
exit $fail
