#!/usr/bin/env bash
# Keeps one lab host running: boots its tree with systemd-nspawn (systemd as PID 1) and boots it
# again when the container asks for a reboot (nspawn exits with 133), so `systemctl reboot` on a
# lab host behaves like on a VM. Started by up.sh; SIGTERM (down.sh) powers the container off.
# Usage: supervise.sh HOST
set -euo pipefail
# shellcheck source-path=SCRIPTDIR/..
# shellcheck source=lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

host=$1
root=$(host_root "$host")
child=
stopping=0

forward_stop() {
  stopping=1
  # nspawn turns SIGTERM into the container's orderly poweroff (SIGRTMIN+3 to its systemd).
  [[ -z $child ]] || kill -TERM "$child" 2>/dev/null || true
}
trap forward_stop TERM INT HUP
enter_host_cgroup "$host"

# Why these options:
# --register=no --keep-unit  the host has no systemd/D-Bus: do not register with machined and
#                            do not ask for a scope unit (without them nspawn fails at start).
# --network-namespace-path   the namespace up.sh prepared (veth host0 with the host's address).
# --resolv-conf=off --timezone=off --link-journal=no
#                            leave the tree's files alone and do not touch the host's journal.
# --console=read-only        the boot messages go to this supervisor's log; no one types there.
# User namespaces stay off (the default for -D): the tree is root-owned and Ansible runs as root.
# Capabilities: nspawn's default set, minus what the host's own bounding set lacks (on the CI
# machines CAP_SYS_RESOURCE: nspawn says "Some capabilities will not be set"). So the containers
# cannot raise hard rlimits above the host's (e.g. 20000 open files); systemd clamps a unit's
# LimitNOFILE= to that instead of failing. Hardened units (ProtectSystem=, PrivateTmp=, ...)
# work as on a VM. Plus CAP_NET_ADMIN, which nspawn grants with --private-network but not with
# --network-namespace-path: the firewall role loads its nftables table with it. It acts on the
# container's own network namespace only (node2's holds the lab's Cassandra too, so node2's
# rules filter it as they would on a VM).
# The host mounts cgroup v1 controllers plus cgroup2 at /sys/fs/cgroup/unified ("hybrid");
# nspawn hands the container a cgroup2 hierarchy of its own (SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1)
# because trixie's systemd no longer boots on cgroup v1. It is rooted at the cgroup this script
# moved itself into (see enter_host_cgroup), so each container has a cgroup tree of its own.
boot_once() {
  SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 systemd-nspawn \
    --register=no --keep-unit --boot --directory="$root" --machine="$host" \
    --network-namespace-path="/run/netns/$(host_netns "$host")" \
    --resolv-conf=off --timezone=off --link-journal=no --console=read-only \
    --capability=CAP_NET_ADMIN --setenv=SYSTEMD_COLORS=0 &
  child=$!
  echo "$child" >"$LAB_STATE/$host.nspawn.pid"
  local rc=0
  while :; do
    rc=0
    wait "$child" || rc=$?
    kill -0 "$child" 2>/dev/null || break
  done
  child=
  return "$rc"
}

while :; do
  log "$host: systemd-nspawn starts"
  rc=0
  boot_once || rc=$?
  # nspawn leaves nothing behind when it ends normally; if it was killed, its container's
  # processes are still in the payload cgroup: end them before exiting or booting again.
  for r in $(cgroup_roots); do kill_cgroup "$r/$LAB_CGROUP_NAME/$host/payload"; done
  if ((stopping)); then
    log "$host: stopped (nspawn exit $rc)"
    exit 0
  fi
  if ((rc == 133)); then
    log "$host: the container asked to reboot; booting it again"
    sleep 1
    continue
  fi
  log "$host: systemd-nspawn exited with $rc; giving up"
  exit "$rc"
done
