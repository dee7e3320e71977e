#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# make vagrant-test: README's quick start, `vagrant up` with vagrant/Vagrantfile and the vagrant
# inventory, run for real with the LXC provider on this Linux host, then checked and destroyed:
#   1. host-setup.sh (lxc-net, the private network's bridge, apt-cacher-ng), box-build.sh (cached)
#   2. the lab's Go-built Jaeger, Collector and Prometheus (ansible/lab/artifacts/build.sh, cached),
#      served on 127.0.0.1 only: the roles download on the controller
#   3. `vagrant up --provider=lxc --no-provision`, apt in each container through the cache, then
#      `vagrant provision` (ansible/site.yml, limit all, the vagrant inventory)
#   4. scripts/trace.sh, as README goes on: GET /chain on 192.168.56.11:8000 with a known
#      traceparent; the trace must reach jaeger-query (192.168.56.11:16686) with at least 7 spans
#      of app-a, app-b and app-c
#   5. always, also after a failure or on INT/TERM/HUP: Cassandra stopped, `vagrant destroy -f`,
#      host-teardown.sh, and a check that no container, bridge, nft table, dnsmasq, network
#      namespace or helper is left and ip_forward is as before.
# What differs from a user's `vagrant up` is only what this machine cannot download, passed
# through VAGRANT_ANSIBLE_EXTRA_VARS (see write_extra_vars). Needs root. Settings: lxc.env, and
# VLXC_PROVISION_TIMEOUT (seconds, default 2400), VLXC_TRACE_WAIT (seconds, default 120).
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=../../scripts/session-lib.sh
. "$VLXC_ROOT/scripts/session-lib.sh"  # stop_session

: "${VLXC_PROVISION_TIMEOUT:=2400}"
: "${VLXC_TRACE_WAIT:=120}"
# The test's own Vagrant home: the box it builds does not land in the user's ~/.vagrant.d.
export VAGRANT_HOME="$VLXC_CACHE/vagrant.d"
export VAGRANT_CHECKPOINT_DISABLE=1 VAGRANT_NO_COLOR=1
EXTRA_VARS="$VLXC_STATE/extra-vars.yml"
export VAGRANT_ANSIBLE_EXTRA_VARS="$EXTRA_VARS"   # read by the Vagrantfile
MIRROR_URL="http://127.0.0.1:$VLXC_MIRROR_PORT"
CHILD=""           # pid (= session) of the long command running, for a signal
RESULTS=()

# run_bounded SECONDS COMMAND...: runs a long command in a session of its own (so that a signal
# stops all of it) with a time bound, and waits for it.
run_bounded() {
  local seconds=$1 rc=0
  shift
  setsid timeout -k 20 "$seconds" "$@" </dev/null &
  CHILD=$!
  wait "$CHILD" || rc=$?
  CHILD=""
  ((rc != 124)) || log "timed out after $seconds s: $*" >&2
  return "$rc"
}

# step NAME COMMAND...: run_stage, with its time kept for the summary.
step() {
  local start=$SECONDS
  run_stage "$@"
  RESULTS+=("$(printf '%-28s %5d s' "$1" $((SECONDS - start)))")
}

set_up_host() { run_bounded 900 "$VLXC_DIR/host-setup.sh"; }
build_box() { run_bounded 1200 "$VLXC_DIR/box-build.sh"; }
build_artifacts() { LAB_CACHE="$VLXC_LAB_CACHE" run_bounded 3600 "$VLXC_ROOT/ansible/lab/artifacts/build.sh"; }

serve_artifacts() {
  start_daemon artifact-mirror http.server python3 -m http.server --bind 127.0.0.1 --directory "$LAB_MIRROR_DIR" \
    "$VLXC_MIRROR_PORT"
  wait_for_port 127.0.0.1 "$VLXC_MIRROR_PORT" 30 || die "artifact mirror did not start"
  log "artifact mirror $MIRROR_URL/ serves $LAB_MIRROR_DIR"
}

