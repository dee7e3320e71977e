# shellcheck shell=bash
# stop_session, shared by scripts/test.sh and vagrant/lxc/vagrant-test.sh (sourced, never run).

# stop_session <sid> <grace seconds>: TERM to every process of the session, KILL to those left
# after the grace period. The session, not the process group: a command may start processes in
# groups of their own (GNU `timeout` without --foreground does), and those stay in the session.
# Zombies do not count: where PID 1 does not reap orphans they stay, and cannot be killed.
stop_session() {
  local _
  pkill -TERM -s "$1" 2>/dev/null || return 0
  for _ in $(seq 1 $(($2 * 2))); do
    # shellcheck disable=SC2009  # pgrep cannot leave zombies out
    ps -o stat= --sid "$1" | grep -qv '^Z' || return 0
    sleep 0.5
  done
  pkill -KILL -s "$1" 2>/dev/null || true
}
