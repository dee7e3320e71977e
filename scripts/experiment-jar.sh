#!/usr/bin/env bash
# Builds a copy of the app from the working tree with one of scripts/experiments/*.patch applied,
# for the benchmarks that compare the service with a variant of it; the patched code is never
# shipped. The copy goes to <folder> (which must be empty or absent), its jar to
# <folder>/app/target/app.jar.
#   scripts/experiment-jar.sh <patch> <folder>                  apply, then package without tests
#   scripts/experiment-jar.sh <patch> <folder> --compile-only   apply and compile only (make test
#                                                               does, so that a change to the
#                                                               patched class shows there)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 2 ] || [ $# -gt 3 ] || [ ! -f "$1" ] || { [ $# -eq 3 ] && [ "$3" != --compile-only ]; }; then
  echo "usage: scripts/experiment-jar.sh <patch file> <folder> [--compile-only]" >&2
  exit 2
fi
patch=$(realpath "$1")
copy=$2
mkdir -p "$copy/app"
if [ -n "$(ls -A "$copy/app")" ]; then
  echo "experiment-jar: $copy/app is not empty" >&2
  exit 2
fi
cp pom.xml "$copy/"
cp -r app/pom.xml app/src "$copy/app/"
git -C "$copy" apply -p1 "$patch"
JAVA_HOME=$(scripts/java-home.sh)
export JAVA_HOME
if [ "${3:-}" = --compile-only ]; then
  (cd "$copy" && mvn -B -q compile)
else
  (cd "$copy" && mvn -B -q -DskipTests package)
fi
