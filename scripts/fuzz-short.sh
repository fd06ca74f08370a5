#!/usr/bin/env bash
# A short coverage-guided run of every fuzz target (libFuzzer, through libfuzzer-sys), as the
# test command's last step. It builds fuzz/ with the SanitizerCoverage flags that
# `cargo fuzz build --sanitizer none` passes (stable rustc has them; no nightly, no cargo-fuzz
# install), in debug mode — with overflow checks and debug assertions on, and about half the
# build time of an optimised one — then runs each target for FUZZ_SECS seconds from its
# committed corpus. New inputs go to a scratch directory, not the tree; a crash, a panic, or an
# input over the time or memory limit fails the run and leaves the input in fuzz/artifacts/.
#
#   scripts/fuzz-short.sh              # every target, 6 s each
#   FUZZ_SECS=3600 scripts/fuzz-short.sh sdp
#   scripts/fuzz-short.sh --build      # only build them (the test command does, while tests run)
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

secs=${FUZZ_SECS:-6}
target=$(rustc -vV | sed -n 's/^host: //p')
export CARGO_TARGET_DIR=${FUZZ_TARGET_DIR:-$PWD/target/short}
# --target keeps these flags off build scripts and proc macros (they cannot link the
# coverage callbacks); the binaries get them.
RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing" \
    cargo build --quiet --target "$target" --bins
[ "${1:-}" != --build ] || exit 0

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(sip_message sdp rtp_packet twiml twilio_form stream_message admin_json srtp sdp_crypto stun sip_websocket verto_json twilio_signal relay_message telnyx_body visit)
scratch=$(mktemp -d /tmp/switchboard-fuzz.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
mkdir -p artifacts
# One target: its run, and its line of the table (or its log and the failure).
fuzz_one() {
    local t=$1 log="$scratch/$1.log"
    mkdir -p "$scratch/$t"
    if ! "$CARGO_TARGET_DIR/$target/debug/$t" -max_total_time="$secs" -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="artifacts/$t-" \
        "$scratch/$t" "corpus/$t" >"$log" 2>&1; then
        tail -40 "$log"
        echo "fuzz target $t failed; the input is in fuzz/artifacts/" >&2
        return 1
    fi
    local runs edges corpus
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    edges=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    corpus=$(grep -o 'corp: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    printf '%-16s %10s %8s %8s\n' "$t" "$runs" "$edges" "$corpus" >"$scratch/$t.row"
}

# Each target runs on one core for its FUZZ_SECS: as many at once as there are cores (the
# tests are over by now), so the step takes its time divided by the cores, not summed.
printf '%-16s %10s %8s %8s\n' target executions edges corpus
jobs=$(nproc)
failed=0
running=0
for t in "${targets[@]}"; do
    if [ "$running" -ge "$jobs" ]; then
        wait -n || failed=1
        running=$((running - 1))
    fi
    fuzz_one "$t" &
    running=$((running + 1))
done
while [ "$running" -gt 0 ]; do
    wait -n || failed=1
    running=$((running - 1))
done
for t in "${targets[@]}"; do
    [ ! -f "$scratch/$t.row" ] || cat "$scratch/$t.row"
done
[ "$failed" -eq 0 ] || exit 1
