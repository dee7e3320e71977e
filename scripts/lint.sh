#!/usr/bin/env bash
# Lints the Ansible code: ansible-lint (production profile, ansible/.ansible-lint) over ansible/,
# then `ansible-playbook --syntax-check` of site.yml against each inventory.
# Prints one result line; exits non-zero when anything fails.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
INVENTORIES=(vagrant lab)
failures=()

log() { echo "lint.sh: $*" >&2; }

on_exit() {
  local rc=$?
  [ "$rc" -eq 0 ] || [ "${#failures[@]}" -gt 0 ] || echo "lint: FAILED (exit $rc before the checks ran)"
}
trap on_exit EXIT

run_stage() {  # run_stage <name> <command...>: runs a check, records a failure, prints duration
  local name=$1 start=$SECONDS; shift
  log "== $name"
  if "$@"; then
    log "   $name: ok ($((SECONDS - start))s)"
  else
    log "   $name: FAILED ($((SECONDS - start))s)"
    failures+=("$name")
  fi
}

main() {
  local venv_bin
  venv_bin=$("$ROOT/scripts/venv.sh" | tail -1)
  export PATH="$venv_bin:$PATH"
  cd "$ROOT/ansible"
  export ANSIBLE_CONFIG="$ROOT/ansible/ansible.cfg"

  run_stage "ansible-lint" ansible-lint --nocolor
  local inv
  for inv in "${INVENTORIES[@]}"; do
    run_stage "syntax-check ($inv)" \
      ansible-playbook --syntax-check -i "inventories/$inv/hosts.yml" site.yml
  done

  if [ "${#failures[@]}" -eq 0 ]; then
    echo "lint: OK (ansible-lint production, syntax-check: ${INVENTORIES[*]})"
  else
    echo "lint: FAILED: ${failures[*]}"
    return 1
  fi
}

main "$@"
