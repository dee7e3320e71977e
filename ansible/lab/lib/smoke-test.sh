#!/usr/bin/env bash
# Checks a running lab (after up.sh): SSH to every host, apt through the proxy, host-to-host
# TCP, the artifact mirror, and that a host rebooted from inside comes back. Exits non-zero on
# the first failure. Usage: smoke-test.sh [HOST-TO-REBOOT]   (default: the second host)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR/..
# shellcheck source=lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# shellcheck source=lib/nodes.sh
. "$LAB_DIR/lib/nodes.sh"

read -r -a hosts <<<"$LAB_HOSTS"
first=${hosts[0]}
victim=${1:-${hosts[1]:-$first}}

check_ssh() {
  local host
  for host in "${hosts[@]}"; do
    # shellcheck disable=SC2016 # expanded on the lab host
    log "$host: $(lab_ssh "$host" 'echo "$(hostname) $(systemctl is-system-running) python=$(/usr/bin/python3 -V)"')"
  done
}

check_apt() {
  lab_ssh "$first" 'apt-get -q update >/tmp/apt.log 2>&1 || { tail /tmp/apt.log; exit 1; }; tail -n 2 /tmp/apt.log'
}

check_host_to_host() {
  local host
  for host in "${hosts[@]:1}"; do
    lab_ssh "$first" "ping -c1 -W2 $host >/dev/null && exec 3<>/dev/tcp/$host/22 && head -c 20 <&3" |
      grep -q '^SSH-2.0' || die "$first cannot reach $host"
    log "$first -> $host: ping and TCP 22 ok"
  done
  lab_ssh "$first" "curl -fsS -o /dev/null -w '%{http_code}' http://$LAB_BRIDGE_ADDR:$LAB_MIRROR_PORT/" |
    grep -q 200 || die "$first cannot reach the artifact mirror"
  log "$first -> artifact mirror: HTTP 200"
}

check_reboot() {
  local boot_before boot_after
  boot_before=$(lab_ssh "$victim" cat /proc/sys/kernel/random/boot_id)
  lab_ssh "$victim" 'systemctl reboot' || true
  sleep 3
  wait_hosts_ready 120 "$victim"
  boot_after=$(lab_ssh "$victim" cat /proc/sys/kernel/random/boot_id)
  [[ $boot_before != "$boot_after" ]] || die "$victim did not reboot"
  log "$victim rebooted and came back: sshd enabled and running"
}

run_stage "ssh to every host" check_ssh
run_stage "apt-get update through the proxy on $first" check_apt
run_stage "host to host" check_host_to_host
run_stage "reboot $victim" check_reboot
log "smoke test passed"
