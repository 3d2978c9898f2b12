#!/usr/bin/env bash
# Runs every fuzz target for a set time and prints executions and crashes per target.
#
#   fuzz/run.sh [SECONDS] [TARGET ...]      (default: 60 s each, every target)
#
# Environment:
#   FUZZ_JOBS=N     targets run N at a time (default 1)
#   FUZZ_FORK=N     libFuzzer -fork=N inside each target: keeps going after a crash and uses N
#                   processes (default 0: one process, stops at the first crash)
#   FUZZ_TARGET_DIR the build directory (default fuzz/target), e.g. a cache outside the clone
#   FUZZ_PROFILE    release (default; for campaigns) or dev (builds in a third of the time, runs
#                   several times slower: for a smoke over the seeds)
#
# cargo-fuzz drives libFuzzer through rustc flags that stable Rust accepts (sanitizer coverage
# passes, `--cfg fuzzing`); it is run with RUSTC_BOOTSTRAP=1 so no nightly toolchain is needed.
# Sanitizer: none. The project forbids `unsafe` code, so AddressSanitizer would only slow the
# runs down; what is looked for is panics (including arithmetic overflow: debug assertions are
# on), aborts, timeouts and out-of-memory. Everything runs at `nice -n 19`.
#
# Corpora grow in fuzz/corpus/<target> (git-ignored); seeds come from the billing fixtures and
# fuzz/seeds/. Crashing inputs land in fuzz/artifacts/<target>/.
set -uo pipefail
cd "$(dirname "$0")"

SECONDS_EACH="${1:-60}"
shift || true
ALL=(provider_stripe provider_paddle provider_paypal provider_chargebee provider_fastspring
  provider_lemonsqueezy provider_generic decode_form licfile_file licfile_answer json_bodies)
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=("${ALL[@]}")
JOBS="${FUZZ_JOBS:-1}"
FORK="${FUZZ_FORK:-0}"
CARGO_FUZZ_VERSION=0.13.2

export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  echo "installing cargo-fuzz $CARGO_FUZZ_VERSION"
  nice -n 19 cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION" --quiet || exit 1
fi

mkdir -p logs
build_started=$SECONDS
# Without a target name cargo-fuzz builds them all (in one cargo invocation).
TARGET_DIR="${FUZZ_TARGET_DIR:-target}"
build_args=(--sanitizer none --debug-assertions)
[ -n "${FUZZ_TARGET_DIR:-}" ] && build_args+=(--target-dir "$FUZZ_TARGET_DIR")
PROFILE_DIR=release
if [ "${FUZZ_PROFILE:-release}" = dev ]; then
  build_args+=(--dev)
  PROFILE_DIR=debug
fi
nice -n 19 cargo fuzz build "${build_args[@]}" >logs/build.log 2>&1 ||
  { tail -30 logs/build.log; echo "fuzz build failed"; exit 1; }
echo "fuzz build: $((SECONDS - build_started)) s"
BIN_DIR="$TARGET_DIR/x86_64-unknown-linux-gnu/$PROFILE_DIR"

seeds_of() {
  case "$1" in
    provider_*) echo "../crates/billing/tests/fixtures/${1#provider_}" ;;
    *) echo "seeds/$1" ;;
  esac
}

started_marker="logs/.started"
touch "$started_marker"
run_one() {
  local target="$1" corpus="corpus/$1" artifacts="artifacts/$1/" log="logs/$1.log"
  mkdir -p "$corpus" "$artifacts"
  local fork_args=()
  [ "$FORK" -gt 0 ] && fork_args=(-fork="$FORK" -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
  nice -n 19 "$BIN_DIR/$target" "$corpus" "$(seeds_of "$target")" \
    -max_total_time="$SECONDS_EACH" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$artifacts" "${fork_args[@]}" >"$log" 2>&1
  echo $? >"logs/$target.rc"
}

running=0
for target in "${TARGETS[@]}"; do
  [ -x "$BIN_DIR/$target" ] || { echo "no binary for $target"; exit 1; }
  run_one "$target" &
  running=$((running + 1))
  if [ "$running" -ge "$JOBS" ]; then
    wait -n
    running=$((running - 1))
  fi
done
wait

failed=0
printf '%-22s %14s %10s %8s %8s\n' target executions exec/s crashes exit
for target in "${TARGETS[@]}"; do
  log="logs/$target.log"
  rc="$(cat "logs/$target.rc" 2>/dev/null || echo '?')"
  # One process: the final stats line. Fork mode: the last status line's `exec/s` and runs.
  execs="$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$')"
  if [ -z "$execs" ]; then
    execs="$(grep -o '#[0-9]*' "$log" | tail -1 | tr -d '#')"
  fi
  rate="$(grep -o 'exec/s: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$')"
  crashes="$(find "artifacts/$target" -type f -newer "$started_marker" \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' \) 2>/dev/null | wc -l)"
  printf '%-22s %14s %10s %8s %8s\n' "$target" "${execs:-?}" "${rate:-?}" "$crashes" "$rc"
  if [ "$crashes" -gt 0 ] || [ "$rc" != 0 ]; then failed=1; fi
done
exit "$failed"
