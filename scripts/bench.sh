#!/usr/bin/env bash
# Throughput, p99 latency and CPU time per request of `/` on local instances (loopback), traced
# and untraced, the same for `/chain` across three instances, and the resident memory of one
# instance, with the JVM options the app role gives the systemd unit. Prints figures; asserts
# nothing. Variants, each its own instances:
#   none       MODE=none: tracing off (three instances, `/` and `/chain`);
#   unsampled  tracing on, but the sampler records nothing (OTEL_TRACES_SAMPLER=always_off): the
#              cost of the tracing path itself (the service's tracing filter, context extraction,
#              non-recording spans, trace ids in the log lines);
#   sampled    one new trace in 1/BENCH_SAMPLE_RATIO recorded and exported (parentbased_traceidratio);
#   recorded   every span recorded, then dropped before export (a one-span queue and no endpoint),
#              which separates the cost of recording spans from the cost of exporting them;
#   traced     every span recorded and exported over OTLP/HTTP to a local sink (three instances,
#              `/` and `/chain`);
#   none-again a second MODE=none instance: it differs from the first in nothing, so the spread
#              of its ratio to MODE=none shows how large a difference the noise alone makes;
#   other      only when BENCH_OTHER_JAR names another build of the app: traced as `traced`, but
#              from that jar, to compare a change (scripts/bench-handwritten.sh uses it).
# The speed of this shared 2-core VM drifts by up to 1.5x within minutes, which swamps the
# differences measured here when each variant gets one long run in turn. So every instance of
# every variant is started (and warmed up) first, then `/` is measured in short runs that take
# the variants in turn, BENCH_ROUNDS times, each round in a new random order; each variant's
# throughput is compared with MODE=none's of the same round, and the medians are reported. A run
# in which wrk saw failed requests stops the benchmark (they would count as throughput).
# Last, scripts/SpanCostFloor.java measures what the OpenTelemetry SDK alone (the service's own
# configuration, no server, no Helidon, no logging) spends per span, and the same span made by
# instrumentation-api's Instrumenter as the service makes it, and from those and the CPU time a
# request to `/` takes in MODE=none (app-a, wrk and the kernel's interrupt work), the most that
# traced throughput can reach.
#   BENCH_ROUNDS=7 BENCH_DURATION=10s BENCH_CONNECTIONS=16 BENCH_SAMPLE_RATIO=0.1 \
#   BENCH_FLOOR_SPANS=200000 scripts/bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${BENCH_ROUNDS:-7}
DURATION=${BENCH_DURATION:-10s}
CONNECTIONS=${BENCH_CONNECTIONS:-16}
SAMPLE_RATIO=${BENCH_SAMPLE_RATIO:-0.1}
BASE_PORT=${BENCH_BASE_PORT:-18100}
FLOOR_SPANS=${BENCH_FLOOR_SPANS:-200000}
# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh
bench_check_settings
bench_check BENCH_SAMPLE_RATIO "$SAMPLE_RATIO" '^(0?\.[0-9]*[1-9][0-9]*|1(\.0*)?)$' "a ratio above 0, at most 1, e.g. 0.1"
bench_check BENCH_FLOOR_SPANS "$FLOOR_SPANS" '^[1-9][0-9]{3,7}$' "1000 to 99999999 spans"
SINK_PORT=$((BASE_PORT + 98))
CLOSED_PORT=$((BASE_PORT + 99))  # nothing listens here: the endpoint of variants that export nothing
OTHER_JAR=${BENCH_OTHER_JAR:-}
VARIANTS=(none unsampled sampled recorded traced none-again)
if [ -n "$OTHER_JAR" ]; then
  [ -f "$OTHER_JAR" ] || { echo "bench: BENCH_OTHER_JAR $OTHER_JAR is not a file" >&2; exit 1; }
  VARIANTS+=(other)
fi

JVM_OPTS=${BENCH_JVM_OPTS:-$(role_jvm_opts)}

