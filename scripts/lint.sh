#!/usr/bin/env bash
# Lints the Ansible code: ansible-lint (production profile, ansible/.ansible-lint) over ansible/,
# a check that each role's argument specs and defaults list the same variables, a check that each
# role's README tables list the same variables as its argument specs, a check that the roles'
# default versions are those the lab builds, a check that site.yml's placement play knows every
# unit the roles install, then `ansible-playbook --syntax-check` of site.yml
# against each inventory; and ShellCheck over every shell script of the repository.
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

# Every role documents exactly the variables it takes: its defaults and the main entry point of
# its argument specs list the same names (specs), and so do its README's variable tables (readmes).
check_argument_specs() { python "$ROOT/scripts/check_roles.py" specs roles; }
check_role_readmes() { python "$ROOT/scripts/check_roles.py" readmes roles; }
# site.yml's placement play maps every unit the roles install to the group that runs it.
check_placement() { python "$ROOT/scripts/check_placement.py" .; }
# Every shell script git knows (*.sh, and any other file whose first line runs sh or bash: .ci/run,
# the systemd-unit-verify the common role ships), following what they source (-x) from paths
# relative to each script (-P SCRIPTDIR), at ShellCheck's default severity (style included).
check_shell() {
  local scripts
  mapfile -t scripts < <(cd "$ROOT" && git ls-files -z | while IFS= read -r -d '' f; do
    [[ $f == *.sh || ( -f $f && $(head -n1 "$f") =~ ^\#!(/usr)?/bin/(env\ )?(ba)?sh([[:space:]]|$) ) ]] &&
      printf '%s\n' "$f"
  done)
  (cd "$ROOT" && shellcheck -x -P SCRIPTDIR "${scripts[@]}")
}

# The lab deploys the releases it builds (ansible/lab/artifacts/versions.env, read by the lab
# inventory); the roles' defaults, which every other inventory gets, must name the same ones, so
# that what the lab tested is what a Vagrant or real deployment installs. The build prints its
# versions under the roles' variable names (`build.sh --print-vars`): <role>_version.
check_lab_versions() {
  python - roles "$("$ROOT/ansible/lab/artifacts/build.sh" --print-vars)" <<'PY'
import pathlib
import sys

import yaml

roles, built = pathlib.Path(sys.argv[1]), yaml.safe_load(sys.argv[2])
bad = 0
for variable, version in built.items():
    if not variable.endswith("_version"):
        continue
    role = variable.removesuffix("_version")
    default = yaml.safe_load((roles / role / "defaults/main.yml").read_text())[variable]
    if str(default) != str(version):
        print(f"  {role}: {variable} is {default} in defaults/main.yml, but the lab builds {version} (ansible/lab/artifacts/versions.env)")
        bad += 1
sys.exit(1 if bad else 0)
PY
}

main() {
  local venv_bin
  venv_bin=$("$ROOT/scripts/venv.sh" | tail -1)
  export PATH="$venv_bin:$PATH"
  cd "$ROOT/ansible"
  export ANSIBLE_CONFIG="$ROOT/ansible/ansible.cfg"

  run_stage "ansible-lint" ansible-lint --nocolor
  run_stage "argument specs = defaults" check_argument_specs
  run_stage "role READMEs = argument specs" check_role_readmes
  run_stage "lab versions = role defaults" check_lab_versions
  run_stage "placement map = role units" check_placement
  run_stage "shellcheck" check_shell
  local inv
  for inv in "${INVENTORIES[@]}"; do
    run_stage "syntax-check ($inv)" \
      ansible-playbook --syntax-check -i "inventories/$inv/hosts.yml" site.yml
  done

  if [ "${#failures[@]}" -eq 0 ]; then
    echo "lint: OK (ansible-lint production, argument specs = defaults, role READMEs = argument specs, lab versions = role defaults, placement map = role units, shellcheck, syntax-check: ${INVENTORIES[*]})"
  else
    echo "lint: FAILED: ${failures[*]}"
    return 1
  fi
}

main "$@"
