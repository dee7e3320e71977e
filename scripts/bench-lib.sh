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

# require_free_ports <first> <last>: fails, naming them, when TCP ports in that range are listened
# on already. An instance left by a killed run would otherwise answer in place of the new one,
# which fails to bind and exits: the figures would be the old instance's, its CPU read as 0.
require_free_ports() {
  local taken
  taken=$(ss -Htln | awk -v lo="$1" -v hi="$2" '{ n = split($4, a, ":"); p = a[n] + 0 }
                                                 p >= lo && p <= hi { print p }' | sort -nu | paste -sd, -)
  [ -z "$taken" ] || { echo "bench: ports $taken (of $1-$2) are in use: stop what listens there or set BENCH_BASE_PORT" >&2; exit 1; }
}

await_healthy() {  # await_healthy <port> <pid of the instance>, at most 60 s of tries (2 s each at most)
  for _ in $(seq 1 120); do
    kill -0 "$2" 2>/dev/null || { echo "bench: the instance for port $1 (pid $2) exited" >&2; return 1; }
    curl -sf --max-time 2 -o /dev/null "http://127.0.0.1:$1/observe/health" && return 0
    sleep 0.5
  done
  echo "bench: instance on port $1 did not become healthy" >&2
  return 1
}

# shuffled <word>...: the words in a random order, one per line. Each round of a benchmark takes
# its variants in a new random order: a fixed or rotated order keeps the same neighbours, so the
# machine's drift would favour some variants over others round after round.
shuffled() {
  shuf -e -- "$@"
}

# median_of <file> <column>: the median of that column's numbers (the mean of the two middle
# ones for an even count).
median_of() {
  sort -g -k"$2,$2" "$1" | awk -v c="$2" '{ v[NR] = $c }
    END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
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

# stop_all_sink_last: stop_all, but the sink (SINK_PID, started by start_sink and kept in pids)
# after the instances: their last export, on shutdown, reaches it and counts in its last line.
stop_all_sink_last() {
  local p others=()
  for p in "${pids[@]}"; do [ "$p" = "$SINK_PID" ] || others+=("$p"); done
  pids=("${others[@]+"${others[@]}"}")
  stop_all
  pids=("$SINK_PID")
  stop_all
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

# CPU time (ticks) the whole machine spent in interrupts: irq and softirq of /proc/stat (where
# the kernel accounts part of loopback's packet handling, charged to no process).
interrupt_ticks() {
  awk '$1 == "cpu" { print $7 + $8; exit }' /proc/stat
}

# measure <url> <pid of the instance serving it>: one wrk run; writes to stdout
#   "<req/s> <p99> <CPU µs per request> <of which export threads> <of which JVM threads>
#    <the request path's CPU µs per request>"
# where the request path is the instance, wrk and the kernel's interrupt work: what a request
# costs the CPU, which bounds throughput when the CPU is busy. Other processes (idle instances,
# the sink, anything else on the machine) are left out. Exits the script, saying so, when wrk
# counted answers other than 2xx/3xx or socket errors (timeouts included): wrk counts those in
# its requests and req/s, and leaves a latency over its timeout out of the percentiles.
measure() {
  local spent irq_before irq_after requests wrk_cpu TIMEFORMAT='%3U %3S'  # (for `time`: wrk's user and system seconds)
  cpu_ticks "$2" >"$WORK/threads.before"
  irq_before=$(interrupt_ticks)
  { time wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --timeout 10s --latency "$1" \
      >"$WORK/wrk.out" 2>"$WORK/wrk.err"; } 2>"$WORK/wrk.time"
  irq_after=$(interrupt_ticks)
  kill -0 "$2" 2>/dev/null || { echo "bench: the instance serving $1 (pid $2) exited: see its log" >&2; exit 1; }
  cpu_ticks "$2" >"$WORK/threads.after"
  if grep -Eq 'Non-2xx or 3xx responses|Socket errors' "$WORK/wrk.out"; then
    echo "bench: wrk on $1 had failed requests, which would count as throughput:" >&2
    grep -E 'Non-2xx or 3xx responses|Socket errors' "$WORK/wrk.out" >&2
    exit 1
  fi
  spent=$(cpu_split "$WORK/threads.before" "$WORK/threads.after")
  requests=$(awk '/requests in/ { print $1 }' "$WORK/wrk.out")
  wrk_cpu=$(awk '{ print $1 + $2 }' "$WORK/wrk.time")
  awk -v spent="$spent" -v irq=$((irq_after - irq_before)) -v wrk_s="$wrk_cpu" \
      -v hz="$(getconf CLK_TCK)" -v n="$requests" '
    BEGIN { split(spent, s) }
    /Requests\/sec/ { rps = $2 } $1 == "99%" { p99 = $2 }
    END {
      us = 1e6 / hz / n
      printf "%s %s %.0f %.0f %.0f %.0f\n", rps, p99, s[1] * us, s[2] * us, s[3] * us,
             (s[1] + irq) * us + wrk_s * 1e6 / n
    }' "$WORK/wrk.out"
}
