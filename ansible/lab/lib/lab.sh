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

# report_failure <advice>: on a non-zero exit, log the status, the step that failed (run_stage)
# and <advice>.
report_failure() {
  trap 'rc=$?; ((rc == 0)) || log "$(basename "$0") failed (exit $rc)${LAB_STAGE:+ in step \"$LAB_STAGE\" after $((SECONDS - LAB_STAGE_START)) s}: '"$1"'" >&2' EXIT
}
