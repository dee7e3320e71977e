# Helpers shared by the benchmark scripts (sourced from the project root; not run on its own).
# The scripts keep the processes they start in the array pids and their files in WORK.

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
  JAVA_HOME=$(scripts/java-home.sh)
}
