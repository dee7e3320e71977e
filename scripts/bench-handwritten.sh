#!/usr/bin/env bash
# What OpenTelemetry's instrumentation-api costs over the same server span made by hand: builds the
# app from the working tree with scripts/experiments/handwritten-server-tracing.patch applied
# (a copy in a temporary folder; the patch replaces ServerTracing's Instrumenter with the SDK's span
# builder and the same attributes, for measuring only) and runs scripts/bench.sh with that jar as
# the extra variant `other` (BENCH_OTHER_JAR). Prints bench.sh's figures; asserts nothing.
# bench.sh's settings (BENCH_ROUNDS, BENCH_DURATION, ...) apply.
#   scripts/bench-handwritten.sh --compile-only   only check that the patch applies and compiles
#                                                 (make test does, so that a change to
#                                                 ServerTracing that breaks the patch shows there)
set -euo pipefail
cd "$(dirname "$0")/.."
copy=$(mktemp -d)
trap 'rm -rf "$copy"' EXIT
# Both jars are built from the same working tree, so that they differ only by the patch.
mkdir "$copy/app"
cp pom.xml "$copy/"
cp -r app/pom.xml app/src "$copy/app/"
git -C "$copy" apply -p1 "$PWD/scripts/experiments/handwritten-server-tracing.patch"
JAVA_HOME=$(scripts/java-home.sh)
export JAVA_HOME
if [ "${1:-}" = --compile-only ]; then
  (cd "$copy" && mvn -B -q compile)
  exit 0
fi
echo "bench-handwritten: building the app, and the patched app in $copy"
scripts/build-app.sh
(cd "$copy" && mvn -B -q -DskipTests package)
BENCH_OTHER_JAR="$copy/app/target/app.jar" scripts/bench.sh
