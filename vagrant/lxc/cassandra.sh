#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Cassandra for `make vagrant-test` (its cassandra_external_start_command): Apache's
# distribution cannot be downloaded here, so, as in the nspawn lab, ansible/lab/cassandra.sh runs
# a real Cassandra (cassandra-all from Maven Central, on the host's Java 17) in node2's network
# namespace, listening on 192.168.56.12:9042 where the cassandra role's unit would. The namespace
# is the LXC container's own, named vlxc-node2 (`ip netns attach`) for the time of the test.
# Usage: cassandra.sh start|stop|wait|status|nodetool ARGS... (those of ansible/lab/cassandra.sh).
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NODE=node2

# Names the running container's network namespace vlxc-node2 (again, when it was restarted).
attach_netns() {
  local container pid ns=/run/netns/vlxc-$NODE
  container=$(vlxc_container "$NODE")
  pid=$(lxc-info -n "$container" -p -H 2>/dev/null) || die "container $container is not running"
  [[ $pid =~ ^[0-9]+$ ]] || die "container $container is not running"
  if [[ -e $ns && $(stat -L -c %i "$ns") != $(stat -L -c %i "/proc/$pid/ns/net") ]]; then
    ip netns del "vlxc-$NODE"
  fi
  [[ -e $ns ]] || ip netns attach "vlxc-$NODE" "$pid"
}

case "${1:-}" in
  start) attach_netns ;;
  stop | wait | status | nodetool) ;;
  *) die "usage: $0 start|stop|wait|status|nodetool ARGS..." ;;
esac
mkdir -p "$VLXC_STATE"
# The lab's script with this path's addresses, namespace prefix and state; the jars and the venv
# come from the lab's cache.
LAB_CACHE="$VLXC_LAB_CACHE" LAB_CASSANDRA_HOST="$NODE" exec "$VLXC_ROOT/ansible/lab/cassandra.sh" "$@"
