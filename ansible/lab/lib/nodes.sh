# The lab hosts: network namespace + veth on the bridge, the container, readiness.
# shellcheck shell=bash

# Each host gets a network namespace holding one end of a veth pair (named host0, as nspawn
# would name it) whose other end joins the bridge. The address and default route are set from
# the host side: the namespace outlives container reboots, so the network needs nothing inside
# the container (no networkd/ifupdown), and a reboot cannot lose it.
ensure_host_network() {
  local host=$1 ns veth addr
  ns=$(host_netns "$host")
  veth=$(host_veth "$host")
  addr=$(lab_addr "$host")
  [[ -e /run/netns/$ns ]] || ip netns add "$ns"
  if ! ip link show dev "$veth" >/dev/null 2>&1; then
    ip link add name "$veth" type veth peer name host0 netns "$ns"
  fi
  ip link set dev "$veth" master "$LAB_BRIDGE" up
  ip -n "$ns" link set dev lo up
  ip -n "$ns" link set dev host0 up
  ip -n "$ns" -o -4 addr show dev host0 | grep -q " $addr/24 " ||
    ip -n "$ns" addr add "$addr/24" dev host0
  ip -n "$ns" route replace default via "$LAB_BRIDGE_ADDR" dev host0
  log "$host: $addr/24 on host0 in netns $ns, $veth on $LAB_BRIDGE"
}

remove_host_network() {
  local host=$1 ns veth
  ns=$(host_netns "$host")
  veth=$(host_veth "$host")
  ! ip link show dev "$veth" >/dev/null 2>&1 || ip link del dev "$veth"
  [[ ! -e /run/netns/$ns ]] || ip netns del "$ns"
}

supervisor_pidfile() { echo "$LAB_STATE/$1.supervisor.pid"; }

# Starts the host's supervisor (lib/supervise.sh), which boots the container and boots it
# again after a reboot from inside. Logs (the container's console too) go to $LAB_STATE/HOST.log.
start_host() {
  local host=$1 pidfile
  pidfile=$(supervisor_pidfile "$host")
  if pid_alive "$pidfile" supervise.sh; then
    log "$host: already running (supervisor pid $(<"$pidfile"))"
    return 0
  fi
  setsid "$LAB_DIR/lib/supervise.sh" "$host" >>"$LAB_STATE/$host.log" 2>&1 </dev/null &
  echo $! >"$pidfile"
  log "$host: booting (supervisor pid $!, log $LAB_STATE/$host.log)"
}

# host_ready HOST: sshd answers and systemd finished booting (running, or degraded).
host_ready() {
  local state
  state=$(lab_ssh "$1" systemctl is-system-running 2>/dev/null) || true
  [[ $state == running || $state == degraded ]]
}

# wait_hosts_ready SECONDS HOST...: bounded wait; on failure prints the failing host's log tail.
wait_hosts_ready() {
  local timeout=$1 deadline host pending=() still
  shift
  deadline=$((SECONDS + timeout))
  pending=("$@")
  while ((${#pending[@]} > 0)); do
    still=()
    for host in "${pending[@]}"; do
      if ! pid_alive "$(supervisor_pidfile "$host")" supervise.sh; then
        tail -n 40 "$LAB_STATE/$host.log" >&2 || true
        die "$host: its container exited (log above: $LAB_STATE/$host.log)"
      fi
      if host_ready "$host"; then
        log "$host: ready after $((SECONDS - deadline + timeout)) s ($(lab_ssh "$host" systemctl is-system-running || true))"
      else
        still+=("$host")
      fi
    done
    pending=("${still[@]+"${still[@]}"}")
    ((${#pending[@]} == 0)) && break
    if ((SECONDS >= deadline)); then
      for host in "${pending[@]}"; do
        log "--- $host: last lines of $LAB_STATE/$host.log" >&2
        tail -n 40 "$LAB_STATE/$host.log" >&2 || true
      done
      die "not ready within $timeout s: ${pending[*]}"
    fi
    sleep 2
  done
}

# stop_host HOST: SIGTERM to the supervisor, which passes it to systemd-nspawn: the container
# powers off in order. Waits (bounded), then kills what is left.
stop_host() {
  local host=$1 pidfile nspawn_pid r
  pidfile=$(supervisor_pidfile "$host")
  if pid_alive "$pidfile" supervise.sh; then
    terminate "$(<"$pidfile")" 60 "$host (its orderly poweroff)"
  fi
  if pid_alive "$LAB_STATE/$host.nspawn.pid" systemd-nspawn; then
    nspawn_pid=$(<"$LAB_STATE/$host.nspawn.pid")
    kill -KILL "$nspawn_pid" 2>/dev/null || true
  fi
  # A killed nspawn leaves its container's processes behind: they are all in its cgroup.
  for r in $(cgroup_roots); do kill_cgroup "$r/$LAB_CGROUP_NAME/$host"; done
  rm -f "$pidfile" "$LAB_STATE/$host.nspawn.pid"
}