pids=()
WORK=$(mktemp -d)
trap cleanup EXIT  # bench-lib.sh: stops the processes in pids, removes WORK
bench_tools
require_free_ports "$BASE_PORT" $((BASE_PORT + 99))
scripts/build-app.sh  # the working tree's code, never an older jar

# Variant number k (0-6) has its instances on ports BASE_PORT + 10k + 1, + 2, + 3.
port_of() {  # port_of <variant> <instance 1-3>
  local k
  for k in "${!VARIANTS[@]}"; do
    if [ "${VARIANTS[k]}" = "$1" ]; then echo $((BASE_PORT + 10 * k + $2)); return; fi
  done
}

start_instance() {  # start_instance <variant> <instance 1-3> -> pid on stdout
  local variant=$1 i=$2 tracing jar=app/target/app.jar
  local names=([1]=app-a [2]=app-b [3]=app-c)
  mapfile -t tracing < <(variant_tracing "$variant")
  if [ "$variant" = other ]; then jar=$OTHER_JAR; fi
  # shellcheck disable=SC2086  # JVM_OPTS is a list of options
  env -i PATH="$PATH" "${tracing[@]}" OTEL_SERVICE_NAME="${names[i]}" EXPOSE_PORT="$(port_of "$variant" "$i")" \
      TARGET_ONE_HOST="127.0.0.1:$(port_of "$variant" 2)" TARGET_TWO_HOST="127.0.0.1:$(port_of "$variant" 3)" \
      "$JAVA_HOME/bin/java" $JVM_OPTS -jar "$jar" >"$WORK/$variant-${names[i]}.log" 2>&1 &
  echo $!
}

start_sink "$SINK_PORT" "$WORK/sink.err"
pids+=("$SINK_PID")
instances_of() {  # instances_of <variant>: app-a only (`/`), or all three for /chain
  case "$1" in none | traced) echo 1 2 3 ;; *) echo 1 ;; esac
}
declare -A instance_pid  # "<variant>/<instance>" -> pid; app-a is instance 1
for variant in "${VARIANTS[@]}"; do
  for i in $(instances_of "$variant"); do
    pid=$(start_instance "$variant" "$i"); pids+=("$pid")
    instance_pid[$variant/$i]=$pid
  done
done
for variant in "${VARIANTS[@]}"; do
  for i in $(instances_of "$variant"); do await_healthy "$(port_of "$variant" "$i")" "${instance_pid[$variant/$i]}"; done
done
for variant in "${VARIANTS[@]}"; do  # JIT warm-up
  wrk -t2 -c"$CONNECTIONS" -d10s "http://127.0.0.1:$(port_of "$variant" 1)/" >/dev/null
done

for round in $(seq 1 "$ROUNDS"); do
  mapfile -t order < <(shuffled "${VARIANTS[@]}")
  echo "== round $round: ${order[*]}"
  for variant in "${order[@]}"; do
    # (not in a command substitution: measure exits the script when a run had failed requests)
    measure "http://127.0.0.1:$(port_of "$variant" 1)/" "${instance_pid[$variant/1]}" >"$WORK/round-$round.$variant"
    read -r rps p99 cpu export_cpu jvm_cpu path_cpu <"$WORK/round-$round.$variant"
    printf '   %-9s / %9s req/s, p99 %8s, %3s µs CPU of app-a per request (%s in span export threads, %s in GC and JIT threads), %s µs with wrk and interrupts\n' \
           "$variant" "$rps" "$p99" "$cpu" "$export_cpu" "$jvm_cpu" "$path_cpu"
  done
  for variant in "${VARIANTS[@]}"; do
    read -r rps _ <"$WORK/round-$round.$variant"
    read -r none_rps _ <"$WORK/round-$round.none"
    cat "$WORK/round-$round.$variant" >>"$WORK/$variant.root"
    awk -v x="$rps" -v n="$none_rps" 'BEGIN { printf "%.1f\n", 100 * x / n }' >>"$WORK/$variant.percent"
  done