# The only variables that differ from a user's run: download base URLs (the lab's builds of the
# same releases, same archive names and checksum files), Cassandra run outside the hosts, as in
# the lab, and the logs topology off (Loki, Promtail, Grafana: no download, not built here).
write_extra_vars() {
  cat >"$EXTRA_VARS" <<VARS
# make vagrant-test (vagrant/lxc/vagrant-test.sh): what differs from a user's vagrant up
otel_collector_download_base_url: $MIRROR_URL/open-telemetry/opentelemetry-collector-releases/releases/download
jaeger_download_base_url: $MIRROR_URL/jaegertracing/jaeger/releases/download
prometheus_download_base_url: $MIRROR_URL/prometheus/prometheus/releases/download
cassandra_managed: false
cassandra_external_start_command: $VLXC_DIR/cassandra.sh start
logs_enabled: false
VARS
  sed 's/^/  /' "$EXTRA_VARS"
}

# vagrant_cmd SECONDS ARGS...: vagrant in vagrant/, as README says to run it.
vagrant_cmd() {
  local seconds=$1
  shift
  run_bounded "$seconds" env -C "$VLXC_ROOT/vagrant" vagrant "$@"
}

vagrant_up() { vagrant_cmd 900 up --provider=lxc --no-provision; }

# apt in the containers through host-setup.sh's apt-cacher-ng (a user's hosts reach Debian).
apt_through_cache() {
  local node
  for node in "${VLXC_NODES[@]}"; do
    echo "Acquire::http::Proxy \"http://$VLXC_BRIDGE_ADDR:$VLXC_APT_PROXY_PORT\";" |
      lxc-attach -n "$(vlxc_container "$node")" -- tee /etc/apt/apt.conf.d/01vagrant-test-proxy >/dev/null
    log "$node: apt through http://$VLXC_BRIDGE_ADDR:$VLXC_APT_PROXY_PORT"
  done
}

# Vagrant's Ansible provisioner runs ansible-playbook from PATH: the project's venv.
vagrant_provision() {
  local venv_bin
  venv_bin=$(LAB_CACHE="$VLXC_LAB_CACHE" "$VLXC_ROOT/scripts/venv.sh" | tail -1)
  PATH="$venv_bin:$PATH"
  vagrant_cmd "$VLXC_PROVISION_TIMEOUT" provision
}

