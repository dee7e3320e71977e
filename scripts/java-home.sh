#!/usr/bin/env bash
# Prints the JAVA_HOME of a JDK 21 or newer: $JAVA_HOME if it qualifies, else the newest JDK under
# /usr/lib/jvm. Helidon 4 needs Java 21+, while many build machines default to 17.
set -euo pipefail

java_major() {  # java_major <java_home> -> feature version, e.g. 25
  "$1/bin/java" -XshowSettings:properties -version 2>&1 |
    awk -F'= ' '/java.specification.version/ {print $2; exit}'
}

# A JAVA_HOME chosen by the user wins when it is new enough.
if [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/javac" ] && [ "$(java_major "$JAVA_HOME" || echo 0)" -ge 21 ]; then
  echo "$JAVA_HOME"
  exit 0
fi

candidates=()
for d in /usr/lib/jvm/*; do [ -x "$d/bin/javac" ] && candidates+=("$d"); done

best="" best_major=0
for home in "${candidates[@]}"; do
  major=$(java_major "$home" || echo 0)
  if [ "${major:-0}" -ge 21 ] && [ "$major" -gt "$best_major" ]; then best=$home best_major=$major; fi
done

if [ -z "$best" ]; then
  echo "java-home.sh: no JDK 21+ found (looked at \$JAVA_HOME and /usr/lib/jvm/*)." >&2
  echo "Install one, e.g. 'apt-get install openjdk-21-jdk-headless' on Debian 13, or set JAVA_HOME." >&2
  exit 1
fi
echo "$best"