done
rss_of_app_a() {  # rss_of_app_a <variant>: MiB
  awk '/VmRSS/ { printf "%d\n", $2 / 1024 }' "/proc/${instance_pid[$1/1]}/status"
}
# Before /chain, which only two variants run (its HTTP client and connections add memory).
for variant in "${VARIANTS[@]}"; do rss_of_app_a "$variant" >"$WORK/$variant.rss"; done
for variant in none traced; do
  measure "http://127.0.0.1:$(port_of "$variant" 1)/chain" "${instance_pid[$variant/1]}" >"$WORK/chain.measured"
  read -r rps p99 _ <"$WORK/chain.measured"
  echo "$rps $p99 $(rss_of_app_a "$variant")" >"$WORK/$variant.chain"
  echo "== /chain, $variant: $rps req/s, p99 $p99"
done
# Stop the instances, then the sink, so that the logs hold the batch processors' last words and
# their last export reaches the sink: a span dropped (queue full) was never encoded or sent, and a
# failed export was never received, so a figure with either flatters tracing.
stop_all_sink_last
for variant in sampled traced other; do
  [ -f "$WORK/$variant-app-a.log" ] || continue
  cat "$WORK/$variant"-app-?.log | sed -n 's/.*dropped \([0-9]*\) span.*/\1/p' |
    awk '{ s += $1 } END { print s + 0 }' >"$WORK/$variant.dropped"
  cat "$WORK/$variant"-app-?.log | grep -c 'Failed to export' >"$WORK/$variant.failed" || true
done
echo "== $(tail -1 "$WORK/sink.err")"

# The SDK alone, on a sink of its own, with nothing else running.
start_sink "$SINK_PORT" "$WORK/floor-sink.err"
pids+=("$SINK_PID")
echo "== the OpenTelemetry SDK alone (scripts/SpanCostFloor.java), $FLOOR_SPANS spans per run, $ROUNDS rounds"
# shellcheck disable=SC2086  # JVM_OPTS is a list of options
"$JAVA_HOME/bin/java" $JVM_OPTS -cp app/target/app.jar scripts/SpanCostFloor.java \
    "http://127.0.0.1:$SINK_PORT/v1/traces" "http://127.0.0.1:$CLOSED_PORT/v1/traces" "$FLOOR_SPANS" "$ROUNDS" \
    >"$WORK/floor" 2>"$WORK/floor.err" || { cat "$WORK/floor.err" >&2; exit 1; }
stop_all

median_row() {  # median_row <file>: the row whose first column (req/s) is the median (for an even count, the lower middle one)
  sort -g -k1,1 "$1" | awk '{ rows[NR] = $0 } END { print rows[int((NR + 1) / 2)] }'
}

declare -A rps p99 cpu export_cpu jvm_cpu path_cpu floor title
title=([none]="MODE=none" [unsampled]="unsampled (always_off)" [sampled]="sampled ($SAMPLE_RATIO)"
       [recorded]="recorded, not exported" [traced]="traced (OTLP/HTTP)" [none-again]="MODE=none again"
       [other]="traced, BENCH_OTHER_JAR")
for v in "${VARIANTS[@]}"; do
  read -r "rps[$v]" "p99[$v]" "cpu[$v]" "export_cpu[$v]" "jvm_cpu[$v]" "path_cpu[$v]" < <(median_row "$WORK/$v.root")