# README's next step, scripts/trace.sh (its defaults are the Vagrant addresses): GET /chain with a
# fresh traceparent, then the whole trace from jaeger-query; it must hold spans of every app.
check_trace() {
  local out line spans
  # Into a file, not $(...): run_bounded must set CHILD in this shell, for tear_down to stop it.
  run_bounded $((VLXC_TRACE_WAIT + 90)) "$VLXC_ROOT/scripts/trace.sh" -n -w "$VLXC_TRACE_WAIT" \
    >"$VLXC_STATE/trace.out" || die "scripts/trace.sh failed: $(cat "$VLXC_STATE/trace.out")"
  out=$(<"$VLXC_STATE/trace.out")
  printf '%s\n' "$out"
  line=$(grep -E '^trace [0-9a-f]{32}: [0-9]+ spans of ' <<<"$out") || die "scripts/trace.sh printed no trace"
  spans=${line#*: }
  spans=${spans%% *}
  if [[ $line != *"app-a, app-b, app-c"* ]] || ((spans < 7)); then
    die "expected at least 7 spans of app-a, app-b and app-c: $line"
  fi
  log "${line%%:*} in jaeger-query: ${line#*: }"
}

# Everything below runs on every exit; each part goes on after a failure of the one before.
tear_down() {
  local rc=$? failed=0 start=$SECONDS
  trap - EXIT
  # Ignored, not reset: a second signal must not cut the clean-up short, and the commands it
  # starts inherit the ignoring.
  trap '' INT TERM HUP
  stop_child
  log "==> tear down (test exit $rc)"
  "$VLXC_DIR/cassandra.sh" stop || failed=1
  stop_ssh_masters "$VLXC_NET_PREFIX" || failed=1
  vagrant_cmd 300 destroy -f || failed=1
  destroy_left_containers || failed=1
  # The name cassandra.sh gave node2's network namespace.
  ip netns list | awk '/^vlxc-/ {print $1}' | xargs -r -n1 ip netns del || failed=1
  "$VLXC_DIR/host-teardown.sh" || failed=1
  check_nothing_left || failed=1
  RESULTS+=("$(printf '%-28s %5d s' "tear down" $((SECONDS - start)))")
  printf '%s\n' "${RESULTS[@]}"
  if ((rc == 0 && failed == 0)); then
    log "vagrant-test passed in $SECONDS s"
  else
    log "vagrant-test FAILED (test exit $rc, tear down $( ((failed)) && echo failed || echo ok)) after $SECONDS s" >&2
    ((rc != 0)) || rc=1
  fi
  exit "$rc"
}

# The long command of an interrupted step: TERM to its session (vagrant then cleans up what it
# was doing), KILL to what is left after 30 s.
stop_child() {
  [[ -z $CHILD ]] || stop_session "$CHILD" 30
}

# Containers `vagrant destroy` left: one a stopped `vagrant up` was creating (Vagrant has no id
# for it yet), or one it failed to halt (a boot cut short). Destroyed by name; then the state of a
# machine whose container is gone is removed, as a destroy that works removes it, so that the
# next run does not refuse to start. (main refuses to start when machine state exists: what is
# here was made by this run.)
destroy_left_containers() {
  local node name id
  for node in "${VLXC_NODES[@]}"; do
    name=$(vlxc_container "$node")
    if [[ -e /var/lib/lxc/$name ]]; then
      log "destroying container $name, left by vagrant destroy"
      lxc-stop -k -n "$name" 2>/dev/null || true
      lxc-destroy -f -n "$name" || return 1
    fi
    id=$VLXC_ROOT/vagrant/.vagrant/machines/$node/lxc/id
    if [[ -e $id && $(<"$id") == "$name" ]]; then
      log "removing the state of machine $node (its container $name is gone)"
      rm -rf "$VLXC_ROOT/vagrant/.vagrant/machines/$node/lxc"
    fi
  done
}

check_nothing_left() {
  local left=() node
  for node in "${VLXC_NODES[@]}"; do
    [[ ! -e /var/lib/lxc/$(vlxc_container "$node") ]] || left+=("container $(vlxc_container "$node")")
    [[ ! -e $VLXC_ROOT/vagrant/.vagrant/machines/$node/lxc/id ]] || left+=("vagrant machine $node")
  done
  ip netns list | grep -q '^vlxc-' && left+=("netns vlxc-*")
  [[ -z $(ss -Htn state established "dst $VLXC_NET_PREFIX.0/24") ]] || left+=("connections to $VLXC_NET_PREFIX.0/24")
  [[ ! -d $VLXC_STATE ]] || left+=("$VLXC_STATE")
  [[ -z $(mounts_under "$VLXC_CACHE") ]] || left+=("mounts under $VLXC_CACHE")
  if [[ -s $VLXC_CACHE/ip_forward.before && $(<"$VLXC_CACHE/ip_forward.before") != $(</proc/sys/net/ipv4/ip_forward) ]]; then
    left+=("ip_forward $(</proc/sys/net/ipv4/ip_forward), was $(<"$VLXC_CACHE/ip_forward.before")")
  fi
  ((${#left[@]} == 0)) || { log "left behind: ${left[*]}" >&2; return 1; }
  rm -f "$VLXC_CACHE/ip_forward.before"
  log "nothing left behind: no container, bridge, nft table, dnsmasq, netns, mount; ip_forward $(</proc/sys/net/ipv4/ip_forward)"
}

main() {
  ((EUID == 0)) || die "needs root (LXC containers, bridges)"
  # Its tear down destroys the Vagrantfile's machines: never those a user already has.
  ! compgen -G "$VLXC_ROOT/vagrant/.vagrant/machines/*/*/id" >/dev/null ||
    die "machines of vagrant/Vagrantfile exist already ($(cd "$VLXC_ROOT/vagrant" &&
      compgen -G ".vagrant/machines/*/*/id" | cut -d/ -f3,4 | tr '\n' ' ')): destroy them first"
  local node
  for node in "${VLXC_NODES[@]}"; do
    [[ ! -e /var/lib/lxc/$(vlxc_container "$node") ]] ||
      die "container $(vlxc_container "$node") exists already (lxc-destroy -f -n $(vlxc_container "$node"))"
  done
  mkdir -p "$VLXC_CACHE"
  cat /proc/sys/net/ipv4/ip_forward >"$VLXC_CACHE/ip_forward.before"
  trap tear_down EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  trap 'exit 129' HUP
  step "host set-up" set_up_host
  step "box (cached)" build_box
  step "artifacts (cached)" build_artifacts
  step "artifact mirror" serve_artifacts
  step "extra vars" write_extra_vars
  step "vagrant up --no-provision" vagrant_up
  step "apt through the cache" apt_through_cache
  step "vagrant provision" vagrant_provision
  step "trace in jaeger-query" check_trace
}

main "$@"
