#!/usr/bin/env bash
# Throughput and p99 latency of `/` and `/chain` on three local instances (loopback), traced
# (OTLP/HTTP to a local receiver) and untraced (MODE=none), plus the resident memory of one
# instance afterwards, with the heap settings of the systemd unit. Prints figures; asserts nothing.
#   BENCH_DURATION=20s BENCH_CONNECTIONS=16 scripts/bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${BENCH_DURATION:-20s}
CONNECTIONS=${BENCH_CONNECTIONS:-16}
HEAP_OPTS=${BENCH_HEAP_OPTS:--Xms64m -Xmx128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1}  # the app role's defaults (heap + app_java_opts_extra)
BASE_PORT=${BENCH_BASE_PORT:-18100}
SINK_PORT=$((BASE_PORT + 18))
WORK=$(mktemp -d)
pids=()

cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

command -v wrk >/dev/null || { echo "bench: installing wrk"; apt-get install -y -qq -o DPkg::Lock::Timeout=300 wrk >/dev/null; }
JAVA_HOME=$(scripts/java-home.sh)
[ -f app/target/app.jar ] || scripts/build-app.sh

start_instance() {  # start_instance <name> <port> <mode> -> pid on stdout
  local name=$1 port=$2 mode=$3
  env -i PATH="$PATH" MODE="$mode" OTEL_HTTP_ENDPOINT="http://127.0.0.1:$SINK_PORT/v1/traces" \
      OTEL_SERVICE_NAME="$name" EXPOSE_PORT="$port" \
      TARGET_ONE_HOST="127.0.0.1:$((BASE_PORT + 2))" TARGET_TWO_HOST="127.0.0.1:$((BASE_PORT + 3))" \
      "$JAVA_HOME/bin/java" $HEAP_OPTS -XX:+ExitOnOutOfMemoryError -jar app/target/app.jar \
      >"$WORK/$name.out" 2>&1 &
  echo $!
}

await_healthy() {  # await_healthy <port>, at most 60 s
  for _ in $(seq 1 120); do
    curl -sf -o /dev/null "http://127.0.0.1:$1/observe/health" && return 0
    sleep 0.5
  done
  echo "bench: instance on port $1 did not become healthy" >&2
  return 1
}

run_wrk() {  # run_wrk <url> -> "<req/s> <p99>"
  wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency "$1" >"$WORK/wrk.out"
  local rps p99
  rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.out")
  p99=$(awk '$1 == "99%" {print $2}' "$WORK/wrk.out")
  echo "$rps $p99"
}

NAMES=([1]=app-a [2]=app-b [3]=app-c)
declare -A results
for mode in none otel-collector-http; do
  echo "== MODE=$mode"
  started=()
  if [ "$mode" != none ]; then
    python3 scripts/otlp-sink.py --port "$SINK_PORT" 2>"$WORK/sink.err" &
    sink_pid=$!; pids+=("$sink_pid"); started+=("$sink_pid")
  fi
  for i in 1 2 3; do
    pid=$(start_instance "${NAMES[i]}" $((BASE_PORT + i)) "$mode")
    pids+=("$pid"); started+=("$pid")
  done
  for i in 1 2 3; do await_healthy $((BASE_PORT + i)); done
  wrk -t2 -c"$CONNECTIONS" -d10s "http://127.0.0.1:$((BASE_PORT + 1))/" >/dev/null   # JIT warm-up
  read -r rps p99 < <(run_wrk "http://127.0.0.1:$((BASE_PORT + 1))/")
  results[$mode,root]="$rps req/s, p99 $p99"
  results[$mode,root_rps]=$rps
  read -r rps p99 < <(run_wrk "http://127.0.0.1:$((BASE_PORT + 1))/chain")
  results[$mode,chain]="$rps req/s, p99 $p99"
  rss_kib=$(awk '/VmRSS/ {print $2}' "/proc/${started[-3]}/status")  # app-a
  results[$mode,rss]="$((rss_kib / 1024)) MiB"
  echo "   /      ${results[$mode,root]}"
  echo "   /chain ${results[$mode,chain]}"
  echo "   RSS of app-a after the run: ${results[$mode,rss]}"
  for pid in "${started[@]}"; do kill "$pid"; wait "$pid" 2>/dev/null || true; done
  [ "$mode" = none ] || cat "$WORK/sink.err"
done

ratio=$(awk -v t="${results[otel-collector-http,root_rps]}" -v n="${results[none,root_rps]}" \
  'BEGIN { printf "%.1f", 100 * t / n }')
cat <<EOT

Benchmark ($(nproc) cores, $(awk '/MemTotal/ {printf "%d GiB", $2/1048576}' /proc/meminfo), $("$JAVA_HOME/bin/java" -version 2>&1 | head -1), wrk -c$CONNECTIONS -d$DURATION, heap $HEAP_OPTS)
| endpoint | MODE=none | traced (OTLP/HTTP) |
|---|---|---|
| /      | ${results[none,root]} | ${results[otel-collector-http,root]} |
| /chain | ${results[none,chain]} | ${results[otel-collector-http,chain]} |
| RSS of one instance | ${results[none,rss]} | ${results[otel-collector-http,rss]} |
traced / untraced throughput on /: ${ratio}% (goal >= 95%); RSS goal <= 150 MiB
EOT
