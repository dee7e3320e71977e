# Host side of the lab: apt packages, the bridge, the apt cache proxy and the artifact mirror.
# shellcheck shell=bash

LAB_HOST_PACKAGES=(systemd-container debootstrap iproute2 apt-cacher-ng openssh-client python3
  curl debian-archive-keyring)

apt_get() {
  DEBIAN_FRONTEND=noninteractive apt-get -q -y -o "DPkg::Lock::Timeout=$LAB_APT_LOCK_TIMEOUT" "$@"
}

install_host_packages() {
  local missing=() p
  for p in "${LAB_HOST_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if ((${#missing[@]} == 0)); then
    log "host packages present"
    return 0
  fi
  log "installing on the host: ${missing[*]}"
  # apt-cacher-ng asks whether to allow CONNECT tunnels; answer it before it asks.
  echo 'apt-cacher-ng apt-cacher-ng/tunnelenable boolean false' | debconf-set-selections
  # A dpkg run killed part-way (an interrupted earlier run) makes every install fail until the
  # packages it left unpacked are configured.
  dpkg --configure -a
  apt_get update
  apt_get install --no-install-recommends "${missing[@]}"
}

# The host must be able to verify the suite's Release file. bookworm's debian-archive-keyring
# (2023.3+deb12u2 and later) already carries the trixie keys; an older one is upgraded from the
# host's own apt sources. debootstrap then checks the Release signature against this keyring:
# signature checks are never turned off.
lab_keyring() { echo /usr/share/keyrings/debian-archive-keyring.gpg; }
keyring_knows_suite() { [[ -s /usr/share/keyrings/debian-archive-$LAB_SUITE-automatic.gpg ]]; }
check_archive_keyring() {
  if ! keyring_knows_suite; then
    log "debian-archive-keyring has no $LAB_SUITE key: upgrading it"
    apt_get update
    apt_get install --only-upgrade debian-archive-keyring
    keyring_knows_suite || die "no $LAB_SUITE key; install a newer debian-archive-keyring"
  fi
  log "archive keyring knows $LAB_SUITE: $(lab_keyring)"
}

ensure_ssh_key() {
  mkdir -p "$(dirname "$LAB_SSH_KEY")"
  chmod 700 "$(dirname "$LAB_SSH_KEY")"
  if [[ ! -s $LAB_SSH_KEY ]]; then
    ssh-keygen -q -t ed25519 -N '' -C "helidon-otel-lab" -f "$LAB_SSH_KEY"
    log "created $LAB_SSH_KEY"
  fi
}

ensure_bridge() {
  if ! ip link show dev "$LAB_BRIDGE" >/dev/null 2>&1; then
    ip link add name "$LAB_BRIDGE" type bridge
  fi
  if ! ip -o -4 addr show dev "$LAB_BRIDGE" | grep -q " $LAB_BRIDGE_ADDR/"; then
    ip addr add "$LAB_BRIDGE_ADDR/24" dev "$LAB_BRIDGE"
  fi
  ip link set dev "$LAB_BRIDGE" up
  # With br_netfilter loaded, host-to-host traffic on the bridge goes through iptables' FORWARD
  # chain; Docker sets its policy to DROP. The lab does not change the host's firewall: it says so.
  if [[ "$(cat /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null)" == 1 ]] &&
    command -v iptables >/dev/null && iptables -S FORWARD 2>/dev/null | grep -q '^-P FORWARD DROP'; then
    warn "br_netfilter filters bridged traffic: the FORWARD chain must accept $LAB_BRIDGE" \
      "(iptables -I FORWARD -i $LAB_BRIDGE -o $LAB_BRIDGE -j ACCEPT)"
  fi
  log "bridge $LAB_BRIDGE at $LAB_BRIDGE_ADDR/24"
}

