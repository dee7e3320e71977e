# shellcheck shell=bash
# Helpers shared by the benchmark scripts (sourced from the project root; not run on its own).
# The scripts keep the processes they start in the array pids and their files in WORK, and set
# SINK_PORT, CLOSED_PORT, SAMPLE_RATIO, CONNECTIONS and DURATION.

# bench_check <name> <value> <regex> <what>: a BENCH_* setting refused, by name, unless it matches.
bench_check() {
  [[ $2 =~ $3 ]] || { echo "bench: $1=$2: expected $4" >&2; exit 2; }
}

# The settings every benchmark script reads (ROUNDS, DURATION, CONNECTIONS, BASE_PORT), checked
# before anything starts: a port of "abc" is 0 in arithmetic, 0 rounds measure nothing and end in
# a division by zero.
bench_check_settings() {
  bench_check BENCH_ROUNDS "$ROUNDS" '^[1-9][0-9]?$' "1 to 99 rounds"
  bench_check BENCH_DURATION "$DURATION" '^[1-9][0-9]{0,3}[sm]$' "wrk's duration in whole seconds or minutes, e.g. 10s"
  bench_check BENCH_CONNECTIONS "$CONNECTIONS" '^[1-9][0-9]{0,3}$' "1 to 9999 connections"
  bench_check BENCH_BASE_PORT "$BASE_PORT" '^[1-9][0-9]{3,4}$' "a port from 1024 to 65400 (the scripts use the 100 above it)"
  ((BASE_PORT >= 1024 && BASE_PORT <= 65400)) ||
    { echo "bench: BENCH_BASE_PORT=$BASE_PORT: expected a port from 1024 to 65400" >&2; exit 2; }
}

# The app role's JVM options, read from its defaults so that a benchmark and the unit cannot drift
# apart: -Xms/-Xmx from app_heap_min/app_heap_max, then app_java_opts_extra.
role_jvm_opts() {
  local defaults=ansible/roles/app/defaults/main.yml min max extra
  min=$(sed -n 's/^app_heap_min: *//p' "$defaults")
  max=$(sed -n 's/^app_heap_max: *//p' "$defaults")
  extra=$(awk '/^app_java_opts_extra:/ { inlist = 1; next }
               inlist && /^ +- / { sub(/^ +- +/, ""); printf "%s ", $0; next }
               inlist { exit }' "$defaults")
  if [ -z "$min" ] || [ -z "$max" ]; then
    echo "bench: no app_heap_min/app_heap_max in $defaults" >&2
    exit 1
  fi
  echo "-Xms$min -Xmx$max $extra"
}

await_healthy() {  # await_healthy <port>, at most 60 s
  for _ in $(seq 1 120); do
    curl -sf -o /dev/null "http://127.0.0.1:$1/observe/health" && return 0
    sleep 0.5
  done
  echo "bench: instance on port $1 did not become healthy" >&2
  return 1
}

# start_sink <port> <stderr file>: starts scripts/otlp-sink.py in the background, its pid in
# SINK_PID, and returns once it listens. Fails when it exits first (the port taken, say), which
# would otherwise leave the spans to whatever listens there, or to nothing; at most 10 s.
start_sink() {
  python3 scripts/otlp-sink.py --port "$1" 2>"$2" &
  SINK_PID=$!
  for _ in $(seq 1 100); do
    grep -q '^otlp-sink: listening' "$2" && return 0
    kill -0 "$SINK_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "bench: the OTLP sink did not start on port $1: $(cat "$2")" >&2
  kill "$SINK_PID" 2>/dev/null || true
  wait "$SINK_PID" 2>/dev/null || true
  return 1
}

# Stops the processes in pids and empties it. Instances started in command substitutions are not
# the calling shell's children, so `wait` cannot wait for them: poll until all are gone (an
# instance may take its 10 s grace period for open connections and then flush spans), at most
# 40 s, then kill what is left.
stop_all() {
  local pid="" _
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for _ in $(seq 1 200); do
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && break; done
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  pids=()
}

cleanup() {  # the EXIT trap of the benchmark scripts
  stop_all
  rm -rf "$WORK"
}

bench_tools() {  # wrk (from Debian's packages when missing) and a JDK 21+ in JAVA_HOME
  command -v wrk >/dev/null || { echo "bench: installing wrk"; apt-get install -y -qq -o DPkg::Lock::Timeout=300 wrk >/dev/null; }
  # shellcheck disable=SC2034  # read by the scripts that source this file
  JAVA_HOME=$(scripts/java-home.sh)
}

# variant_tracing <variant>: the tracing variables of a variant's instances, one per line
# (scripts/bench.sh's header says what each variant measures).
variant_tracing() {
  case "$1" in
    none | none-again) echo MODE=none ;;
    unsampled) printf '%s\n' MODE=otel-collector-http "OTEL_HTTP_ENDPOINT=http://127.0.0.1:$CLOSED_PORT/v1/traces" \
                              OTEL_TRACES_SAMPLER=always_off ;;
    sampled) printf '%s\n' MODE=otel-collector-http "OTEL_HTTP_ENDPOINT=http://127.0.0.1:$SINK_PORT/v1/traces" \
                            OTEL_TRACES_SAMPLER=parentbased_traceidratio "OTEL_TRACES_SAMPLER_ARG=$SAMPLE_RATIO" ;;
    recorded) printf '%s\n' MODE=otel-collector-http "OTEL_HTTP_ENDPOINT=http://127.0.0.1:$CLOSED_PORT/v1/traces" \
                             OTEL_BSP_MAX_QUEUE_SIZE=1 OTEL_BSP_MAX_EXPORT_BATCH_SIZE=1 ;;
    traced | other) printf '%s\n' MODE=otel-collector-http "OTEL_HTTP_ENDPOINT=http://127.0.0.1:$SINK_PORT/v1/traces" ;;
    *) echo "bench: unknown variant $1" >&2; return 1 ;;
  esac
}

