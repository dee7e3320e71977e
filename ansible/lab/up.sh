#!/usr/bin/env bash
# Boots the local lab: node1..node3 (LAB_HOSTS) as systemd-nspawn containers with systemd as
# PID 1, each in its own network namespace on the bridge $LAB_BRIDGE, reachable over SSH as root
# with $LAB_SSH_KEY; an apt cache proxy and the artifact mirror listen on the bridge address.
# Idempotent: a second run leaves running hosts alone; a host tree an earlier run left mounted
# with nothing running it is replaced by a fresh one. On failure it exits non-zero and leaves
# the cleanup to down.sh (make test's trap runs it). Settings: lab.env.
set -euo pipefail
# shellcheck source=lib/lab.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/lab.sh"

report_failure "run ansible/lab/down.sh to clean up"

# host_pids HOST: pids of what runs in the host's cgroups (its nspawn, its container) and in its
# network namespace (the lab's Cassandra on node2, say).
host_pids() {
  local r
  for r in $(cgroup_roots); do cgroup_pids "$r/$LAB_CGROUP_NAME/$1"; done
  ip netns pids "$(host_netns "$1")" 2>/dev/null || true
}

prepare_hosts() {
  local host root pids
  for host in $LAB_HOSTS; do
    ensure_host_network "$host"
    root=$(host_root "$host")
    # A running host keeps its tree as it is (Ansible may have changed any file since).
    if mountpoint -q "$root" && pid_alive "$(supervisor_pidfile "$host")" supervise.sh; then
      log "$host: running; its tree is left as it is"
      continue
    fi
    # Mounted, but no supervisor runs it: a killed run's tree (deployed, maybe); booting it would
    # pass for a fresh host. Replaced by a fresh one, unless what ran there still runs.
    if mountpoint -q "$root"; then
      pids=$(host_pids "$host" | sort -u | paste -sd' ' -)
      [[ -z $pids ]] || die "$host: its tree is mounted and processes of it still run (pids $pids)," \
        "but no supervisor: left by an earlier run; run ansible/lab/down.sh first"
      warn "$host: tree mounted but no supervisor runs it (left by an earlier run): a fresh tree replaces it"
      unmount_host_tree "$root"
    fi
    mount_host_tree "$host"
    configure_host_tree "$host"
  done
}

boot_hosts() {
  local host
  for host in $LAB_HOSTS; do start_host "$host"; done
}

print_summary() {
  local host
  log "lab is up (total $SECONDS s): ssh -i $LAB_SSH_KEY root@<address>"
  for host in $LAB_HOSTS; do printf '  %-8s %s\n' "$host" "$(lab_addr "$host")"; done
  printf '  %-8s http://%s:%s (apt proxy)\n' bridge "$LAB_BRIDGE_ADDR" "$LAB_APT_PROXY_PORT"
  printf '  %-8s http://%s:%s/ (%s)\n' mirror "$LAB_BRIDGE_ADDR" "$LAB_MIRROR_PORT" "$LAB_MIRROR_DIR"
}

main() {
  require_root
  mkdir -p "$LAB_STATE" "$LAB_CACHE/rootfs"
  run_stage "host packages" install_host_packages
  run_stage "archive keyring" check_archive_keyring
  run_stage "ssh key" ensure_ssh_key
  run_stage "bridge" ensure_bridge
  run_stage "apt proxy" start_apt_proxy
  run_stage "artifact mirror" start_artifact_mirror
  run_stage "base tree (debootstrap)" build_base_rootfs
  run_stage "host trees and network" prepare_hosts
  run_stage "boot" boot_hosts
  # shellcheck disable=SC2086 # LAB_HOSTS is a list
  run_stage "ssh ready" wait_hosts_ready "$LAB_BOOT_TIMEOUT" $LAB_HOSTS
  print_summary
}

main "$@"
