#!/usr/bin/env bash
# Throughput, p99 latency and CPU time per request of `/` and `/chain` on three local instances
# (loopback), traced (OTLP/HTTP to a local receiver) and untraced (MODE=none), plus the resident
# memory of one instance afterwards, with the JVM options the app role gives the systemd unit.
# A third variant, "recorded", traces `/` but drops every span before export (a one-span queue and
# no endpoint), which separates the cost of recording spans from the cost of exporting them.
# Prints figures; asserts nothing.
#   BENCH_ROUNDS=3 BENCH_DURATION=15s BENCH_CONNECTIONS=16 scripts/bench.sh
# The variants alternate for BENCH_ROUNDS rounds and the median round is reported: on a shared
# 2-core VM one run of the same build varies by up to ±20 %.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${BENCH_ROUNDS:-3}
DURATION=${BENCH_DURATION:-15s}
CONNECTIONS=${BENCH_CONNECTIONS:-16}
BASE_PORT=${BENCH_BASE_PORT:-18100}
SINK_PORT=$((BASE_PORT + 18))
CLOSED_PORT=$((BASE_PORT + 19))  # nothing listens here: the "recorded" variant's endpoint
VARIANTS=(none recorded traced)
WORK=$(mktemp -d)
pids=()

# The unit's JVM options, read from the app role's defaults so the two cannot drift apart.
role_defaults=ansible/roles/app/defaults/main.yml
role_jvm_opts() {
  local min max extra
  min=$(sed -n 's/^app_heap_min: *//p' "$role_defaults")
  max=$(sed -n 's/^app_heap_max: *//p' "$role_defaults")
  extra=$(awk '/^app_java_opts_extra:/ { inlist = 1; next }
               inlist && /^ +- / { sub(/^ +- +/, ""); printf "%s ", $0; next }
               inlist { exit }' "$role_defaults")
  if [ -z "$min" ] || [ -z "$max" ]; then
    echo "bench: no app_heap_min/app_heap_max in $role_defaults" >&2
    exit 1
  fi
  echo "-Xms$min -Xmx$max $extra"
}
JVM_OPTS=${BENCH_JVM_OPTS:-$(role_jvm_opts)}

cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

command -v wrk >/dev/null || { echo "bench: installing wrk"; apt-get install -y -qq -o DPkg::Lock::Timeout=300 wrk >/dev/null; }
JAVA_HOME=$(scripts/java-home.sh)
[ -f app/target/app.jar ] || scripts/build-app.sh

start_instance() {  # start_instance <name> <port> <variant> <log> -> pid on stdout
  local name=$1 port=$2 variant=$3 log=$4 tracing
  case "$variant" in
    none) tracing=(MODE=none) ;;
    traced) tracing=(MODE=otel-collector-http OTEL_HTTP_ENDPOINT="http://127.0.0.1:$SINK_PORT/v1/traces") ;;
    recorded) tracing=(MODE=otel-collector-http OTEL_HTTP_ENDPOINT="http://127.0.0.1:$CLOSED_PORT/v1/traces"
                       OTEL_BSP_MAX_QUEUE_SIZE=1 OTEL_BSP_MAX_EXPORT_BATCH_SIZE=1) ;;
  esac
  # shellcheck disable=SC2086  # JVM_OPTS is a list of options
  env -i PATH="$PATH" "${tracing[@]}" OTEL_SERVICE_NAME="$name" EXPOSE_PORT="$port" \
      TARGET_ONE_HOST="127.0.0.1:$((BASE_PORT + 2))" TARGET_TWO_HOST="127.0.0.1:$((BASE_PORT + 3))" \
      "$JAVA_HOME/bin/java" $JVM_OPTS -jar app/target/app.jar >"$log" 2>&1 &
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

