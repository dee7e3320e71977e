#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Undoes host-setup.sh: stops apt-cacher-ng and puts back the backends_debian it rewrote, runs
# `lxc-net stop` (lxcbr0, dnsmasq, its nft tables) when the set-up started it (an lxc-net that was
# up before, the packaged service's on a host with systemd, is left as it is, and so are the
# containers on it), deletes the private bridge, restores ip_forward, unmounts what an interrupted
# box build left mounted in its tree, removes $VLXC_STATE.
# Keeps the caches (box, apt cache). Refuses while containers of the Vagrantfile still run:
# `vagrant destroy -f` first. Safe to run when nothing is set up; every step runs even after one
# that failed, and the last one checks that nothing is left.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=../../ansible/lab/lib/rootfs.sh
. "$VLXC_ROOT/ansible/lab/lib/rootfs.sh"  # unmount_under

trap 'rc=$?; ((rc == 0)) || log "host-teardown.sh failed (exit $rc); something may be left: run it again" >&2' EXIT

running_containers() {
  local node
  for node in "${VLXC_NODES[@]}"; do
    lxc-info -s -H -n "$(vlxc_container "$node")" 2>/dev/null | grep -qx RUNNING &&
      vlxc_container "$node"
  done
  return 0
}

# Host ends of the veth pairs still enslaved to BRIDGE (their containers are gone, else refused).
bridge_ports() {
  if [[ -d /sys/class/net/$1/brif ]]; then ls "/sys/class/net/$1/brif"; fi
}

stop_lxc_net() {
  local port
  if [[ -f $VLXC_STATE/lxc-net.started ]]; then
    # lxc-net stop leaves lxcbr0 in place while ports are attached.
    for port in $(bridge_ports lxcbr0); do ip link del dev "$port" 2>/dev/null || true; done
    /usr/libexec/lxc/lxc-net stop
    rm -f "$VLXC_STATE/lxc-net.started"
    log "lxc-net stopped"
  elif [[ -f /run/lxc/network_up ]]; then
    log "lxc-net was up before host-setup.sh: left running"
  fi
}

remove_bridge() {
  local port
  for port in $(bridge_ports "$VAGRANT_LXC_BRIDGE"); do ip link del dev "$port" 2>/dev/null || true; done
  ! ip link show dev "$VAGRANT_LXC_BRIDGE" >/dev/null 2>&1 || ip link del dev "$VAGRANT_LXC_BRIDGE"
}

restore_ip_forward() {
  if [[ -s $VLXC_STATE/ip_forward ]]; then
    cat "$VLXC_STATE/ip_forward" >/proc/sys/net/ipv4/ip_forward
    rm -f "$VLXC_STATE/ip_forward"
  fi
  log "ip_forward is $(</proc/sys/net/ipv4/ip_forward)"
}

keep_logs() {
  compgen -G "$VLXC_STATE/*.log" >/dev/null || return 0
  rm -rf "$VLXC_CACHE/logs/last-run"
  mkdir -p "$VLXC_CACHE/logs/last-run"
  cp -a "$VLXC_STATE"/*.log "$VLXC_CACHE/logs/last-run/"
  log "logs of this run: $VLXC_CACHE/logs/last-run"
}

# What host-setup.sh (and a run of the Vagrantfile) could leave behind.
report_leftovers() {
  local left=() helpers
  [[ -z $(running_containers) ]] || left+=("containers $(running_containers | tr '\n' ' ')")
  if [[ -f $VLXC_STATE/lxc-net.started || ! -f /run/lxc/network_up ]]; then
    ip link show dev lxcbr0 >/dev/null 2>&1 && left+=("bridge lxcbr0")
    nft list table inet lxc >/dev/null 2>&1 && left+=("nft table inet lxc")
    nft list table ip lxc >/dev/null 2>&1 && left+=("nft table ip lxc")
    pgrep -f 'dnsmasq .*--interface=lxcbr0' >/dev/null && left+=("dnsmasq of lxcbr0")
  fi
  ip link show dev "$VAGRANT_LXC_BRIDGE" >/dev/null 2>&1 && left+=("bridge $VAGRANT_LXC_BRIDGE")
  [[ -z $(mounts_under "$VLXC_CACHE") ]] || left+=("mounts under $VLXC_CACHE")
  # A pid file is left only where stop_daemon failed; helper_daemons_left also finds those whose
  # pid files are gone.
  compgen -G "$(daemon_dir)/*.pid" >/dev/null && left+=("pid files of helper daemons ($(daemon_dir))")
  helpers=$(helper_daemons_left | paste -sd, -)
  [[ -z $helpers ]] || left+=("helper daemons: $helpers")
  ((${#left[@]} == 0)) || die "left behind: ${left[*]}"
  log "nothing left behind (ip_forward $(</proc/sys/net/ipv4/ip_forward))"
}

main() {
  ((EUID == 0)) || die "needs root"
  local running
  running=$(running_containers)
  [[ -z $running ]] || die "containers still running: ${running//$'\n'/ } (cd vagrant && vagrant destroy -f)"
  run_stage_and_go_on "helper daemons" stop_helper_daemons
  run_stage_and_go_on "apt proxy backends" restore_apt_backends
  run_stage_and_go_on "lxc-net" stop_lxc_net
  run_stage_and_go_on "private network bridge" remove_bridge
  run_stage_and_go_on "ip_forward" restore_ip_forward
  # A box build stopped during debootstrap leaves its proc and sys mounts in the tree.
  run_stage_and_go_on "box tree mounts" unmount_under "$VLXC_CACHE"
  run_stage_and_go_on "keep logs" keep_logs
  # The check reads $VLXC_STATE (pid files), which is kept when something failed or is left: a
  # second run finds in it what to stop.
  run_stage_and_go_on "check" report_leftovers
  ((${#LAB_FAILED_STAGES[@]} > 0)) || rm -rf "$VLXC_STATE"
  ((${#LAB_FAILED_STAGES[@]} == 0)) || die "steps that failed: ${LAB_FAILED_STAGES[*]}"
}

main "$@"
