#!/bin/sh
# fuzz/run.sh SECONDS TARGET... - run each libFuzzer target of build-fuzz/
# for SECONDS (from the repository root), one after the other, and print
# per target: executions, exec/s, coverage (cov: edges, ft: features), and
# what it found. Exit status 1 when any target found a crash, a hang
# (> 10 s for one input), a leak or an input over the memory limit.
#
# Each target keeps its corpus in build-fuzz/corpus/TARGET/ (seeded by
# fuzz/seed.sh, grown by every run), its log in build-fuzz/logs/TARGET.log
# and the inputs that failed in build-fuzz/artifacts/TARGET/; replay one
# with: build-fuzz/fuzz/fuzz_TARGET build-fuzz/artifacts/TARGET/crash-...
# FUZZ_ARGS adds libFuzzer options (e.g. FUZZ_ARGS=-jobs=2).
set -u
secs=$1
shift
root=build-fuzz
rss=${FUZZ_RSS_MB:-2048}
status=0
table=""
for t in "$@"; do
    bin=$root/fuzz/fuzz_$t
    corpus=$root/corpus/$t
    art=$root/artifacts/$t
    log=$root/logs/$t.log
    mkdir -p "$corpus" "$art" "$root/logs"
    sh fuzz/seed.sh "$t" "$corpus" || exit 2
    dict=fuzz/$t.dict
    case "$t" in model_*) dict=fuzz/model.dict ;; esac
    set --
    [ -f "$dict" ] && set -- "-dict=$dict"
    before=$(ls "$art" | wc -l)
    echo "fuzz: $t for ${secs}s (log $log)"
    # shellcheck disable=SC2086 # FUZZ_ARGS is a list of options
    "$bin" "$@" -max_total_time="$secs" -timeout=10 -rss_limit_mb="$rss" \
        -print_final_stats=1 -artifact_prefix="$art/" ${FUZZ_ARGS:-} "$corpus" \
        > "$log" 2>&1
    rc=$?
    found=$(($(ls "$art" | wc -l) - before))
    execs=$(awk '/stat::number_of_executed_units/ { print $2 }' "$log" | tail -n 1)
    rate=$(awk '/stat::average_exec_per_sec/ { print $2 }' "$log" | tail -n 1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2)
    ft=$(grep -o 'ft: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2)
    what=ok
    if [ "$rc" -ne 0 ] || [ "$found" -gt 0 ]; then
        status=1
        what="FOUND $found (rc $rc)"
        echo "fuzz: $t: failed (exit status $rc); the report:"
        grep -E -m 12 'ERROR: |runtime error|SUMMARY|ALARM|#[0-9]+ 0x|Test unit written' "$log" | head -n 12
        for a in $(ls -t "$art" | head -n "$found"); do
            echo "fuzz: replay: $bin $art/$a"
        done
    fi
    table="$table$(printf '%-16s %10s %8s %7s %7s  %s' "$t" "${execs:-?}" "${rate:-?}" \
        "${cov:-?}" "${ft:-?}" "$what")
"
done
printf '%-16s %10s %8s %7s %7s  %s\n' target execs exec/s cov ft result
printf '%s' "$table"
exit $status
