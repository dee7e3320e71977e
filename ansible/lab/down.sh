#!/usr/bin/env bash
# Stops the local lab and removes everything up.sh created at run time: Ansible's SSH connection
# masters to the hosts, containers (orderly poweroff, then kill), supervisors, the apt proxy, the
# artifact mirror, veths, network namespaces, the bridge, the hosts' overlay mounts and their
# changes, $LAB_STATE. Keeps the cached base tree, the apt cache and the artifacts. Safe to run
# when nothing is up.
# The logs of the run (containers' consoles, helpers) are kept in $LAB_CACHE/logs/last-run.
set -euo pipefail
# shellcheck source=lib/lab.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/lab.sh"

report_failure "something may be left; run it again"

stop_hosts() {
  local host
  # In parallel: each waits for its own container's poweroff.
  for host in $LAB_HOSTS; do stop_host "$host" & done
  wait
  # Whatever is left in the lab's cgroups (hosts of a run with other LAB_HOSTS, too).
  local r
  for r in $(cgroup_roots); do kill_cgroup "$r/$LAB_CGROUP_NAME"; done
}

# Also sweeps what a run with other LAB_HOSTS may have left (same prefix, same cache).
remove_network() {
  local host ns pids
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$LAB_NETNS_PREFIX" || true); do
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    if [[ -n $pids ]]; then
      warn "killing processes left in netns $ns: ${pids//$'\n'/ }"
      # shellcheck disable=SC2086 # a list of pids
      kill -KILL $pids 2>/dev/null || true
    fi
  done
  for host in $LAB_HOSTS; do remove_host_network "$host"; done
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$LAB_NETNS_PREFIX" || true); do
    ip netns del "$ns" || warn "could not delete network namespace $ns"
  done
  ! ip link show dev "$LAB_BRIDGE" >/dev/null 2>&1 || ip link del dev "$LAB_BRIDGE"
}

remove_host_trees() {
  local mnt host
  mounts_under "$LAB_CACHE/rootfs" | while read -r mnt; do unmount_host_tree "$mnt"; done
  for host in $LAB_HOSTS; do rm -rf "${LAB_CACHE:?}/rootfs/${host:?}"; done
}

keep_logs() {
  local dest="$LAB_CACHE/logs/last-run"
  compgen -G "$LAB_STATE/*.log" >/dev/null || return 0
  rm -rf "${dest:?}"
  mkdir -p "$dest"
  cp -a "$LAB_STATE"/*.log "$dest"/
  log "logs of this run: $dest"
}

report_leftovers() {
  local left=() r helpers
  ip netns list 2>/dev/null | grep -q "^$LAB_NETNS_PREFIX" && left+=("netns")
  ip link show dev "$LAB_BRIDGE" >/dev/null 2>&1 && left+=("bridge $LAB_BRIDGE")
  grep -qE " ($LAB_CACHE|$LAB_STATE)[/ ]" /proc/mounts && left+=("mounts")
  pgrep -f "systemd-nspawn .*--directory=$LAB_CACHE/rootfs/" >/dev/null && left+=("systemd-nspawn processes")
  [[ -z $(ss -Htn state established "dst $LAB_NET_PREFIX.0/24") ]] || left+=("connections to $LAB_NET_PREFIX.0/24")
  for r in $(cgroup_roots); do [[ ! -d $r/$LAB_CGROUP_NAME ]] || left+=("cgroup $r/$LAB_CGROUP_NAME"); done
  helpers=$(helper_daemons_left | paste -sd, -)
  [[ -z $helpers ]] || left+=("helper daemons: $helpers")
  ((${#left[@]} == 0)) || die "left behind: ${left[*]}"
  log "nothing left behind"
}

main() {
  require_root
  # Every step runs even when one before it failed: each removes what it can.
  run_stage_and_go_on "ssh masters" stop_ssh_masters "$LAB_NET_PREFIX"
  run_stage_and_go_on "stop hosts" stop_hosts
  run_stage_and_go_on "helper daemons" stop_helper_daemons
  run_stage_and_go_on "apt proxy backends" restore_apt_backends
  run_stage_and_go_on "host trees" remove_host_trees
  run_stage_and_go_on "network" remove_network
  run_stage_and_go_on "keep logs" keep_logs
  # The pid files in it are how a second down.sh finds what a failed step left running.
  ((${#LAB_FAILED_STAGES[@]} > 0)) || rm -rf "${LAB_STATE:?}"
  run_stage_and_go_on "check" report_leftovers
  ((${#LAB_FAILED_STAGES[@]} == 0)) || die "steps that failed: ${LAB_FAILED_STAGES[*]}"
}

main "$@"