done
row() {  # row <label> <function printing the cell of the variant it is given>
  local line="| $1 |" v
  for v in "${VARIANTS[@]}"; do line+=" $("$2" "$v") |"; done
  echo "$line"
}
root_cell() { echo "${rps[$1]} req/s, p99 ${p99[$1]}"; }
median_and_range() {  # median_and_range <file of numbers>
  printf '%.1f %% (%s)' "$(median_of "$1" 1)" "$(sort -g "$1" | sed -n '1p;$p' | paste -sd- -)"
}
percent_cell() { median_and_range "$WORK/$1.percent"; }
cpu_cell() { echo "${cpu[$1]} µs"; }
export_cell() { echo "${export_cpu[$1]} µs"; }
jvm_cell() { echo "${jvm_cpu[$1]} µs"; }
path_cell() { echo "${path_cpu[$1]} µs"; }
rest_cell() { echo "$((cpu[$1] - export_cpu[$1] - jvm_cpu[$1])) µs"; }
title_cell() { echo "${title[$1]}"; }
chain_cell() {  # only the variants that ran all three instances measured /chain
  local r p
  local m
  if [ -f "$WORK/$1.chain" ]; then read -r r p m <"$WORK/$1.chain"; echo "$r req/s, p99 $p (RSS after: $m MiB)"; else echo -; fi
}
rss_cell() { echo "$(cat "$WORK/$1.rss") MiB"; }
dropped_cell() { if [ -f "$WORK/$1.dropped" ]; then echo "$(cat "$WORK/$1.dropped") / $(cat "$WORK/$1.failed")"; else echo -; fi; }

echo
echo "Benchmark ($(nproc) cores, $(awk '/MemTotal/ {printf "%d GiB", $2/1048576}' /proc/meminfo)," \
     "$("$JAVA_HOME/bin/java" -version 2>&1 | head -1), wrk -c$CONNECTIONS -d$DURATION, median of $ROUNDS rounds," \
     "JVM options $JVM_OPTS)"
row endpoint title_cell
printf '|---|%s\n' "$(printf -- '---|%.0s' "${VARIANTS[@]}")"
row "/" root_cell
row "/ relative to MODE=none in the same round (median, range)" percent_cell
row "CPU of app-a per request to /" cpu_cell
row "... with wrk and interrupts (the request path)" path_cell
row "... in span export threads" export_cell
row "... in GC and JIT threads" jvm_cell
row "... in request handling (the rest)" rest_cell
row "/chain" chain_cell
row "RSS of app-a after the / runs" rss_cell
row "spans dropped by the batch processors (queue full) / failed export lines" dropped_cell
echo "goals: traced >= 85 % of MODE=none (issue 18) on /; RSS <= 150 MiB"

while read -r variant micros; do floor[$variant]=$micros; done <"$WORK/floor"
floor_exports=$(sed -n 's/^otlp-sink: \([0-9]*\) export requests.*/\1/p' "$WORK/floor-sink.err")
echo
echo "The OpenTelemetry SDK alone, configured as the service configures it, with no server, no Helidon and no"
echo "logging, spent per span (CPU time of its whole process, median of $ROUNDS runs):" \
     "${floor[unsampled]} µs unsampled, ${floor[recorded]} µs recorded, ${floor[exported]} µs recorded and exported"
echo "(the sink received $floor_exports exports of the ${floor[batches]} batches of 512 spans made;" \
     "fewer would flatter the last figure)."
echo "A request to / in MODE=none took ${path_cpu[none]} µs of CPU (app-a, wrk and the kernel's interrupt work;"
echo "median round). A traced request costs at least the SDK's ${floor[exported]} µs more, so with the CPU busy, traced"
awk -v b="${path_cpu[none]}" -v e="${floor[exported]}" \
    'BEGIN { printf "throughput can reach at most %d / (%d + %.1f) = %.1f %% of MODE=none'"'"'s, before the service'"'"'s tracing filter and the log lines add theirs.\n", b, b, e, 100 * b / (b + e) }'
echo "Made by OpenTelemetry's Instrumenter as the service's ServerTracing builds it (the same HTTP server conventions,"
echo "over a map of wrk's headers instead of Helidon's request), a recorded and exported span cost ${floor[instrumented]} µs:"
awk -v b="${path_cpu[none]}" -v e="${floor[instrumented]}" \
    'BEGIN { printf "at most %d / (%d + %.1f) = %.1f %% with the Instrumenter, before Helidon'"'"'s request objects and the log lines add theirs.\n", b, b, e, 100 * b / (b + e) }'

