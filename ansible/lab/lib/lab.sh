# shellcheck shell=bash
# Everything up.sh and down.sh use: settings and logging, host trees, networks and nodes; plus
# report_failure, which tells on exit what to do when the script failed.
# shellcheck source-path=SCRIPTDIR/..
# shellcheck source=lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# shellcheck source=lib/host.sh
. "$LAB_DIR/lib/host.sh"
# shellcheck source=lib/rootfs.sh
. "$LAB_DIR/lib/rootfs.sh"
# shellcheck source=lib/nodes.sh
. "$LAB_DIR/lib/nodes.sh"

report_failure() {  # report_failure <advice>: on a non-zero exit, log the status and <advice>
  trap 'rc=$?; ((rc == 0)) || log "$(basename "$0") failed (exit $rc): '"$1"'" >&2' EXIT
}
