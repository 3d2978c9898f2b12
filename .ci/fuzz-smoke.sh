#!/usr/bin/env bash
# A short smoke of every fuzz target: each runs over its seeds (the billing fixtures and
# fuzz/seeds/), then a few seconds of fuzzing. Fails on any crash. The long campaign is
# `fuzz/run.sh SECONDS` (see there).
#
# cargo-fuzz is installed once per machine (~/.cargo/bin) and the instrumented build kept in a
# cache outside the clone, so a rerun on the same machine only rebuilds what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
export FUZZ_TARGET_DIR="${FUZZ_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/keygate-ci/fuzz-target}"
# A dev build: a third of the release build time; the smoke runs seconds, not millions.
export FUZZ_PROFILE="${FUZZ_PROFILE:-dev}"
started=$SECONDS
FUZZ_JOBS="${FUZZ_JOBS:-2}" fuzz/run.sh "${KEYGATE_FUZZ_SECONDS:-3}"
echo "fuzz smoke: $((SECONDS - started)) s"
