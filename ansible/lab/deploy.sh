#!/usr/bin/env bash
# Runs ansible/site.yml against the local lab (inventories/lab). Arguments go to ansible-playbook
# unchanged, e.g.  ansible/lab/deploy.sh -e tracing_mode=jaeger-http --tags app_configure
# (make lab-deploy ANSIBLE_ARGS='...' passes them through). LAB_INVENTORY names another inventory
# of the lab's hosts (relative to ansible/), e.g. an edited copy beside hosts.yml, which keeps the
# lab's group_vars: the placement tests deploy other placements that way.
set -euo pipefail

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$LAB_DIR/../.." && pwd)
# shellcheck source=lab.env
. "$LAB_DIR/lab.env"

log() { printf '%s [deploy] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# One line per run in the lab's state folder (down.sh keeps it with the other logs): what each
# deploy of a test run cost, e.g. `awk '{s += $2} END {print NR, s}' deploys.log`.
DEPLOY_ARGS="$*"
on_exit() {
  local rc=$?
  if [ "$rc" -eq 0 ]; then log "done in ${SECONDS}s"; else log "FAILED (exit $rc) after ${SECONDS}s"; fi
  if [ -d "$LAB_STATE" ]; then
    printf '%s %s exit=%s %s\n' "$(date -u +%H:%M:%S)" "$SECONDS" "$rc" "${LAB_INVENTORY:+LAB_INVENTORY=$LAB_INVENTORY }$DEPLOY_ARGS" \
      >>"$LAB_STATE/deploys.log" || true
  fi
}
trap on_exit EXIT

check_lab_key() {
  [ -r "$LAB_SSH_KEY" ] || { log "no lab SSH key at $LAB_SSH_KEY: run ansible/lab/up.sh first"; exit 2; }
}

run_playbook() {
  local venv_bin
  venv_bin=$("$ROOT/scripts/venv.sh" | tail -1)
  export PATH="$venv_bin:$PATH"
  export ANSIBLE_CONFIG="$ROOT/ansible/ansible.cfg"
  cd "$ROOT/ansible"
  local inventory=${LAB_INVENTORY:-inventories/lab/hosts.yml}
  log "ansible-playbook -i $inventory site.yml $*"
  ansible-playbook -i "$inventory" site.yml "$@"
}

check_lab_key
run_playbook "$@"