# CPU time (user + system ticks) of a process: "<all> <span export threads> <JVM threads>".
# The export threads are the batch processor's worker and the OTLP/HTTP exporter's sender (the
# JDK's HttpClient and the sender's executor; OkHttp's names, for gRPC, are matched too); the
# JVM's are the VM thread (which runs SerialGC) and the JIT compilers. The rest is request
# handling. Threads are told apart by name (/proc/<pid>/task/*/comm, 15 characters).
cpu_ticks() {
  local task
  {
    echo "all $(awk '{ print $14 + $15 }' "/proc/$1/stat")"
    for task in /proc/"$1"/task/*; do
      echo "$(tr ' ' _ <"$task/comm") $(sed 's/.*) //' "$task/stat" | awk '{ print $12 + $13 }')"
    done 2>/dev/null  # a thread may end while it is read
  } | awk '$1 == "all" { all = $2; next }
           $1 ~ /^(BatchSpanProces|HttpClient-|jdkhttp-|okhttp|OkHttp|Okio)/ { export += $2; next }
           $1 ~ /^(VM_Thread|GC_|C[12]_Compiler)/ { jvm += $2 }
           END { printf "%d %d %d\n", all, export, jvm }'
}

# measure <url> <pid of the instance serving it>
#   -> "<req/s> <p99> <CPU µs per request> <of which export threads> <of which JVM threads>"
measure() {
  local before after requests
  before=$(cpu_ticks "$2")
  wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency "$1" >"$WORK/wrk.out"
  after=$(cpu_ticks "$2")
  requests=$(awk '/requests in/ { print $1 }' "$WORK/wrk.out")
  awk -v before="$before" -v after="$after" -v hz="$(getconf CLK_TCK)" -v n="$requests" '
    BEGIN { split(before, b); split(after, a) }
    /Requests\/sec/ { rps = $2 } $1 == "99%" { p99 = $2 }
    END {
      us = 1e6 / hz / n
      printf "%s %s %.0f %.0f %.0f\n", rps, p99, (a[1] - b[1]) * us, (a[2] - b[2]) * us, (a[3] - b[3]) * us
    }' "$WORK/wrk.out"
}

NAMES=([1]=app-a [2]=app-b [3]=app-c)
for round in $(seq 1 "$ROUNDS"); do
  for variant in "${VARIANTS[@]}"; do
    echo "== round $round, $variant"
    started=()
    if [ "$variant" = traced ]; then
      python3 scripts/otlp-sink.py --port "$SINK_PORT" 2>"$WORK/sink.err" &
      sink_pid=$!; pids+=("$sink_pid"); started+=("$sink_pid")
    fi
    instances=(1 2 3)
    [ "$variant" = recorded ] && instances=(1)  # only `/` is measured: app-b and app-c serve /chain
    for i in "${instances[@]}"; do
      pid=$(start_instance "${NAMES[i]}" $((BASE_PORT + i)) "$variant" "$WORK/${NAMES[i]}.log")
      pids+=("$pid"); started+=("$pid")
      [ "$i" = 1 ] && app_a=$pid
    done
    for i in "${instances[@]}"; do await_healthy $((BASE_PORT + i)); done
    wrk -t2 -c"$CONNECTIONS" -d10s "http://127.0.0.1:$((BASE_PORT + 1))/" >/dev/null   # JIT warm-up
    read -r rps p99 cpu export_cpu jvm_cpu < <(measure "http://127.0.0.1:$((BASE_PORT + 1))/" "$app_a")
    echo "$rps $p99 $cpu $export_cpu $jvm_cpu" >>"$WORK/$variant.root"
    echo "   /      $rps req/s, p99 $p99, $cpu µs CPU of app-a per request" \
         "($export_cpu in span export threads, $jvm_cpu in GC and JIT threads)"
    if [ "$variant" != recorded ]; then  # its spans never leave the instance: nothing to compare
      read -r rps p99 _ < <(measure "http://127.0.0.1:$((BASE_PORT + 1))/chain" "$app_a")
      echo "$rps $p99" >>"$WORK/$variant.chain"
      echo "   /chain $rps req/s, p99 $p99"
      rss=$(awk '/VmRSS/ { printf "%d", $2 / 1024 }' "/proc/$app_a/status")
      echo "$rss" >>"$WORK/$variant.rss"
      echo "   RSS of app-a after the run: $rss MiB"
    fi
    for pid in "${started[@]}"; do kill "$pid"; wait "$pid" 2>/dev/null || true; done
    if [ "$variant" = traced ]; then
      # A span the batch processor dropped (queue full) was never encoded or sent, so a round
      # with drops flatters tracing; the summary prints their total.
      dropped=$(cat "$WORK"/app-?.log | sed -n 's/.*dropped \([0-9]*\) span.*/\1/p' | awk '{ s += $1 } END { print s + 0 }')
      echo "$dropped" >>"$WORK/$variant.dropped"
      echo "   spans dropped by the batch processors: $dropped; $(cat "$WORK/sink.err")"
    fi
  done
done

median_row() {  # median_row <file>: the row whose first column (req/s) is the median
  sort -n -k1,1 "$1" | awk '{ rows[NR] = $0 } END { print rows[int((NR + 1) / 2)] }'
}
max_of() { sort -n "$1" | tail -1; }

read -r none_rps none_p99 none_cpu none_export none_jvm < <(median_row "$WORK/none.root")
read -r rec_rps rec_p99 rec_cpu rec_export rec_jvm < <(median_row "$WORK/recorded.root")
read -r traced_rps traced_p99 traced_cpu traced_export traced_jvm < <(median_row "$WORK/traced.root")
read -r none_chain none_chain_p99 < <(median_row "$WORK/none.chain")
read -r traced_chain traced_chain_p99 < <(median_row "$WORK/traced.chain")
percent_of_none() { awk -v x="$1" -v n="$none_rps" 'BEGIN { printf "%.1f", 100 * x / n }'; }
cat <<EOT

Benchmark ($(nproc) cores, $(awk '/MemTotal/ {printf "%d GiB", $2/1048576}' /proc/meminfo), $("$JAVA_HOME/bin/java" -version 2>&1 | head -1), wrk -c$CONNECTIONS -d$DURATION, median of $ROUNDS rounds, JVM options $JVM_OPTS)
| endpoint | MODE=none | recorded, not exported | traced (OTLP/HTTP) |
|---|---|---|---|
| /      | $none_rps req/s, p99 $none_p99 | $rec_rps req/s, p99 $rec_p99 | $traced_rps req/s, p99 $traced_p99 |
| CPU of app-a per request to / | $none_cpu µs | $rec_cpu µs | $traced_cpu µs |
| ... in span export threads | $none_export µs | $rec_export µs | $traced_export µs |
| ... in GC and JIT threads | $none_jvm µs | $rec_jvm µs | $traced_jvm µs |
| ... in request handling (the rest) | $((none_cpu - none_export - none_jvm)) µs | $((rec_cpu - rec_export - rec_jvm)) µs | $((traced_cpu - traced_export - traced_jvm)) µs |
| /chain | $none_chain req/s, p99 $none_chain_p99 | - | $traced_chain req/s, p99 $traced_chain_p99 |
| RSS of app-a (highest of the rounds) | $(max_of "$WORK/none.rss") MiB | - | $(max_of "$WORK/traced.rss") MiB |
spans dropped in the traced rounds: $(awk '{ s += $1 } END { print s + 0 }' "$WORK/traced.dropped")
throughput on / relative to MODE=none: recorded $(percent_of_none "$rec_rps")%, traced $(percent_of_none "$traced_rps")% (goal: traced >= 95%); RSS goal <= 150 MiB
EOT
