#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Prepares this Linux host for `vagrant up --provider=lxc` (vagrant/Vagrantfile):
#   - Debian packages: vagrant, vagrant-lxc, lxc, debootstrap, apt-cacher-ng, ...
#   - LXC's own network, `/usr/libexec/lxc/lxc-net start`: bridge lxcbr0 (10.0.3.1/24) with
#     dnsmasq (DHCP for each container's eth0, which Vagrant reaches it by) and an nft NAT table;
#     it turns ip_forward on, so the value before is saved for host-teardown.sh;
#   - the bridge of Vagrant's private network, $VAGRANT_LXC_BRIDGE at $VLXC_BRIDGE_ADDR/24, which the
#     Vagrantfile's lxc block attaches each container's eth1 to (192.168.56.11-13);
#   - apt-cacher-ng on $VLXC_BRIDGE_ADDR:$VLXC_APT_PROXY_PORT (the box build and, in
#     vagrant-test.sh, the containers get Debian packages through it; its cache is kept).
# Idempotent. Undo with host-teardown.sh. Needs root. Settings: lxc.env.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

trap 'rc=$?; ((rc == 0)) || log "host-setup.sh failed (exit $rc); vagrant/lxc/host-teardown.sh undoes what it did" >&2' EXIT

save_ip_forward() {
  # Saved once per set-up: a second run must not record the value lxc-net already changed.
  if [[ ! -s $VLXC_STATE/ip_forward ]]; then
    cat /proc/sys/net/ipv4/ip_forward >"$VLXC_STATE/ip_forward"
  fi
  log "ip_forward before the set-up: $(<"$VLXC_STATE/ip_forward")"
}

start_lxc_net() {
  if [[ -f /run/lxc/network_up ]]; then
    log "lxc-net already up (lxcbr0)"
    return 0
  fi
  /usr/libexec/lxc/lxc-net start
  touch "$VLXC_STATE/lxc-net.started"
  log "lxc-net started: $(ip -br addr show dev lxcbr0 | tr -s ' ')"
}

main() {
  ((EUID == 0)) || die "needs root (bridges, LXC containers)"
  mkdir -p "$VLXC_STATE" "$VLXC_CACHE"
  run_stage "host packages" install_host_packages
  run_stage "archive keyring" check_archive_keyring
  run_stage "save ip_forward" save_ip_forward
  run_stage "lxc-net" start_lxc_net
  run_stage "private network bridge" ensure_bridge
  run_stage "apt proxy" start_apt_proxy
  log "host ready in $SECONDS s: lxcbr0, $VAGRANT_LXC_BRIDGE $VLXC_BRIDGE_ADDR/24," \
    "apt proxy http://$VLXC_BRIDGE_ADDR:$VLXC_APT_PROXY_PORT"
}

main "$@"
