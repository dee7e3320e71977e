# shellcheck shell=bash
# Sourced by the LXC provider's scripts: their settings (lxc.env) and the helpers of the nspawn
# lab they reuse (ansible/lab/lib: logging, run_stage, apt packages, apt-cacher-ng and daemon
# handling, the debootstrap tree), pointed at this path's own names so that the lab, which may
# run at the same time, is never touched.
# shellcheck source-path=SCRIPTDIR
VLXC_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VLXC_ROOT="$(cd "$VLXC_DIR/../.." && pwd)"
# shellcheck source=lxc.env
. "$VLXC_DIR/lxc.env"

# The lab's helpers read these names; here they mean this path's bridge, state, ports and cache
# (its debootstrap tree and apt cache: LAB_CACHE below is $VLXC_CACHE). The artifacts the lab
# builds and the lab's Cassandra jars are shared: VLXC_LAB_CACHE.
export VLXC_LAB_CACHE="$LAB_CACHE"
export LAB_MIRROR_DIR="${LAB_MIRROR_DIR:-$LAB_CACHE/artifacts/mirror}"
export LAB_CACHE="$VLXC_CACHE" LAB_NET_PREFIX="$VLXC_NET_PREFIX" LAB_BRIDGE="$VAGRANT_LXC_BRIDGE" LAB_STATE="$VLXC_STATE" \
  LAB_NETNS_PREFIX=vlxc- LAB_APT_PROXY_PORT="$VLXC_APT_PROXY_PORT" LAB_MIRROR_PORT="$VLXC_MIRROR_PORT" \
  LAB_SUITE="$VLXC_SUITE" LAB_CGROUP_NAME=helidon-otel-vagrant-lxc LAB_APT_PROXY_PORT_SETTING=VLXC_APT_PROXY_PORT
# shellcheck source=../../ansible/lab/lib/common.sh
. "$VLXC_ROOT/ansible/lab/lib/common.sh"
# shellcheck source=../../ansible/lab/lib/host.sh
. "$VLXC_ROOT/ansible/lab/lib/host.sh"

log() { printf '%s [vagrant-lxc] %s\n' "$(date -u +%H:%M:%S)" "$*"; }

# Debian packages of this path: Vagrant with the LXC provider, LXC (lxc-net: lxcbr0, dnsmasq,
# NAT; lxc-templates holds the debian.common.conf the box includes),
# debootstrap for the box, apt-cacher-ng.
LAB_HOST_PACKAGES=(vagrant vagrant-lxc lxc lxc-templates dnsmasq-base nftables sudo debootstrap apt-cacher-ng
  iproute2 openssh-client python3 curl debian-archive-keyring)

# shellcheck disable=SC2034 # used by the scripts that source this file
VLXC_NODES=(node1 node2 node3)
# Container name of a node: the Vagrantfile's lxc.container_name.
vlxc_container() { echo "helidon-otel-$1"; }