# wait_for_port ADDR PORT SECONDS
wait_for_port() {
  local deadline=$((SECONDS + $3))
  until (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; do
    ((SECONDS < deadline)) || return 1
    sleep 0.5
  done
}

# Where start_daemon keeps each helper daemon's NAME.pid and NAME.comm: a folder of their own, apart
# from the hosts' pid files in $LAB_STATE, so that stop_helper_daemons finds every daemon's and none else.
daemon_dir() { echo "$LAB_STATE/daemons"; }

# daemon_alive NAME: NAME.pid names a running process whose command line holds NAME.comm (what
# start_daemon was told the daemon's command contains). A pid file left by a killed run may name a
# process that has taken its pid since: that one neither passes for the daemon (start_daemon would
# not start it) nor is killed (stop_daemon). No NAME.comm: not alive.
daemon_alive() {
  local dir
  dir=$(daemon_dir)
  [[ -s $dir/$1.comm ]] && pid_alive "$dir/$1.pid" "$(<"$dir/$1.comm")"
}

# start_daemon NAME COMM COMMAND...: starts a helper daemon in its own session, logs to
# $LAB_STATE/NAME.log; does nothing when it already runs. COMM is what the running daemon's
# command line contains, once setsid (and `ip netns exec`) have exec'd it: e.g. http.server for
# `python3 -m http.server`, Cassandra's main class for its java.
start_daemon() {
  local name=$1 comm=$2 dir pid i
  shift 2
  dir=$(daemon_dir)
  if daemon_alive "$name"; then
    log "$name already running (pid $(<"$dir/$name.pid"))"
    return 0
  fi
  [[ ! -s $dir/$name.pid ]] || log "$name: its pid file names no $name process (an earlier run's): starting it"
  mkdir -p "$dir"
  echo "$comm" >"$dir/$name.comm"
  # setsid runs in place here (a background job is no process-group leader), so $! is the daemon.
  # LAB_DAEMON marks it (and what it starts) for helper_daemons_left.
  LAB_DAEMON="$LAB_STATE/$name" setsid "$@" >>"$LAB_STATE/$name.log" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$dir/$name.pid"
  # Until setsid (and ip netns exec) have exec'd the command, $pid does not look like the daemon:
  # wait for that (bounded), so that daemon_alive tells from here on whether it runs.
  for ((i = 0; i < 50; i++)); do
    if daemon_alive "$name" || ! kill -0 "$pid" 2>/dev/null; then break; fi
    sleep 0.1
  done
  log "$name started (pid $pid)"
}

# helper_daemons_left: "NAME (pid PID)" of every process start_daemon started for this lab (its
# LAB_STATE) that still runs; found by their LAB_DAEMON mark, so also when pid files are gone.
helper_daemons_left() {
  local f pid name
  { grep -lsz "^LAB_DAEMON=$LAB_STATE/" /proc/[0-9]*/environ || true; } | while read -r f; do
    pid=${f#/proc/}
    pid=${pid%/environ}
    name=$(tr '\0' '\n' 2>/dev/null <"$f" | sed -n "s|^LAB_DAEMON=$LAB_STATE/||p")
    # Gone since grep read it (a short-lived child, e.g. of a pyenv shim before it execs python).
    [[ -z $name ]] || echo "$name (pid $pid)"
  done
}

# Where the Debian apt-cacher-ng package keeps its Debian upstream (the proxy reads it at start).
LAB_APT_BACKENDS=/etc/apt-cacher-ng/backends_debian

# The host's backends_debian (a file of the apt-cacher-ng package, which start_apt_proxy
# rewrites) as it was before the first rewrite of this set-up, for restore_apt_backends: a copy,
# or a mark that there was none.
save_apt_backends() {
  [[ ! -e $LAB_STATE/backends_debian.orig && ! -e $LAB_STATE/backends_debian.none ]] || return 0
  if [[ -e $LAB_APT_BACKENDS ]]; then
    cp -p "$LAB_APT_BACKENDS" "$LAB_STATE/backends_debian.orig"
  else
    touch "$LAB_STATE/backends_debian.none"
  fi
}

# Puts backends_debian back as save_apt_backends found it (after the apt proxy stopped: it reads
# the file at start only).
restore_apt_backends() {
  if [[ -e $LAB_STATE/backends_debian.orig ]]; then
    cp -p "$LAB_STATE/backends_debian.orig" "$LAB_APT_BACKENDS"
    rm -f "$LAB_STATE/backends_debian.orig"
    log "$LAB_APT_BACKENDS restored"
  elif [[ -e $LAB_STATE/backends_debian.none ]]; then
    rm -f "$LAB_APT_BACKENDS" "$LAB_STATE/backends_debian.none"
    log "$LAB_APT_BACKENDS removed (there was none)"
  fi
}

# apt-cacher-ng, run by hand (the host has no systemd), listening on the bridge address only.
# Its cache lives in $LAB_CACHE so the packages survive down.sh and reboots of the machine.
start_apt_proxy() {
  local mirror backends=$LAB_APT_BACKENDS
  mirror=$(debian_mirror)
  # Without this file apt-cacher-ng forwards Debian requests to its packaged default backend,
  # which may be unreachable here ("503 Host not found").
  if [[ "$(cat "$backends" 2>/dev/null)" != "$mirror/" ]]; then
    save_apt_backends
    echo "$mirror/" >"$backends"
    log "$backends -> $mirror/"
  fi
  mkdir -p "$LAB_CACHE/apt-cacher-ng" "$LAB_STATE/apt-cacher-ng"
  start_daemon apt-cacher-ng apt-cacher-ng apt-cacher-ng -c /etc/apt-cacher-ng ForeGround=1 \
    "CacheDir=$LAB_CACHE/apt-cacher-ng" "LogDir=$LAB_STATE/apt-cacher-ng" \
    "PidFile=$LAB_STATE/apt-cacher-ng/acng.pid" "SocketPath=$LAB_STATE/apt-cacher-ng/acng.socket" \
    "BindAddress=$LAB_BRIDGE_ADDR" "Port=$LAB_APT_PROXY_PORT"
  if ! { wait_for_port "$LAB_BRIDGE_ADDR" "$LAB_APT_PROXY_PORT" 30 && daemon_alive apt-cacher-ng; }; then
    tail -n 20 "$LAB_STATE/apt-cacher-ng.log" >&2
    die "apt-cacher-ng did not start; if another one (the packaged service) holds port" \
      "$LAB_APT_PROXY_PORT, stop it or set ${LAB_APT_PROXY_PORT_SETTING:-LAB_APT_PROXY_PORT}"
  fi
  log "apt proxy http://$LAB_BRIDGE_ADDR:$LAB_APT_PROXY_PORT -> $mirror"
}

# The artifacts the lab builds (another script fills $LAB_MIRROR_DIR), served over HTTP.
start_artifact_mirror() {
  mkdir -p "$LAB_MIRROR_DIR"
  start_daemon artifact-mirror http.server python3 -m http.server --bind "$LAB_BRIDGE_ADDR" \
    --directory "$LAB_MIRROR_DIR" "$LAB_MIRROR_PORT"
  if ! { wait_for_port "$LAB_BRIDGE_ADDR" "$LAB_MIRROR_PORT" 30 && daemon_alive artifact-mirror; }; then
    tail -n 20 "$LAB_STATE/artifact-mirror.log" >&2
    die "artifact mirror did not start"
  fi
  log "artifact mirror http://$LAB_BRIDGE_ADDR:$LAB_MIRROR_PORT/ serves $LAB_MIRROR_DIR"
}

# stop_ssh_masters NET_PREFIX: Ansible's SSH connection masters (ControlPersist) leave the run's
# process group and would outlive it by up to a minute, connected to hosts being taken down.
# Stops the ssh clients connected to NET_PREFIX.0/24.
stop_ssh_masters() {
  local pid
  for pid in $(ss -Htnp state established "dst $1.0/24" | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u); do
    [[ $(ps -o comm= -p "$pid") != ssh ]] || { log "stopping ssh master $pid"; kill -TERM "$pid" 2>/dev/null || true; }
  done
}

# stop_daemon NAME: SIGTERM, bounded wait, SIGKILL; removes the pid file. A pid file that names
# no process of the daemon's command is removed, and that process left alone. Fails, keeping the
# pid file, when the daemon still runs or its command is not known (no NAME.comm).
stop_daemon() {
  local name=$1 dir pidfile i
  dir=$(daemon_dir)
  pidfile="$dir/$name.pid"
  if [[ ! -s $dir/$name.comm ]]; then
    warn "$pidfile: no $dir/$name.comm says what $name's command is; its process is left alone"
    return 1
  fi
  if daemon_alive "$name"; then
    terminate "$(<"$pidfile")" 10 "$name"
    # (A SIGKILL takes effect a moment later.)
    for ((i = 0; i < 10; i++)); do
      daemon_alive "$name" || break
      sleep 0.2
    done
    if daemon_alive "$name"; then
      warn "$name (pid $(<"$pidfile")) still runs after SIGKILL"
      return 1
    fi
    log "stopped $name"
  elif [[ -s $pidfile ]]; then
    log "$name was not running ($pidfile names no $name process: left alone)"
  fi
  rm -f "$pidfile" "$dir/$name.comm"
}

# stop_helper_daemons: stops every daemon start_daemon started (each pid file in daemon_dir), in
# parallel. Fails when one of them could not be stopped.
stop_helper_daemons() {
  local f pids=() pid rc=0
  for f in "$(daemon_dir)"/*.pid; do
    [[ -e $f ]] || continue
    stop_daemon "$(basename "$f" .pid)" &
    pids+=("$!")
  done
  for pid in "${pids[@]+"${pids[@]}"}"; do wait "$pid" || rc=1; done
  return "$rc"
}
