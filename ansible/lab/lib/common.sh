# Helpers shared by up.sh and down.sh (sourced, never executed).
# shellcheck shell=bash source-path=SCRIPTDIR/..

LAB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=lab.env
. "$LAB_DIR/lab.env"

# Version of the recipe of the cached base tree: bump it whenever build_base_rootfs or
# LAB_BASE_PACKAGES change so the next up.sh rebuilds the tree instead of reusing it.
# shellcheck disable=SC2034 # used by rootfs.sh
LAB_ROOTFS_RECIPE=3
LAB_BASE_PACKAGES="systemd,systemd-sysv,dbus,libpam-systemd,openssh-server,python3,python3-apt,sudo"
LAB_BASE_PACKAGES+=",ca-certificates,iproute2,iputils-ping,curl,gnupg,procps,netbase,less"
# shellcheck disable=SC2034 # used by rootfs.sh
LAB_ROOTFS_BASE="$LAB_CACHE/rootfs/base"

log() { printf '%s [lab] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
warn() { log "WARNING: $*" >&2; }
die() { log "ERROR: $*" >&2; exit 1; }

# run_stage NAME COMMAND...: runs one step of the script and prints how long it took. The step
# runs under the script's `set -e`: it is never called from an `||` or `&&` list, where bash
# ignores `set -e` inside the function, so that any failing command in the step fails it (not only
# its last one). A failure ends the script; report_failure's EXIT trap names the step.
LAB_STAGE=""
LAB_STAGE_START=0
run_stage() {
  LAB_STAGE=$1 LAB_STAGE_START=$SECONDS
  shift
  log "==> $LAB_STAGE"
  "$@"
  log "<== $LAB_STAGE: ok in $((SECONDS - LAB_STAGE_START)) s"
  LAB_STAGE=""
}

# run_stage_and_go_on NAME COMMAND...: run_stage in a subshell, so that a failed step is logged
# and added to LAB_FAILED_STAGES and the script goes on to its next step (down.sh removes what it
# can). The subshell keeps `set -e` and runs in the foreground (Ctrl-C reaches it); call this as
# a command of its own, since inside an `||` list the subshell would ignore `set -e` too.
LAB_FAILED_STAGES=()
run_stage_and_go_on() {
  local start=$SECONDS rc
  set +e
  (
    set -e
    run_stage "$@"
  )
  rc=$?
  set -e
  if ((rc != 0)); then
    log "<== $1: FAILED (exit $rc) after $((SECONDS - start)) s"
    LAB_FAILED_STAGES+=("$1")
  fi
}

# terminate PID SECONDS WHAT: SIGTERM, wait up to SECONDS for PID to exit, then SIGKILL (WHAT names
# it in the warning).
terminate() {
  local pid=$1 seconds=$2 what=$3 i
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < seconds * 5; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.2
  done
  warn "$what did not exit within $seconds s of SIGTERM; killing it"
  kill -KILL "$pid" 2>/dev/null || true
}

# mounts_under DIR: the mount points below DIR, deepest first (the order to unmount them in).
mounts_under() {
  awk -v dir="${1%/}/" 'index($2, dir) == 1 {print $2}' /proc/mounts | sort -r
}

require_root() { ((EUID == 0)) || die "the lab needs root (network namespaces, mounts, nspawn)"; }

# Per-host paths. The tree a container boots is an overlay: the shared base tree below, the
# host's own changes above (thrown away by down.sh so each `up` starts from a clean host).
host_dir() { echo "$LAB_CACHE/rootfs/$1"; }
host_root() { echo "$(host_dir "$1")/root"; }
host_netns() { echo "${LAB_NETNS_PREFIX}$1"; }
# Host side of the host's veth pair; interface names have at most 15 characters.
host_veth() { local n="${LAB_NETNS_PREFIX}$1"; echo "${n:0:15}"; }

# pid_alive PIDFILE [COMM]: true when the pid file names a running process (of that command).
pid_alive() {
  local pid
  [[ -s $1 ]] || return 1
  pid=$(<"$1")
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  [[ -z ${2:-} ]] || tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$2"
}

# Mirror of the Debian archive: LAB_DEBIAN_MIRROR, else the first .../debian URI of the host's
# apt sources (deb822 and one-line formats). Never hard-coded: the host knows what it can reach.
debian_mirror() {
  local uri
  if [[ -n $LAB_DEBIAN_MIRROR ]]; then
    echo "${LAB_DEBIAN_MIRROR%/}"
    return
  fi
  uri=$(
    {
      grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | cut -d: -f2- | tr ' ' '\n'
      grep -hsE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list |
        sed 's/\[[^]]*\]//' | awk '{print $2}'
    } | grep -E '^https?://[^ ]+/debian/?$' | head -n1 || true
  )
  [[ -n $uri ]] || die "no Debian mirror in the host's apt sources; set LAB_DEBIAN_MIRROR"
  echo "${uri%/}"
}

# The same, for security updates (empty when the host has none).
debian_security_mirror() {
  {
    grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | cut -d: -f2- | tr ' ' '\n'
    grep -hsE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list |
      sed 's/\[[^]]*\]//' | awk '{print $2}'
  } | grep -E '^https?://[^ ]+/debian-security/?$' | head -n1 | sed 's:/$::' || true
}

lab_ssh_opts=(-i "$LAB_SSH_KEY" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
  -o LogLevel=ERROR -o ConnectTimeout=5 -o BatchMode=yes)
# lab_ssh HOST COMMAND...: run a command as root on a lab host.
lab_ssh() {
  local host=$1
  shift
  # shellcheck disable=SC2029 # the command runs on the lab host, as given
  ssh "${lab_ssh_opts[@]}" "root@$(lab_addr "$host")" "$@"
}

# Every container runs in a cgroup of its own, $LAB_CGROUP_NAME/HOST, in the host's cgroup2
# hierarchy (and in the v1 name=systemd one on a "hybrid" host). nspawn --keep-unit uses the
# cgroup it was started in: without this the three containers' systemds would share one cgroup
# tree (stopping a unit in one killed or waited for processes of another), and down.sh could
# not find what a killed nspawn left behind.
LAB_CGROUP_NAME=${LAB_CGROUP_NAME:-helidon-otel-lab}  # overridable: two labs side by side
cgroup_roots() {
  if [[ $(stat -fc %T /sys/fs/cgroup) == cgroup2fs ]]; then
    echo /sys/fs/cgroup
    return
  fi
  [[ $(stat -fc %T /sys/fs/cgroup/unified 2>/dev/null) != cgroup2fs ]] || echo /sys/fs/cgroup/unified
  [[ ! -d /sys/fs/cgroup/systemd ]] || echo /sys/fs/cgroup/systemd
}

# enter_host_cgroup HOST: moves the calling shell into the host's cgroups.
enter_host_cgroup() {
  local r
  for r in $(cgroup_roots); do
    mkdir -p "$r/$LAB_CGROUP_NAME/$1"
    echo "$BASHPID" >"$r/$LAB_CGROUP_NAME/$1/cgroup.procs"
  done
}

# cgroup_pids DIR: pids of every process in the cgroup subtree DIR.
cgroup_pids() {
  [[ -d $1 ]] || return 0
  find "$1" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u
}

# kill_cgroup DIR: kills every process of the cgroup subtree (bounded), then removes it.
kill_cgroup() {
  local dir=$1 i pids
  [[ -d $dir ]] || return 0
  for ((i = 0; i < 20; i++)); do
    pids=$(cgroup_pids "$dir")
    [[ -n $pids ]] || break
    ((i > 0)) || warn "killing leftover processes of $dir: ${pids//$'\n'/ }"
    if [[ -e $dir/cgroup.kill ]]; then
      echo 1 >"$dir/cgroup.kill" 2>/dev/null || true
    fi
    # shellcheck disable=SC2086 # a list of pids
    kill -KILL $pids 2>/dev/null || true
    sleep 0.5
  done
  find "$dir" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  [[ ! -d $dir ]] || warn "could not remove cgroup $dir"
}
