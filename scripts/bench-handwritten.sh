#!/usr/bin/env bash
# What OpenTelemetry's instrumentation-api costs over the same server span made by hand: builds the
# app from the working tree with scripts/experiments/handwritten-server-tracing.patch applied
# (scripts/experiment-jar.sh; the patch replaces ServerTracing's Instrumenter with the SDK's span
# builder and the same attributes, for measuring only) and runs scripts/bench.sh with that jar as
# the extra variant `other` (BENCH_OTHER_JAR). Prints bench.sh's figures; asserts nothing.
# bench.sh's settings (BENCH_ROUNDS, BENCH_DURATION, ...) apply.
#   scripts/bench-handwritten.sh --compile-only   only check that the patch applies and compiles
set -euo pipefail
cd "$(dirname "$0")/.."
case "$*" in
  "" | --compile-only) ;;
  *) echo "usage: scripts/bench-handwritten.sh [--compile-only]" >&2; exit 2 ;;
esac
copy=$(mktemp -d)
trap 'rm -rf "$copy"' EXIT
patch=scripts/experiments/handwritten-server-tracing.patch
if [ "${1:-}" = --compile-only ]; then
  scripts/experiment-jar.sh "$patch" "$copy" --compile-only
  exit 0
fi
echo "bench-handwritten: building the app, and the patched app in $copy"
# Both jars are built from the same working tree, so that they differ only by the patch.
scripts/build-app.sh
scripts/experiment-jar.sh "$patch" "$copy"
BENCH_OTHER_JAR="$copy/app/target/app.jar" scripts/bench.sh
