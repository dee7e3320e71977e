#!/usr/bin/env bash
# Builds app/target/app.jar with a JDK 21+ (Helidon 4 needs it; many machines default to 17).
#   scripts/build-app.sh            package without tests (what a deploy needs)
#   scripts/build-app.sh verify     the full build with unit and integration tests
set -euo pipefail
cd "$(dirname "$0")/.."
JAVA_HOME=$(scripts/java-home.sh)
export JAVA_HOME
goal=${1:-package}
if [ $# -gt 1 ] || { [ "$goal" != package ] && [ "$goal" != verify ]; }; then
  echo "usage: scripts/build-app.sh [package | verify]" >&2
  exit 2
fi
if [ "$goal" = package ]; then
  exec mvn -B -q -DskipTests package
fi
exec mvn -B "$goal"
