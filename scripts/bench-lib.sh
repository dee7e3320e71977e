# Helpers shared by the benchmark scripts (sourced from the project root; not run on its own).

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