# CPU time (user + system ticks) of a process, "all - <ticks>" (threads that ended included), then
# of each of its threads, "<tid> <name> <ticks>" (name from /proc/<pid>/task/*/comm, 15 characters).
cpu_ticks() {
  local task
  echo "all - $(awk '{ print $14 + $15 }' "/proc/$1/stat")"
  for task in /proc/"$1"/task/*; do
    echo "${task##*/} $(tr ' ' _ <"$task/comm") $(sed 's/.*) //' "$task/stat" | awk '{ print $12 + $13 }')"
  done 2>/dev/null  # a thread may end while it is read
}

# cpu_split <cpu_ticks before> <cpu_ticks after> (files) -> "<all> <span export threads> <JVM threads>",
# the ticks spent in between. The export threads are the batch processor's worker and the
# OTLP/HTTP exporter's sender (the JDK's HttpClient and the sender's executor; OkHttp's names, for
# gRPC, are matched too); the JVM's are the VM thread (which runs SerialGC) and the JIT compilers;
# the rest is request handling. These are summed thread by thread: a thread that ended in between
# (the JDK's HttpClient lets idle threads go) would otherwise take its whole past CPU time out of
# the sum and make it negative. What it spent before it ended counts in the process's figure only.
cpu_split() {
  awk 'FNR == NR { before[$1] = $3; next }
       { spent = $3 - before[$1] }
       $1 == "all" { all = spent; next }
       $2 ~ /^(BatchSpanProces|HttpClient-|jdkhttp-|okhttp|OkHttp|Okio)/ { export += spent; next }
       $2 ~ /^(VM_Thread|GC_|C[12]_Compiler)/ { jvm += spent }
       END { printf "%d %d %d\n", all, export, jvm }' "$1" "$2"
}

# CPU time (ticks) the whole machine spent busy, all processes and the kernel: user, nice,
# system, irq and softirq of /proc/stat (not idle, iowait, or steal, which is other guests' time).
machine_busy_ticks() {
  awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8; exit }' /proc/stat
}

# measure <url> <pid of the instance serving it>
#   -> "<req/s> <p99> <CPU µs per request> <of which export threads> <of which JVM threads>
#       <the whole machine's busy CPU µs per request>"
measure() {
  local spent machine_before machine_after requests
  cpu_ticks "$2" >"$WORK/threads.before"
  machine_before=$(machine_busy_ticks)
  wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency "$1" >"$WORK/wrk.out"
  machine_after=$(machine_busy_ticks)
  cpu_ticks "$2" >"$WORK/threads.after"
  spent=$(cpu_split "$WORK/threads.before" "$WORK/threads.after")
  requests=$(awk '/requests in/ { print $1 }' "$WORK/wrk.out")
  awk -v spent="$spent" -v machine=$((machine_after - machine_before)) \
      -v hz="$(getconf CLK_TCK)" -v n="$requests" '
    BEGIN { split(spent, s) }
    /Requests\/sec/ { rps = $2 } $1 == "99%" { p99 = $2 }
    END {
      us = 1e6 / hz / n
      printf "%s %s %.0f %.0f %.0f %.0f\n", rps, p99, s[1] * us, s[2] * us, s[3] * us,
             machine * us
    }' "$WORK/wrk.out"
}
