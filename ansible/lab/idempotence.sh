#!/usr/bin/env bash
# Runs the lab deployment again and fails unless every host reports changed=0 in the PLAY RECAP.
# On failure it prints the tasks that changed. Arguments go to deploy.sh (ansible-playbook).
set -euo pipefail

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lab.env
. "$LAB_DIR/lab.env"
OUT=$(mktemp "${TMPDIR:-/tmp}/idempotence.XXXXXX")

log() { printf '%s [idempotence] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
cleanup() { rm -f "$OUT"; }
trap cleanup EXIT

# Prints "TASK [...] -> changed: [host]" for every change in a playbook log.
changed_tasks() {
  sed 's/\x1b\[[0-9;]*m//g' "$1" |
    awk '/^TASK \[/ { task = $0; sub(/ \**$/, "", task) } /^changed: \[/ { print "  " task " -> " $0 }'
}

# Prints the hosts whose PLAY RECAP line says changed>0 (or failed/unreachable>0).
hosts_not_converged() {
  sed 's/\x1b\[[0-9;]*m//g' "$1" |
    awk '/^PLAY RECAP/ { recap = 1; next }
         recap && /changed=/ {
           for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
           if (v["changed"] > 0 || v["failed"] > 0 || v["unreachable"] > 0) print $1 " " $0
         }'
}

main() {
  local rc=0 bad
  log "second deployment, expecting changed=0 on every host"
  # The default callback prints "changed: [host]" lines; keep it regardless of local settings.
  ANSIBLE_STDOUT_CALLBACK=default ANSIBLE_NOCOLOR=1 "$LAB_DIR/deploy.sh" "$@" 2>&1 | tee "$OUT" || rc=$?
  if ! grep -q '^PLAY RECAP' "$OUT"; then
    log "FAILED: the deployment did not finish (exit $rc)"
    return 1
  fi
  bad=$(hosts_not_converged "$OUT")
  if [ -n "$bad" ] || [ "$rc" -ne 0 ]; then
    log "FAILED: not idempotent (exit $rc). Hosts:"
    printf '%s\n' "$bad" | awk 'NF { $1 = ""; print "  " $0 }' >&2
    log "tasks that changed:"
    changed_tasks "$OUT" >&2
    return 1
  fi
  log "OK: changed=0 on every host"
}

main "$@"
